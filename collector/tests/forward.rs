//! Sidecar → two gateways, three `weir` processes on loopback. The sidecar's OTLP exporter balances by
//! trace id: every span of a trace, sent in different requests, lands on exactly one gateway, and logs
//! carrying a trace id land with their trace. Then one gateway is stopped mid-run: its share moves to
//! the other, and once the retries succeed nothing is missing.

mod common;

use common::{http_request, Options, Weir};
use std::collections::{HashMap, HashSet};

fn id(i: u64, len: usize) -> String {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let hex = format!("{:016x}{:016x}", z ^ (z >> 31), z | 1);
    hex[..len].to_string()
}

/// One request with span `part` (0, 1, 2) of each trace in `traces`, and a log record per trace.
fn send(sidecar: &Weir, traces: std::ops::Range<u64>, part: u64) {
    let spans: Vec<String> = traces
        .clone()
        .map(|t| {
            format!(
                r#"{{"traceId":"{}","spanId":"{}","name":"op-{t}-{part}","startTimeUnixNano":"1","endTimeUnixNano":"2"}}"#,
                id(t, 32),
                id(t * 10 + part, 16)
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"checkout"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    let r = http_request(
        sidecar.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    if part == 0 {
        let logs: Vec<String> = traces
            .map(|t| {
                format!(
                    r#"{{"traceId":"{}","spanId":"{}","body":{{"stringValue":"log {t}"}}}}"#,
                    id(t, 32),
                    id(t * 10, 16)
                )
            })
            .collect();
        let body = format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
            logs.join(",")
        );
        let r = http_request(
            sidecar.http,
            "POST",
            "/v1/logs",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
}

/// trace id (hex) → span count, on one gateway.
fn spans_by_trace(g: &Weir) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for req in g.traces() {
        for s in req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            *m.entry(hex::encode(&s.trace_id)).or_default() += 1;
        }
    }
    m
}

fn log_traces(g: &Weir) -> HashSet<String> {
    g.logs()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|r| hex::encode(&r.trace_id))
        .collect()
}

#[test]
fn traces_stay_whole_per_gateway_and_a_stopped_gateway_loses_nothing() {
    let g1 = Weir::start();
    let mut g2 = Weir::start();
    let sidecar = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\", \"{}\"], protocol: grpc, compression: zstd, eject_after: 2, eject_for: 30s}}",
            g1.grpc, g2.grpc
        )),
        exporter_extra: "    batch: {max_age: 20ms}\n    retry: {initial_backoff: 50ms, max_backoff: 500ms}\n".into(),
        ..Options::default()
    });

    // Phase 1: 200 traces, their three spans in three different requests.
    for part in 0..3 {
        for chunk in 0..4 {
            send(&sidecar, chunk * 50..(chunk + 1) * 50, part);
        }
    }
    let total = |want| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let n = g1.span_count() + g2.span_count();
            if n >= want || std::time::Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(total(600), 600, "sidecar log:\n{}", sidecar.log());
    let (a, b) = (spans_by_trace(&g1), spans_by_trace(&g2));
    assert_eq!(a.len() + b.len(), 200);
    assert!(
        a.keys().all(|t| !b.contains_key(t)),
        "no trace on both gateways"
    );
    assert!(
        a.values().chain(b.values()).all(|n| *n == 3),
        "every trace whole"
    );
    assert!(
        a.len() > 60 && b.len() > 60,
        "both gateways take a share: {} / {}",
        a.len(),
        b.len()
    );
    let logs_total = g1.wait_for(1, Weir::log_count) + g2.wait_for(1, Weir::log_count);
    assert_eq!(logs_total, 200);
    assert!(
        log_traces(&g1).iter().all(|t| a.contains_key(t)),
        "logs land with their trace"
    );
    assert!(log_traces(&g2).iter().all(|t| b.contains_key(t)));

    // Phase 2: gateway 2 stops (draining what it accepted); 200 more traces must all reach gateway 1.
    assert!(g2.terminate().success());
    let g2_spans = g2.span_count();
    for part in 0..3 {
        for chunk in 4..8 {
            send(&sidecar, chunk * 50..(chunk + 1) * 50, part);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while g1.span_count() + g2_spans < 1200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        g1.span_count() + g2_spans,
        1200,
        "nothing lost; sidecar log:\n{}",
        sidecar.log()
    );
    let later = spans_by_trace(&g1);
    for t in 200..400 {
        assert_eq!(
            later.get(&id(t, 32)),
            Some(&3),
            "trace {t} whole on the surviving gateway"
        );
    }
    assert_eq!(
        sidecar.metric("weir_exporter_failed_items_total", &[]),
        0.0,
        "retries moved everything"
    );
    assert!(
        sidecar.log().contains("backend ejected"),
        "{}",
        sidecar.log()
    );
}

