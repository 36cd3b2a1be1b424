//! Destinations that fail the way real ones do: hang, stall mid-answer, reset mid-body, answer with
//! nonsense or with absurd `Retry-After` values. A fault proxy (testing/faults) sits between the real
//! `weir` binary and its real destination (another weir, the Loki test receiver, a ClickHouse server).
//! Every case sends, holds the fault, checks that nothing was counted sent that the destination does
//! not have, heals the destination, and then checks that everything acknowledged arrived and that
//! the exporter's books balance:
//! received == sent + failed + dropped + in flight, with nothing failed or dropped.

mod common;

use common::{http_request, Options, Weir};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use weir_faults::{Fault, Proxy};

const RECORDS: usize = 100;
const EXPORTER: &str = "exporter=\"out\"";

/// Sends `n` log records with bodies `rec-<from>` … over OTLP/HTTP JSON; each request is acknowledged.
fn send_logs(weir: &Weir, from: usize, n: usize) {
    for chunk in (from..from + n).collect::<Vec<_>>().chunks(25) {
        let records: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    r#"{{"timeUnixNano":"{}","body":{{"stringValue":"rec-{i}"}}}}"#,
                    now_nanos() + *i as u128
                )
            })
            .collect();
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"faulty"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            records.join(",")
        );
        let r = http_request(
            weir.http,
            "POST",
            "/v1/logs",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Body → how many times a gateway weir stored it.
fn stored_bodies(gateway: &Weir) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for req in gateway.logs() {
        for r in req.resource_logs {
            for s in r.scope_logs {
                for l in s.log_records {
                    let body = match l.body.and_then(|b| b.value) {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => s,
                        other => format!("{other:?}"),
                    };
                    *seen.entry(body).or_insert(0) += 1;
                }
            }
        }
    }
    seen
}

fn wait_until(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The exporter's books: every item it took is sent, failed, dropped or still held.
struct Books {
    received: f64,
    sent: f64,
    failed: f64,
    dropped: f64,
    in_flight: f64,
}

fn books(edge: &Weir) -> Books {
    let m = |name| edge.metric(name, &[EXPORTER, "signal=\"logs\""]);
    Books {
        received: m("weir_exporter_received_items_total"),
        sent: m("weir_exporter_sent_items_total"),
        failed: m("weir_exporter_failed_items_total"),
        dropped: m("weir_exporter_dropped_items_total"),
        in_flight: m("weir_exporter_in_flight_items"),
    }
}

/// After healing: all `RECORDS` items sent, nothing failed or dropped, nothing held, books balanced.
fn assert_settled(edge: &Weir) {
    wait_until(
        "the exporter to settle",
        Duration::from_secs(30),
        || {
            let b = books(edge);
            b.sent >= RECORDS as f64 && b.in_flight == 0.0
        },
        || edge.log(),
    );
    let b = books(edge);
    assert_eq!(
        b.received,
        b.sent + b.failed + b.dropped + b.in_flight,
        "the books do not balance; log:\n{}",
        edge.log()
    );
    assert_eq!(
        (b.sent, b.failed, b.dropped),
        (RECORDS as f64, 0.0, 0.0),
        "{}",
        edge.log()
    );
}

fn durable_pipeline(dir: &tempfile::TempDir) -> String {
    format!(
        "pipeline: {{workers: 2}}\ndurable: {{dir: \"{}\", checkpoint_interval: 100ms}}\n",
        dir.path().display()
    )
}

/// Sends `n` log records `rec-<i>` through the Rust OpenTelemetry SDK (gRPC), flushed: every one of
/// them was acknowledged when this returns.
fn send_logs_with_sdk(weir: &Weir, n: usize) {
    use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry_otlp::WithExportConfig;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(weir.grpc_url())
            .build()
            .unwrap();
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("faulty")
                    .build(),
            )
            .build();
        let logger = provider.logger("faults");
        for i in 0..n {
            let mut record = logger.create_log_record();
            record.set_body(AnyValue::from(format!("rec-{i}")));
            record.set_timestamp(std::time::SystemTime::now());
            logger.emit(record);
        }
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    });
}

