//! The generator's payloads are valid OTLP with the configured shapes, deterministic by seed; and
//! open-loop latency includes queueing delay: against a deliberately stalled target it shows the
//! wait that a closed loop hides.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;
use weir_loadtest::workload::{LoadSignal, Workload};

fn logs(w: &Workload) -> Vec<ExportLogsServiceRequest> {
    w.payloads()
        .iter()
        .map(|p| ExportLogsServiceRequest::decode(&p.body[..]).unwrap())
        .collect()
}

#[test]
fn log_payloads_have_the_configured_shape() {
    let w = Workload {
        batch: 400,
        services: 4,
        attributes: 3,
        attribute_bytes: 16,
        body_bytes: 80,
        cardinality: 7,
        trace_context_share: 0.6,
        traceparent_share: 0.5,
        error_share: 0.1,
        severity_mix: vec![0.0, 100.0, 0.0],
        distinct_requests: 10,
        ..Workload::default()
    };
    let requests = logs(&w);
    assert_eq!(requests.len(), 10);
    let (mut total, mut with_context, mut traceparent, mut errors) = (0, 0, 0, 0);
    let mut routes = HashSet::new();
    let mut services = HashSet::new();
    for req in &requests {
        let n: usize = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .map(|s| s.log_records.len())
            .sum();
        assert_eq!(n, 400, "batch size");
        for rl in &req.resource_logs {
            let attrs = &rl.resource.as_ref().unwrap().attributes;
            services.insert(format!(
                "{:?}",
                attrs
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .unwrap()
                    .value
            ));
            for r in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                total += 1;
                let Some(Value::StringValue(body)) = r.body.as_ref().and_then(|b| b.value.clone())
                else {
                    panic!("string body")
                };
                assert_eq!(body.len(), 80);
                let tp = r.attributes.iter().any(|kv| kv.key == "traceparent");
                assert_eq!(
                    r.attributes.len(),
                    1 + 3 + usize::from(tp),
                    "route + 3 + traceparent"
                );
                for kv in r.attributes.iter().filter(|kv| kv.key.starts_with("attr.")) {
                    let Some(Value::StringValue(v)) =
                        kv.value.as_ref().and_then(|v| v.value.clone())
                    else {
                        panic!()
                    };
                    assert_eq!(v.len(), 16);
                }
                let route = r
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "http.route")
                    .unwrap();
                routes.insert(format!("{:?}", route.value));
                traceparent += usize::from(tp);
                with_context += usize::from(tp || r.trace_id.len() == 16);
                if r.trace_id.len() == 16 {
                    assert_eq!(r.span_id.len(), 8);
                }
                match r.severity_number {
                    17 => errors += 1,
                    9 => {}
                    other => panic!("severity {other} not in the mix"),
                }
            }
        }
    }
    let share = |n: usize| n as f64 / total as f64;
    assert!(
        (share(with_context) - 0.6).abs() < 0.03,
        "context {}",
        share(with_context)
    );
    assert!(
        (share(traceparent) - 0.3).abs() < 0.03,
        "traceparent {}",
        share(traceparent)
    );
    assert!(
        (share(errors) - 0.1).abs() < 0.02,
        "errors {}",
        share(errors)
    );
    assert_eq!(routes.len(), 7, "label cardinality");
    assert_eq!(services.len(), 4);
    assert_eq!(
        w.payloads()
            .iter()
            .map(|p| p.body.clone())
            .collect::<Vec<_>>(),
        w.payloads()
            .iter()
            .map(|p| p.body.clone())
            .collect::<Vec<_>>(),
        "same seed, same bytes"
    );
    let other = Workload {
        seed: 7,
        ..w.clone()
    };
    assert_ne!(other.payloads()[0].body, w.payloads()[0].body);
}

#[test]
fn span_payloads_form_traces_with_roots_and_errors() {
    let w = Workload {
        signal: LoadSignal::Traces,
        batch: 800,
        spans_per_trace: 8,
        error_share: 0.25,
        distinct_requests: 4,
        ..Workload::default()
    };
    let mut traces: HashMap<Vec<u8>, Vec<(bool, bool)>> = HashMap::new();
    for p in w.payloads() {
        let req = ExportTraceServiceRequest::decode(&p.body[..]).unwrap();
        for s in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            assert_eq!((s.trace_id.len(), s.span_id.len()), (16, 8));
            assert!(s.end_time_unix_nano > s.start_time_unix_nano);
            traces.entry(s.trace_id.clone()).or_default().push((
                s.parent_span_id.is_empty(),
                s.status.as_ref().unwrap().code == 2,
            ));
        }
    }
    assert_eq!(traces.len(), 400, "800 spans / 8 per trace × 4 requests");
    assert!(traces
        .values()
        .all(|t| t.len() == 8 && t.iter().filter(|(root, _)| *root).count() == 1));
    let failing = traces
        .values()
        .filter(|t| t.iter().any(|(_, e)| *e))
        .count() as f64
        / 400.0;
    assert!((failing - 0.25).abs() < 0.08, "failing share {failing}");
}

