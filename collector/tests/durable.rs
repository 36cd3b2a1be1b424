//! Durable mode with the real binary: a full log pushes back or drops its oldest segment (counted
//! exactly), a clean restart replays nothing, and a shutdown that runs out of time keeps what it could
//! not deliver for the next start.

mod common;

use common::{http_request, mkfifo, span_ids, span_request, FifoReader, Options, Weir};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn durable(wal: &Path, extra: &str) -> String {
    format!(
        "pipeline:\n  workers: 1\n  intake_queue: {{max_items: 100, max_bytes: 256KiB}}\ndurable: {{dir: \"{}\", checkpoint_interval: 100ms{extra}}}\n",
        wal.display()
    )
}

fn options(wal: &Path, extra: &str) -> Options {
    Options {
        pipeline: durable(wal, extra),
        exporter_extra:
            "    queue: {max_items: 100, max_bytes: 256KiB}\n    batch: {max_items: 100, max_age: 20ms}\n"
                .into(),
        shutdown_timeout: "2s",
        ..Options::default()
    }
}

/// Posts request `n` (50 spans, `pad` bytes each) over OTLP/HTTP; returns the status.
fn post(weir: &Weir, n: usize, pad: usize) -> u16 {
    http_request(
        weir.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &span_request(n, pad).encode_to_vec(),
    )
    .unwrap()
    .status
}

/// A weir whose file exporter writes to a FIFO nobody reads yet: nothing can be delivered.
fn blocked(wal: &Path, extra: &str) -> (Weir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fifo = data.join("traces.jsonl");
    mkfifo(&fifo);
    (Weir::start_in(dir, data, options(wal, extra)), fifo)
}