/// Which client sends the records to the edge.
#[derive(Clone, Copy, PartialEq)]
enum EdgeClient {
    Http,
    RustSdk,
}

/// Edge weir → fault proxy → gateway weir over OTLP (`protocol` grpc or http).
fn otlp_case(protocol: &str, fault: Fault, durable: bool) {
    otlp_case_from(EdgeClient::Http, protocol, fault, durable);
}

fn otlp_case_from(client: EdgeClient, protocol: &str, fault: Fault, durable: bool) {
    otlp_case_healing(client, protocol, fault, durable, true);
}

/// With `cut` false, healing leaves the connections opened under the fault as they are: a hung
/// peer's socket stays open and silent, and only the client can notice and let go of it.
fn otlp_case_healing(client: EdgeClient, protocol: &str, fault: Fault, durable: bool, cut: bool) {
    let gateway = Weir::start();
    let target = if protocol == "grpc" {
        gateway.grpc
    } else {
        gateway.http
    };
    let proxy = Proxy::start(target, fault.clone());
    let wal = tempfile::tempdir().unwrap();
    let edge = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\"], protocol: {protocol}}}",
            proxy.addr()
        )),
        exporter_extra: "    timeout: 1s\n    retry: {initial_backoff: 50ms, max_backoff: 500ms}\n    batch: {max_age: 20ms}\n".into(),
        pipeline: if durable { durable_pipeline(&wal) } else { "pipeline: {workers: 2}\n".into() },
        ..Options::default()
    });
    match client {
        EdgeClient::Http => send_logs(&edge, 0, RECORDS),
        EdgeClient::RustSdk => send_logs_with_sdk(&edge, RECORDS),
    }
    std::thread::sleep(Duration::from_millis(2500));
    let stored = stored_bodies(&gateway).len();
    let sent = books(&edge).sent as usize;
    assert!(
        sent <= stored,
        "{fault:?} over {protocol}: {sent} counted sent but the gateway stored {stored}; log:\n{}",
        edge.log()
    );
    proxy.set(Fault::Pass);
    if cut {
        proxy.cut();
    }
    wait_until(
        "every record at the gateway",
        Duration::from_secs(30),
        || stored_bodies(&gateway).len() == RECORDS,
        || edge.log(),
    );
    assert_settled(&edge);
    if durable {
        wait_until(
            "the log to let go of every record",
            Duration::from_secs(10),
            || edge.metric("weir_wal_undelivered_records", &["signal=\"logs\""]) == 0.0,
            || edge.log(),
        );
    }
    let copies: usize = stored_bodies(&gateway).values().sum();
    eprintln!("{fault:?} over {protocol} (durable: {durable}): {RECORDS} acknowledged, {RECORDS} delivered, {} duplicates", copies - RECORDS);
}

#[test]
fn otlp_grpc_upstream_that_hangs() {
    otlp_case("grpc", Fault::Hang, false);
}

#[test]
fn otlp_grpc_upstream_that_hangs_durable() {
    otlp_case("grpc", Fault::Hang, true);
}

#[test]
fn otlp_grpc_upstream_that_hangs_with_the_rust_sdk_as_client() {
    otlp_case_from(EdgeClient::RustSdk, "grpc", Fault::Hang, true);
    otlp_case_from(
        EdgeClient::RustSdk,
        "http",
        Fault::ResetAfter { request_bytes: 100 },
        false,
    );
}

/// The hung connection is never closed by anyone but Weir: it must stop using it (gRPC pings) and
/// reconnect, or every retry times out on it for ever.
#[test]
fn otlp_grpc_upstream_whose_hung_connection_stays_open() {
    otlp_case_healing(EdgeClient::Http, "grpc", Fault::Hang, false, false);
}

#[test]
fn otlp_http_upstream_that_hangs() {
    otlp_case("http", Fault::Hang, false);
}

#[test]
fn otlp_http_upstream_that_hangs_durable() {
    otlp_case("http", Fault::Hang, true);
}