/// An OTLP/HTTP target that serves one request at a time, each taking `stall`.
fn stalled_target(stall: Duration) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let _ = read_request(&mut reader);
            std::thread::sleep(stall);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    addr
}

/// Small requests over OTLP/HTTP from one connection, quietly: what the stalled targets serve.
const SMALL_HTTP_RUN: &[&str] = &[
    "--protocol",
    "http",
    "--batch",
    "10",
    "--distinct-requests",
    "2",
    "--connections",
    "1",
    "--quiet",
];

fn options(addr: std::net::SocketAddr, extra: &[&str]) -> weir_loadtest::Options {
    use clap::Parser;
    let endpoint = format!("http://{addr}");
    let mut args = vec!["weir-loadtest", "--endpoint", &endpoint];
    args.extend_from_slice(SMALL_HTTP_RUN);
    args.extend_from_slice(extra);
    weir_loadtest::Options::try_parse_from(args).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_the_queueing_a_closed_loop_hides() {
    let addr = stalled_target(Duration::from_millis(100));
    // 20 requests/s offered to a target that serves 10/s, for 2 s: the queue grows to ~2 s.
    let open = weir_loadtest::run(&options(
        addr,
        &["--mode", "open", "--rate", "200", "--duration", "2"],
    ))
    .await
    .unwrap();
    let step = &open.steps[0];
    assert_eq!(step.requests, 40);
    assert_eq!(step.failed_items, 0);
    assert!(
        step.latency_ms.p99 > 1200.0,
        "p99 {} ms should include ~2 s of queueing",
        step.latency_ms.p99
    );
    let closed = weir_loadtest::run(&options(addr, &["--mode", "closed", "--duration", "1"]))
        .await
        .unwrap();
    assert!(
        closed.steps[0].latency_ms.p99 < 400.0,
        "a closed loop only sees the service time: {} ms",
        closed.steps[0].latency_ms.p99
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_ranks_a_faster_target_first_and_writes_its_report() {
    use clap::Parser;
    // Serves one request at a time: 20 ms each vs 60 ms each → about 3× the throughput.
    let (fast, slow) = (
        stalled_target(Duration::from_millis(20)),
        stalled_target(Duration::from_millis(60)),
    );
    let out = tempfile_dir();
    let (fast_t, slow_t, out_s) = (
        format!("fast=http://{fast}"),
        format!("slow=http://{slow}"),
        out.display().to_string(),
    );
    let o = weir_loadtest::compare::CompareOptions::try_parse_from(
        [
            "compare",
            "--target",
            &fast_t,
            "--target",
            &slow_t,
            "--rounds",
            "2",
            "--rest",
            "0",
            "--duration",
            "1",
            "--out",
            &out_s,
        ]
        .into_iter()
        .chain(SMALL_HTTP_RUN.iter().copied()),
    )
    .unwrap();
    let c = weir_loadtest::compare::run(&o).await.unwrap();
    let names: Vec<_> = c.rows.iter().map(|r| r.target.name.as_str()).collect();
    assert_eq!(names, ["fast", "slow"]);
    assert!(c.rows.iter().all(|r| r.rounds.len() == 2));
    let ratio = c.rows[0].items_per_second / c.rows[1].items_per_second;
    assert!((2.0..4.5).contains(&ratio), "fast ÷ slow = {ratio}");
    let table = c.summary();
    assert!(table.contains("fast") && table.contains("1.00"), "{table}");
    assert!(out.join("compare.json").exists() && out.join("compare.svg").exists());
    std::fs::remove_dir_all(out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_keeps_several_requests_outstanding_per_connection() {
    // The target serves each connection's requests one at a time, 50 ms each; with HTTP/1.1 the
    // client opens a connection per outstanding request, so 4 in flight ≈ 4× the requests.
    let addr = stalled_target_per_connection(Duration::from_millis(50));
    let one = weir_loadtest::run(&options(addr, &["--mode", "closed", "--duration", "1"]))
        .await
        .unwrap();
    let four = weir_loadtest::run(&options(
        addr,
        &["--mode", "closed", "--duration", "1", "--in-flight", "4"],
    ))
    .await
    .unwrap();
    let (a, b) = (one.steps[0].requests as f64, four.steps[0].requests as f64);
    assert!(b > a * 2.5, "1 in flight: {a} requests, 4 in flight: {b}");
    assert_eq!(four.in_flight, 4);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "weir-compare-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Like [`stalled_target`], but every connection is served by its own thread.
fn stalled_target_per_connection(stall: Duration) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || serve_keepalive(stream, stall));
        }
    });
    addr
}

fn serve_keepalive(mut stream: std::net::TcpStream, stall: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    while read_request(&mut reader).is_some() {
        std::thread::sleep(stall);
        if stream
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            )
            .is_err()
        {
            return;
        }
    }
}

/// Reads one HTTP/1.1 request (headers, then a `content-length` body); `None` once the peer is gone.
fn read_request(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}