/// A gateway that refuses for good (it requires a token the sidecar does not have): its part of each
/// request is counted as failed, the other gateway's part as sent — not the whole request either way.
#[test]
fn a_backend_refusing_its_part_for_good_fails_only_that_part() {
    let good = Weir::start();
    let locked = Weir::start_with(Options {
        pipeline: format!(
            "  auth: {{tokens: [{{tenant: t, token_sha256: \"{}\"}}]}}\npipeline: {{workers: 2}}\n",
            "ab".repeat(32)
        ),
        ..Options::default()
    });
    let sidecar = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\", \"{}\"], protocol: grpc}}",
            good.grpc, locked.grpc
        )),
        ..Options::default()
    });
    send(&sidecar, 0..100, 1);
    let traces = ["signal=\"traces\""];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sidecar.metric("weir_exporter_sent_items_total", &traces)
        + sidecar.metric("weir_exporter_failed_items_total", &traces)
        < 100.0
    {
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sent = sidecar.metric("weir_exporter_sent_items_total", &traces) as usize;
    assert!(sent > 20 && sent < 80, "both took a share: {sent}");
    assert_eq!(good.wait_for(sent, Weir::span_count), sent);
    let delivered = sent;
    assert_eq!(
        sidecar.metric(
            "weir_exporter_failed_items_total",
            &["signal=\"traces\"", "reason=\"rejected\""]
        ),
        (100 - delivered) as f64
    );
}

fn signal(w: &Weir, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &w.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

/// A gateway frozen by SIGSTOP keeps its sockets: the kernel still accepts connections and data, and
/// nothing answers — a hung peer, not a refused one. Its share must move to the other gateway (after
/// the attempts time out and it is ejected); when it thaws it may store what it had received, so a
/// trace may be on both, but every span of every trace arrives and nothing is counted as failed.
#[test]
fn a_gateway_frozen_under_load_loses_nothing_and_thaws() {
    let g1 = Weir::start();
    let g2 = Weir::start();
    let sidecar = Weir::start_with(Options {
        destination: Some(format!(
            "    otlp: {{endpoints: [\"{}\", \"{}\"], protocol: grpc, eject_after: 2, eject_for: 30s}}",
            g1.grpc, g2.grpc
        )),
        exporter_extra: "    timeout: 1s\n    batch: {max_age: 20ms}\n    retry: {initial_backoff: 50ms, max_backoff: 500ms}\n".into(),
        ..Options::default()
    });
    for part in 0..3 {
        send(&sidecar, 0..100, part);
    }
    assert_eq!(
        g1.wait_for(1, Weir::span_count) + g2.wait_for(1, Weir::span_count),
        300
    );
    signal(&g2, "-STOP");
    for part in 0..3 {
        for chunk in 1..5 {
            send(&sidecar, chunk * 100..(chunk + 1) * 100, part);
        }
    }
    let every_trace_whole = || {
        let (a, b) = (spans_by_trace(&g1), spans_by_trace(&g2));
        (0..500).all(|t| {
            let k = id(t, 32);
            a.get(&k)
                .copied()
                .unwrap_or(0)
                .max(b.get(&k).copied().unwrap_or(0))
                >= 3
        })
    };
    // While g2 is frozen, only g1 can complete the new traces (g2's files are read as they stand).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let on_g1 = |t: u64| spans_by_trace(&g1).get(&id(t, 32)).copied().unwrap_or(0);
    let g2_before: HashMap<String, usize> = spans_by_trace(&g2);
    while !(100..500).all(|t| on_g1(t) >= 3 || g2_before.get(&id(t, 32)) == Some(&3)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the frozen gateway's share did not move; sidecar log:\n{}",
            sidecar.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    signal(&g2, "-CONT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !every_trace_whole() {
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let labels = ["signal=\"traces\""];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sidecar.metric("weir_exporter_in_flight_items", &labels) > 0.0 {
        assert!(std::time::Instant::now() < deadline, "{}", sidecar.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        sidecar.metric("weir_exporter_failed_items_total", &labels),
        0.0
    );
    assert_eq!(
        sidecar.metric("weir_exporter_sent_items_total", &labels),
        1500.0,
        "every span counted sent once"
    );
    assert!(
        sidecar.log().contains("backend ejected"),
        "{}",
        sidecar.log()
    );
}