#[test]
fn otlp_upstream_that_answers_after_five_seconds() {
    otlp_case("grpc", Fault::Delay(Duration::from_secs(5)), false);
    otlp_case("http", Fault::Delay(Duration::from_secs(5)), false);
}

#[test]
fn otlp_upstream_that_stalls_mid_answer() {
    otlp_case("grpc", Fault::StallResponse { after: 30 }, false);
    otlp_case("http", Fault::StallResponse { after: 12 }, true);
}

#[test]
fn otlp_upstream_that_resets_mid_body() {
    otlp_case("grpc", Fault::ResetAfter { request_bytes: 300 }, false);
    otlp_case("http", Fault::ResetAfter { request_bytes: 300 }, false);
}

#[test]
fn otlp_upstream_that_is_not_speaking_http2() {
    otlp_case("grpc", Fault::http(200, &[], b"hello"), false);
}

#[test]
fn otlp_http_upstream_that_answers_200_with_a_captive_portal_page() {
    let portal = b"<html><body>Please log in to continue</body></html>";
    otlp_case(
        "http",
        Fault::http(200, &[("content-type", "text/html")], portal),
        false,
    );
}

#[test]
fn otlp_http_upstream_with_absurd_retry_after_values() {
    for value in [
        "18446744073709551615",
        "99999999999999999999999",
        "-1",
        "Wed, 21 Oct 2099 07:28:00 GMT",
        "soon",
    ] {
        otlp_case(
            "http",
            Fault::http(429, &[("retry-after", value)], b"slow down"),
            false,
        );
        otlp_case(
            "http",
            Fault::http(503, &[("retry-after", value)], b""),
            false,
        );
    }
}

