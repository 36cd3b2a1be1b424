//! With a blocked exporter and small queues, clients are told to retry (RESOURCE_EXHAUSTED with
//! RetryInfo, HTTP 429 with Retry-After), memory stays bounded, and once the exporter recovers every
//! acknowledged span is delivered.

mod common;

use common::{http_request, Options, Weir};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_types::StatusExt;
use weir_pipeline::fixtures;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Request `n` of 50 spans with ids unique to `n`, and `pad` bytes of attribute per span.
fn request(n: usize, pad: usize) -> ExportTraceServiceRequest {
    let mut rs: Vec<ResourceSpans> = fixtures::resource_spans(1, 50);
    for (i, span) in rs[0].scope_spans[0].spans.iter_mut().enumerate() {
        span.span_id = ((n as u64) << 16 | i as u64 | 1 << 62)
            .to_be_bytes()
            .to_vec();
        if pad > 0 {
            span.attributes.push(fixtures::kv("pad", &"p".repeat(pad)));
        }
    }
    ExportTraceServiceRequest { resource_spans: rs }
}

fn span_ids(req: &ExportTraceServiceRequest) -> Vec<String> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| hex::encode(&s.span_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_exporter_pushes_back_then_everything_acknowledged_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fifo = data.join("traces.jsonl");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let weir = Weir::start_in(
        dir,
        data,
        Options {
            pipeline: "pipeline:\n  workers: 1\n  intake_queue: {max_items: 200, max_bytes: 1MiB}\n  enqueue_timeout: 50ms\n".into(),
            exporter_extra: "    queue: {max_items: 200, max_bytes: 1MiB, overflow: block}\n    batch: {max_items: 100, max_age: 20ms}\n    max_in_flight: 1\n".into(),
            ..Options::default()
        },
    );
    let mut client = TraceServiceClient::connect(weir.grpc_url()).await.unwrap();

    // Phase 1: the exporter is stuck opening a FIFO nobody reads. Fill everything.
    let mut acknowledged = BTreeSet::new();
    let mut refused = Vec::new();
    for n in 0..40 {
        let req = request(n, 0);
        match client.export(req.clone()).await {
            Ok(_) => acknowledged.extend(span_ids(&req)),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                let retry = status.get_details_retry_info().expect("RetryInfo attached");
                assert!(retry.retry_delay.unwrap() >= Duration::from_millis(100));
                refused.push(req);
            }
        }
    }
    assert!(!refused.is_empty(), "a blocked exporter must push back");
    // Bound: intake (200) + exporter queue (200) + one request per worker (50) + the batch in flight and
    // the one waiting for its permit (each < 100 + 50).
    assert!(
        acknowledged.len() <= 800,
        "acknowledged beyond the configured bounds: {}",
        acknowledged.len()
    );

    let r = http_request(
        weir.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request(1000, 0).encode_to_vec(),
    )
    .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));

    // Memory stays bounded while clients keep pushing large requests at a full pipeline.
    let before = rss_kib(weir.child.id());
    for n in 0..60 {
        let _ = client.export(request(2000 + n, 8 * 1024)).await;
    }
    let after = rss_kib(weir.child.id());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB under refused load"
    );
    assert!(
        weir.metric(
            "weir_receiver_refused_items_total",
            &["reason=\"queue_full\"", "signal=\"traces\""]
        ) > 0.0
    );

    // Phase 2: the exporter recovers (someone reads the FIFO); clients retry what was refused.
    let received = Arc::new(Mutex::new(Vec::<u8>::new()));
    let reader = {
        let received = received.clone();
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::open(fifo).unwrap();
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                received.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for req in refused {
        loop {
            match client.export(req.clone()).await {
                Ok(_) => {
                    acknowledged.extend(span_ids(&req));
                    break;
                }
                Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => panic!("unexpected refusal after recovery: {s:?}"),
            }
        }
    }
    assert_eq!(acknowledged.len(), 40 * 50);

    let delivered = || -> BTreeSet<String> {
        let bytes = received.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .flat_map(|l| span_ids(&serde_json::from_str::<ExportTraceServiceRequest>(l).unwrap()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !acknowledged.is_subset(&delivered()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = delivered();
    let missing: Vec<_> = acknowledged.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not delivered (first 5): {missing:?}"
    );
    drop(weir);
    let _ = reader.join();
}
