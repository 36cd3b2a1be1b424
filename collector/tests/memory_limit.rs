//! `memory_limit` holds under overload: queues configured far larger than the limit, clients sending
//! as fast as they can, and the memory held where it really piles up — behind a hung upstream, and in
//! the tail sampler's buffer. RSS is sampled from /proc throughout and must stay within 1.25× the
//! limit; clients must be pushed back (never dropped), and everything acknowledged must arrive once
//! the upstream heals.

mod common;

use common::{rss_kib, Options, Weir};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_faults::{Fault, Proxy};
use weir_loadtest::transport::{Connection, Outcome, Protocol, Target};
use weir_loadtest::workload::{LoadSignal, Profile, Workload};

const LIMIT_MIB: u64 = 128;
/// One flood at a time: two would share the two cores and neither would reach the limit.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Queues that would hold ten times the limit if nothing else stopped them.
const HUGE_QUEUES: &str = "{max_items: 10000000, max_bytes: 1280MiB}";

struct Flood {
    acknowledged: u64,
    refused: u64,
    failed: u64,
    peak_rss_mib: f64,
    /// Items acknowledged in the flood's last two seconds.
    late: u64,
}

/// Records with ten 40-byte attributes and a 200-byte body.
fn light(signal: LoadSignal) -> Workload {
    Workload {
        signal,
        attributes: 10,
        attribute_bytes: 40,
        body_bytes: 200,
        ..Workload::default()
    }
}

/// What the OpenTelemetry SDKs send: 500 records of about 640 bytes per request (320 KB).
fn sdk(signal: LoadSignal) -> Workload {
    Workload {
        signal,
        profile: Profile::Sdk,
        ..Workload::default()
    }
}

/// Sends `workload` from `connections` clients with `in_flight` requests each for `duration` (each
/// request backs off 20 ms when refused) while sampling the target's RSS.
fn flood(
    weir: &Weir,
    protocol: Protocol,
    workload: Workload,
    (connections, in_flight): (usize, usize),
    duration: Duration,
) -> Flood {
    let signal = workload.signal;
    let endpoint = match protocol {
        Protocol::Grpc => weir.grpc_url(),
        Protocol::Http => format!("http://{}", weir.http),
    };
    let target = Target {
        endpoint,
        protocol,
        compression: weir_loadtest::transport::Compression::None,
        timeout: 30.0,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let pid = weir.child.id();
    let admin = weir.admin;
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut peak, mut heap_peak) = (0, 0.0f64);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                n += 1;
                if n % 5 == 0 {
                    if let Ok(r) = common::http_request(admin, "GET", "/metrics", &[], b"") {
                        let text = String::from_utf8_lossy(&r.body).to_string();
                        if let Some(v) = text
                            .lines()
                            .find(|l| l.starts_with("weir_memory_heap_bytes"))
                            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        {
                            heap_peak = heap_peak.max(v);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("peak heap {:.0} MiB", heap_peak / 1048576.0);
            peak as f64 / 1024.0
        })
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (acknowledged, refused, failed, late) = runtime.block_on(async {
        let payloads = workload.payloads();
        let counts = Arc::new([
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
            AtomicU64::new(0),
        ]);
        let start = Instant::now();
        let mut tasks = Vec::new();
        let mut connection = None;
        for c in 0..connections * in_flight {
            // gRPC multiplexes the requests of one connection; OTLP/HTTP pools connections.
            if c % in_flight == 0 {
                connection = Some(Connection::connect(&target, signal).await.unwrap());
            }
            let mut client = connection.clone().unwrap();
            let payloads = client.prepare(payloads.clone()).unwrap();
            let counts = counts.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while start.elapsed() < duration {
                    let p = &payloads[i % payloads.len()];
                    i += 1;
                    match client.send(p).await {
                        Outcome::Accepted { rejected } => {
                            counts[0].fetch_add(p.items - rejected, Ordering::Relaxed);
                            if start.elapsed() + Duration::from_secs(2) > duration {
                                counts[3].fetch_add(p.items - rejected, Ordering::Relaxed);
                            }
                        }
                        Outcome::Refused => {
                            counts[1].fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Outcome::Failed => {
                            counts[2].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = |i: usize| counts[i].load(Ordering::Relaxed);
        (n(0), n(1), n(2), n(3))
    });
    stop.store(true, Ordering::Relaxed);
    Flood {
        acknowledged,
        refused,
        failed,
        peak_rss_mib: sampler.join().unwrap(),
        late,
    }
}

/// RSS stayed within 1.25 × the limit, the limit pushed clients back, and no request failed.
fn assert_held(weir: &Weir, f: &Flood, what: &str) {
    let refused_memory = assert_within_limit(weir, f, what);
    assert!(
        refused_memory > 0.0,
        "{what}: the limit never pushed back (the test did not reach it)"
    );
}

/// RSS stayed within 1.25 × the limit and no request failed; returns the requests refused at the
/// memory limit.
fn assert_within_limit(weir: &Weir, f: &Flood, what: &str) -> f64 {
    let refused_memory = weir.metric(
        "weir_receiver_refused_requests_total",
        &["reason=\"memory_limit\""],
    );
    eprintln!(
        "{what}: acknowledged {} items, {} requests refused ({refused_memory} at the memory limit), {} failed, peak RSS {:.0} MiB, heap now {:.0} MiB",
        f.acknowledged,
        f.refused,
        f.failed,
        f.peak_rss_mib,
        weir.metric("weir_memory_heap_bytes", &[]) / 1048576.0
    );
    assert!(
        f.peak_rss_mib <= LIMIT_MIB as f64 * 1.25,
        "{what}: RSS reached {:.0} MiB with memory_limit {LIMIT_MIB}MiB; log:\n{}",
        f.peak_rss_mib,
        weir.log()
    );
    assert_eq!(f.failed, 0, "{what}: requests failed; log:\n{}", weir.log());
    assert_eq!(
        weir.metric("weir_memory_limit_bytes", &[]),
        (LIMIT_MIB << 20) as f64
    );
    refused_memory
}

#[test]
fn a_hung_upstream_fills_memory_to_the_limit_and_no_further_and_loses_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let gateway = Weir::start_with(Options {
        destination: Some("    blackhole: {}".into()),
        ..Options::default()
    });
    let proxy = Proxy::start(gateway.grpc, Fault::Hang);
    let edge = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\"], protocol: grpc}}\n    timeout: 2s\n    queue: {HUGE_QUEUES}",
            proxy.addr()
        )),
        pipeline: format!(
            "pipeline: {{workers: 2, intake_queue: {HUGE_QUEUES}}}\nmemory_limit: {LIMIT_MIB}MiB\n"
        ),
        ..Options::default()
    });
    // What SDKs send, as many of them do: the forwarder's requests are megabytes, and each attempt
    // behind the hung upstream copies them again after the receivers admitted the data.
    let f = flood(
        &edge,
        Protocol::Grpc,
        sdk(LoadSignal::Logs),
        (8, 8),
        Duration::from_secs(10),
    );
    assert_held(&edge, &f, "hung upstream");
    proxy.set(Fault::Pass);
    let deadline = Instant::now() + Duration::from_secs(120);
    let stored = || gateway.metric("weir_receiver_accepted_items_total", &["signal=\"logs\""]);
    while stored() < f.acknowledged as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        stored(),
        f.acknowledged as f64,
        "everything acknowledged arrives once the upstream heals; edge log:\n{}",
        edge.log()
    );
    assert_eq!(
        edge.metric("weir_exporter_dropped_items_total", &[]),
        0.0,
        "{}",
        edge.log()
    );
}