/// Weir → fault proxy → the Loki test receiver.
async fn loki_case(fault: Fault) {
    let loki = loki_receiver::Receiver::start(loki_receiver::Limits::default()).await;
    let proxy = Proxy::start(loki.addr, fault.clone());
    let edge = Weir::start_with(Options {
        destination: Some(format!("    loki: {{endpoint: \"http://{}\"}}", proxy.addr())),
        exporter_extra: "    timeout: 1s\n    retry: {initial_backoff: 50ms, max_backoff: 500ms}\n    batch: {max_age: 20ms}\n".into(),
        ..Options::default()
    });
    send_logs(&edge, 0, RECORDS);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sent = books(&edge).sent as usize;
    let stored = loki.entry_count("fake");
    assert!(
        sent <= stored,
        "{fault:?}: {sent} counted sent, Loki stored {stored}; log:\n{}",
        edge.log()
    );
    proxy.set(Fault::Pass);
    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(30);
    while loki.entry_count("fake") < RECORDS {
        assert!(
            Instant::now() < deadline,
            "Loki has {}; log:\n{}",
            loki.entry_count("fake"),
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_settled(&edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_that_hangs_stalls_resets_and_lies() {
    for fault in [
        Fault::Hang,
        Fault::StallResponse { after: 12 },
        Fault::ResetAfter { request_bytes: 200 },
        Fault::http(429, &[("retry-after", "18446744073709551615")], b""),
        Fault::http(
            503,
            &[("retry-after", "Wed, 21 Oct 2099 07:28:00 GMT")],
            b"",
        ),
    ] {
        loki_case(fault).await;
    }
}

/// Weir → fault proxy → the ClickHouse server the test script starts.
fn clickhouse_case(server: SocketAddr, url: &str, fault: Fault, n: usize) {
    let db = format!("weir_faults_{}_{n}", std::process::id());
    // The schema is made before weir is ready: the faults start after that.
    let proxy = Proxy::start(server, Fault::Pass);
    let edge = Weir::start_with(Options {
        destination: Some(format!(
            "    clickhouse: {{endpoint: \"http://{}\", database: {db}}}",
            proxy.addr()
        )),
        exporter_extra: "    timeout: 2s\n    retry: {initial_backoff: 50ms, max_backoff: 500ms}\n    batch: {max_age: 20ms}\n".into(),
        ..Options::default()
    });
    let query = |sql: &str| -> String {
        let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        let r = http_request(addr, "POST", "/", &[], sql.as_bytes()).unwrap();
        String::from_utf8_lossy(&r.body).trim().to_string()
    };
    let fault_after_schema = fault;
    assert_eq!(query(&format!("EXISTS TABLE {db}.otel_logs")), "1");
    proxy.set(fault_after_schema.clone());
    proxy.cut();
    send_logs(&edge, 0, RECORDS);
    std::thread::sleep(Duration::from_millis(3000));
    let rows = |q: &str| {
        query(&format!("SELECT {q} FROM {db}.otel_logs"))
            .parse::<usize>()
            .unwrap_or(0)
    };
    let sent = books(&edge).sent as usize;
    assert!(
        sent <= rows("uniqExact(Body)"),
        "{fault_after_schema:?}: {sent} counted sent; log:\n{}",
        edge.log()
    );
    proxy.set(Fault::Pass);
    proxy.cut();
    wait_until(
        "every row",
        Duration::from_secs(40),
        || rows("uniqExact(Body)") == RECORDS,
        || edge.log(),
    );
    assert_settled(&edge);
    eprintln!(
        "clickhouse {fault_after_schema:?}: {RECORDS} acknowledged, {} rows",
        rows("count()")
    );
    query(&format!("DROP DATABASE IF EXISTS {db}"));
}

#[test]
fn clickhouse_that_hangs_stalls_resets_and_lies() {
    let Some(url) = common::clickhouse_url() else {
        return;
    };
    let server: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    for (n, fault) in [
        Fault::Hang,
        Fault::StallResponse { after: 12 },
        Fault::ResetAfter { request_bytes: 200 },
        Fault::http(503, &[("retry-after", "18446744073709551615")], b""),
    ]
    .into_iter()
    .enumerate()
    {
        clickhouse_case(server, &url, fault, n);
    }
}

/// ClickHouse down when Weir starts (a restart during an outage), resetting every connection or
/// accepting and never answering: Weir starts anyway, accepts what clients send, and delivers all
/// of it once the server is reachable.
#[test]
fn clickhouse_down_at_start_does_not_stop_weir_and_loses_nothing() {
    let Some(url) = common::clickhouse_url() else {
        return;
    };
    let server: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    for (n, fault) in [Fault::Refuse, Fault::Hang].into_iter().enumerate() {
        clickhouse_down_at_start(server, fault, n);
    }
}

/// A server that refuses (credentials) stops start-up even when another exporter's black-holed
/// server used up the wait at start: each connect still gets long enough to hear the refusal.
#[test]
fn a_refusing_clickhouse_stops_start_up_after_a_hung_one_used_the_wait() {
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let hung = Proxy::start(nowhere, Fault::Hang);
    let refusing = Proxy::start(
        nowhere,
        Fault::http(
            403,
            &[],
            b"Code: 516. DB::Exception: default: Authentication failed",
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let [grpc, http, admin] = common::free_addrs();
    let config = dir.path().join("weir.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  grpc: {{endpoint: \"{grpc}\"}}\n  http: {{endpoint: \"{http}\"}}\nexporters:\n  a_hung:\n    clickhouse: {{endpoint: \"http://{}\"}}\n  b_refusing:\n    clickhouse: {{endpoint: \"http://{}\"}}\nadmin: {{endpoint: \"{admin}\"}}\n",
            hung.addr(),
            refusing.addr()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("Weir started with a ClickHouse that refuses its credentials");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(!status.success());
    assert!(
        log.contains("exporters.b_refusing.clickhouse") && log.contains("Authentication failed"),
        "the error names the exporter and the server's reason:\n{log}"
    );
}

fn clickhouse_down_at_start(server: SocketAddr, fault: Fault, n: usize) {
    let db = format!("weir_down_at_start_{}_{n}", std::process::id());
    let proxy = Proxy::start(server, fault.clone());
    let starting = Instant::now();
    let edge = Weir::start_with(Options {
        destination: Some(format!(
            "    clickhouse: {{endpoint: \"http://{}\", database: {db}}}",
            proxy.addr()
        )),
        exporter_extra: "    timeout: 2s\n    batch: {max_age: 20ms}\n".into(),
        ..Options::default()
    });
    // The exporter takes all three signals; a server that never answers is waited for once.
    assert!(
        starting.elapsed() < Duration::from_secs(6),
        "{fault:?}: ready after {:?}",
        starting.elapsed()
    );
    send_logs(&edge, 0, RECORDS);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        books(&edge).sent,
        0.0,
        "{fault:?}: nothing can have been sent yet"
    );
    proxy.set(Fault::Pass);
    proxy.cut();
    let query = |sql: &str| -> String {
        let r = http_request(server, "POST", "/", &[], sql.as_bytes()).unwrap();
        String::from_utf8_lossy(&r.body).trim().to_string()
    };
    let rows = || {
        query(&format!("SELECT uniqExact(Body) FROM {db}.otel_logs"))
            .parse::<usize>()
            .unwrap_or(0)
    };
    wait_until(
        "every row",
        Duration::from_secs(40),
        || rows() == RECORDS,
        || edge.log(),
    );
    assert_settled(&edge);
    assert!(
        edge.log().contains("unreachable at start"),
        "{fault:?}: the operator is told why nothing is delivered yet:\n{}",
        edge.log()
    );
    query(&format!("DROP DATABASE IF EXISTS {db}"));
}

/// A gateway weir whose own destination is stuck answers RESOURCE_EXHAUSTED with RetryInfo once its
/// queues are full. The edge honours the wait and retries; when the gateway's destination comes back,
/// every span the edge acknowledged arrives there.
#[test]
fn otlp_grpc_gateway_pushing_back_with_resource_exhausted() {
    use common::{mkfifo, span_ids, span_request, FifoReader};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fifo = data.join("traces.jsonl");
    mkfifo(&fifo);
    let gateway = Weir::start_in(
        dir,
        data,
        Options {
            pipeline: "pipeline:\n  workers: 1\n  intake_queue: {max_items: 50, max_bytes: 256KiB}\n  enqueue_timeout: 10ms\n".into(),
            exporter_extra: "    queue: {max_items: 50, max_bytes: 256KiB}\n    batch: {max_items: 50, max_age: 20ms}\n".into(),
            ..Options::default()
        },
    );
    let edge = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\"], protocol: grpc}}",
            gateway.grpc
        )),
        exporter_extra: "    timeout: 2s\n    retry: {initial_backoff: 50ms, max_backoff: 2s}\n    batch: {max_items: 50, max_age: 20ms}\n".into(),
        ..Options::default()
    });
    let mut acknowledged = std::collections::BTreeSet::new();
    for n in 0..12 {
        let r = http_request(
            edge.http,
            "POST",
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            &span_request(n, 200).encode_to_vec(),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        acknowledged.extend(span_ids(&span_request(n, 200)));
    }
    let labels = [EXPORTER, "signal=\"traces\""];
    wait_until(
        "the gateway to push back",
        Duration::from_secs(20),
        || edge.metric("weir_exporter_retries_total", &labels) > 0.0,
        || edge.log(),
    );
    assert!(
        gateway.metric(
            "weir_receiver_refused_items_total",
            &["reason=\"queue_full\""]
        ) > 0.0,
        "{}",
        gateway.log()
    );
    let reader = FifoReader::start(&fifo);
    let got = reader.wait_for(&acknowledged);
    assert!(
        acknowledged.is_subset(&got),
        "{} of {} arrived; edge log:\n{}",
        acknowledged.intersection(&got).count(),
        acknowledged.len(),
        edge.log()
    );
    wait_until(
        "the edge to settle",
        Duration::from_secs(10),
        || edge.metric("weir_exporter_in_flight_items", &labels) == 0.0,
        || edge.log(),
    );
    assert_eq!(
        edge.metric("weir_exporter_sent_items_total", &labels),
        600.0
    );
    assert_eq!(
        edge.metric("weir_exporter_failed_items_total", &labels),
        0.0
    );
    assert!(edge.log().contains("ResourceExhausted"), "{}", edge.log());
}