#[test]
fn a_full_log_pushes_back_until_delivery_frees_it() {
    let wal = tempfile::tempdir().unwrap();
    let (weir, fifo) = blocked(
        wal.path(),
        ", max_bytes: 512KiB, segment_bytes: 64KiB, compress: false",
    );
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for n in 0..30 {
        match post(&weir, n, 1000) {
            200 => acknowledged.extend(span_ids(&span_request(n, 1000))),
            429 => refused += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    let bytes = weir.metric("weir_wal_bytes", &["signal=\"traces\""]);
    assert!(refused > 10, "a full log refuses (429): {refused}");
    assert!(
        (6..=10).contains(&(acknowledged.len() / 50)),
        "about 512 KiB of 55 KiB requests fit: {}",
        acknowledged.len() / 50
    );
    assert!(
        bytes <= 512.0 * 1024.0,
        "the log stays within max_bytes: {bytes}"
    );
    assert_eq!(
        weir.metric(
            "weir_receiver_refused_items_total",
            &["reason=\"wal_full\"", "signal=\"traces\""]
        ),
        (refused * 50) as f64
    );
    assert_eq!(
        weir.metric("weir_wal_refused_requests_total", &[]),
        refused as f64
    );
    let health = http_request(weir.admin, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(health.status, 200, "full is not unhealthy");

    let reader = FifoReader::start(&fifo);
    let got = reader.wait_for(&acknowledged);
    assert!(acknowledged.is_subset(&got), "acknowledged spans delivered");
    // Delivered segments are deleted, so the log takes requests again.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while post(&weir, 100, 1000) != 200 {
        assert!(std::time::Instant::now() < deadline, "log never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(weir);
    reader.join();
}

#[test]
fn drop_oldest_counts_exactly_what_it_deleted() {
    let wal = tempfile::tempdir().unwrap();
    let (weir, fifo) = blocked(
        wal.path(),
        ", max_bytes: 512KiB, segment_bytes: 64KiB, compress: false, when_full: drop_oldest",
    );
    let sent = 40;
    for n in 0..sent {
        assert_eq!(post(&weir, n, 1000), 200, "drop_oldest never refuses");
    }
    let dropped = weir.metric("weir_wal_dropped_items_total", &["signal=\"traces\""]);
    assert!(
        dropped >= 500.0,
        "much of 2000 spans cannot fit in 512 KiB and the queues: {dropped}"
    );
    let reader = FifoReader::start(&fifo);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut delivered;
    loop {
        delivered = reader.span_ids().len();
        if delivered as f64 + dropped >= (sent * 50) as f64 || std::time::Instant::now() > deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let delivered = reader.span_ids();
    let distinct: BTreeSet<_> = delivered.iter().collect();
    assert_eq!(distinct.len(), delivered.len(), "nothing delivered twice");
    assert_eq!(
        delivered.len() as f64 + dropped,
        (sent * 50) as f64,
        "every acknowledged span is delivered or counted as dropped, never both"
    );
    drop(weir);
    reader.join();
}

#[test]
fn a_clean_restart_replays_nothing_and_a_missed_deadline_replays_the_rest() {
    let wal = tempfile::tempdir().unwrap();
    // A clean stop after delivery: the next start finds nothing to replay, and nothing arrives twice.
    let mut weir = Weir::start_with(options(wal.path(), ""));
    for n in 0..20 {
        assert_eq!(post(&weir, n, 10), 200);
    }
    assert_eq!(weir.wait_for(1000, Weir::span_count), 1000);
    assert!(weir.terminate().success());
    let data = weir.data.clone();
    let dir = std::mem::replace(&mut weir.dir, tempfile::tempdir().unwrap());
    drop(weir);
    let mut weir = Weir::start_in(dir, data, options(wal.path(), ""));
    assert_eq!(
        weir.metric("weir_wal_recovered_records_total", &["signal=\"traces\""]),
        0.0
    );
    for n in 20..30 {
        assert_eq!(post(&weir, n, 10), 200);
    }
    assert_eq!(weir.wait_for(1500, Weir::span_count), 1500);
    assert!(weir.terminate().success());
    let ids: Vec<String> = weir.traces().iter().flat_map(span_ids).collect();
    assert_eq!(ids.len(), 1500, "no span twice");
    drop(weir);

    // The destination is stuck through shutdown: the deadline passes, weir says what it kept, and the
    // next start (destination back) delivers it.
    let (mut stuck, _fifo) = blocked(wal.path(), "");
    let mut acknowledged = BTreeSet::new();
    for n in 100..110 {
        assert_eq!(post(&stuck, n, 10), 200);
        acknowledged.extend(span_ids(&span_request(n, 10)));
    }
    assert!(!stuck.terminate().success(), "the deadline passed");
    drop(stuck);
    let weir = Weir::start_with(options(wal.path(), ""));
    assert_eq!(
        weir.metric("weir_wal_recovered_records_total", &["signal=\"traces\""]),
        10.0
    );
    assert_eq!(weir.wait_for(500, Weir::span_count), 500);
    let got: BTreeSet<String> = weir.traces().iter().flat_map(span_ids).collect();
    assert_eq!(got, acknowledged);
}

#[test]
fn a_disk_error_fails_readiness_until_writing_works_again() {
    let wal = tempfile::tempdir().unwrap();
    let weir = Weir::start_with(options(
        wal.path(),
        ", segment_bytes: 64KiB, max_bytes: 8MiB, compress: false",
    ));
    // The segment roll runs after the acknowledgement: poll for the status it leads to.
    let ready = |want: u16| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let status = http_request(weir.admin, "GET", "/readyz", &[], b"")
                .unwrap()
                .status;
            if status == want || std::time::Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Two 55 KB records fill the first segment; the next one's file leads to a device where every
    // write fails with ENOSPC.
    let next_segment = wal.path().join("traces").join(format!("{:020}.wal", 2));
    std::os::unix::fs::symlink("/dev/full", &next_segment).unwrap();
    assert_eq!(post(&weir, 0, 1000), 200);
    assert_eq!(ready(200), 200);
    assert_eq!(
        post(&weir, 1, 1000),
        200,
        "committed before the segment roll failed"
    );
    assert_eq!(ready(503), 503, "a disk error fails readiness");
    assert!(weir.metric("weir_wal_errors_total", &["op=\"roll\""]) >= 1.0);
    assert_eq!(
        post(&weir, 2, 1000),
        200,
        "writing goes on in the old segment"
    );
    std::fs::remove_file(&next_segment).unwrap();
    assert_eq!(post(&weir, 3, 1000), 200);
    assert_eq!(ready(200), 200, "healthy again once the disk works");
    assert_eq!(weir.wait_for(200, Weir::span_count), 200, "nothing lost");
    let health = http_request(weir.admin, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(health.status, 200);
}

#[test]
fn sigterm_under_load_delivers_everything_acknowledged_and_leaves_nothing_to_replay() {
    let wal = tempfile::tempdir().unwrap();
    let mut weir = Weir::start_with(options(wal.path(), ""));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let http = weir.http;
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for n in (t * 10_000)..(t * 10_000 + 10_000) {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let body = span_request(n, 10).encode_to_vec();
                    let headers = [("Content-Type", "application/x-protobuf")];
                    match http_request(http, "POST", "/v1/traces", &headers, &body) {
                        Ok(r) if r.status == 200 => acked.push(n),
                        _ => {}
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    assert!(weir.terminate().success(), "{}", weir.log());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged: BTreeSet<String> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .flat_map(|n| span_ids(&span_request(n, 10)))
        .collect();
    assert!(
        acknowledged.len() > 500,
        "load was flowing: {}",
        acknowledged.len()
    );
    let delivered: Vec<String> = weir.traces().iter().flat_map(span_ids).collect();
    let distinct: BTreeSet<String> = delivered.iter().cloned().collect();
    assert_eq!(distinct.len(), delivered.len(), "nothing twice");
    assert!(
        acknowledged.is_subset(&distinct),
        "everything acknowledged delivered"
    );
    drop(weir);
    let weir = Weir::start_with(options(wal.path(), ""));
    assert_eq!(
        weir.metric("weir_wal_recovered_records_total", &["signal=\"traces\""]),
        0.0,
        "a clean stop leaves nothing to replay"
    );
}

#[test]
fn after_kill_9_records_delivered_out_of_order_are_not_replayed() {
    let wal = tempfile::tempdir().unwrap();
    // Trace 1 arrives without its root and is held for a minute; trace 0, sent after it, is decided
    // as soon as its root is in and delivered: its record completes while the first stays out.
    let opts = || {
        Options {
        pipeline: durable(wal.path(), "").replace(
            "pipeline:\n",
            "pipeline:\n  sample:\n    tail: {decision_wait: 60s, root_wait: 0s, policies: [{name: all, probability: 1.0}]}\n",
        ),
        ..options(wal.path(), "")
    }
    };
    let spans = weir_pipeline::fixtures::resource_spans(1, 8);
    let request = |range: std::ops::Range<usize>| {
        let mut rs = spans.clone();
        rs[0].scope_spans[0].spans = rs[0].scope_spans[0].spans[range].to_vec();
        ExportTraceServiceRequest { resource_spans: rs }
    };
    let send = |weir: &Weir, req: &ExportTraceServiceRequest| {
        let headers = [("Content-Type", "application/x-protobuf")];
        let r = http_request(
            weir.http,
            "POST",
            "/v1/traces",
            &headers,
            &req.encode_to_vec(),
        );
        assert_eq!(r.unwrap().status, 200);
    };
    let mut weir = Weir::start_with(opts());
    send(&weir, &request(5..8));
    send(&weir, &request(0..4));
    assert_eq!(weir.wait_for(4, Weir::span_count), 4, "trace 0 delivered");
    // Two checkpoint intervals: the completion of trace 0's record is stored.
    std::thread::sleep(Duration::from_millis(300));
    weir.child.kill().unwrap();
    weir.child.wait().unwrap();
    let data = weir.data.clone();
    let dir = std::mem::replace(&mut weir.dir, tempfile::tempdir().unwrap());
    drop(weir);

    let mut weir = Weir::start_in(dir, data, opts());
    assert_eq!(
        weir.metric("weir_wal_recovered_records_total", &["signal=\"traces\""]),
        1.0,
        "only the held record is replayed"
    );
    assert!(weir.terminate().success());
    let ids: Vec<String> = weir.traces().iter().flat_map(span_ids).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (7, 7),
        "trace 0 once, and the held spans of trace 1 once (decided at shutdown): {ids:?}"
    );
}