#[test]
fn tail_sampling_holding_spans_stays_within_the_limit_and_keeps_ingesting() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let weir = Weir::start_with(Options {
        destination: Some("    blackhole: {}".into()),
        pipeline: format!(
            "pipeline:\n  workers: 2\n  intake_queue: {HUGE_QUEUES}\n  sample:\n    tail:\n      decision_wait: 120s\n      root_wait: 120s\n      max_traces: 10000000\n      max_bytes: 1280MiB\n      policies: [{{name: errors, error: true}}, {{name: rest, probability: 1.0}}]\nmemory_limit: {LIMIT_MIB}MiB\n"
        ),
        exporter_extra: format!("    queue: {HUGE_QUEUES}\n"),
        ..Options::default()
    });
    let f = flood(
        &weir,
        Protocol::Http,
        light(LoadSignal::Traces),
        (8, 1),
        Duration::from_secs(10),
    );
    assert_held(&weir, &f, "tail sampling");
    let held = weir.metric("weir_tail_bytes", &[]);
    assert!(
        held <= (LIMIT_MIB << 20) as f64 / 4.0,
        "the tail buffer is held to a quarter of the limit: {held}"
    );
    assert!(
        f.late > 0,
        "ingest stalled: the tail buffer must decide early rather than leave the receivers refusing; log:\n{}",
        weir.log()
    );
}

/// A gateway's exporters are isolated: one whose upstream hangs, and whose queue may drop
/// (`overflow: drop_newest`) but is configured far larger than the limit, must not fill memory
/// until the receivers refuse everything, starving the exporter that keeps up.
#[test]
fn a_stuck_exporter_that_may_drop_does_not_starve_the_one_that_keeps_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let hung = Proxy::start("127.0.0.1:9".parse().unwrap(), Fault::Hang);
    let weir = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\"], protocol: grpc}}\n    timeout: 2s\n    queue: {{max_items: 10000000, max_bytes: 1280MiB, overflow: drop_newest}}",
            hung.addr()
        )),
        exporter_extra: "  healthy:\n    blackhole: {}\n".into(),
        pipeline: format!(
            "pipeline: {{workers: 2, intake_queue: {HUGE_QUEUES}}}\nmemory_limit: {LIMIT_MIB}MiB\n"
        ),
        ..Options::default()
    });
    let f = flood(
        &weir,
        Protocol::Grpc,
        sdk(LoadSignal::Logs),
        (8, 8),
        Duration::from_secs(10),
    );
    assert_within_limit(&weir, &f, "a stuck exporter that may drop");
    assert!(
        f.late > f.acknowledged / 20,
        "ingest stalled: {} of {} items acknowledged in the last 2 s; log:\n{}",
        f.late,
        f.acknowledged,
        weir.log()
    );
    let sent = || weir.metric("weir_exporter_sent_items_total", &["exporter=\"healthy\""]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent() < f.acknowledged as f64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        sent(),
        f.acknowledged as f64,
        "the healthy exporter got everything acknowledged"
    );
    let shed = weir.metric(
        "weir_exporter_dropped_items_total",
        &["exporter=\"out\"", "reason=\"memory_limit\""],
    );
    assert!(
        shed > 0.0,
        "the stuck exporter's queue shed what it had no room for, counted"
    );
}
