//! The OpenTelemetry Python SDK sends logs to the real `weir` binary, which pushes them to the Loki
//! conformance receiver: right streams, labels, structured metadata, lines and timestamps, each stream
//! sorted, nothing lost.
//!
//! Needs `WEIR_PYTHON` (a Python with the OpenTelemetry SDK; `scripts/test.sh` sets it). Without it the
//! test says so and passes locally, but fails under CI.

mod common;

use common::{Options, Weir};
use loki_receiver::{Limits, Receiver};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_logs_reach_loki_as_sorted_streams_with_metadata() {
    let python = match std::env::var("WEIR_PYTHON") {
        Ok(p) => p,
        Err(_) if std::env::var_os("CI").is_some() => panic!("WEIR_PYTHON must be set in CI"),
        Err(_) => {
            eprintln!("skipped: WEIR_PYTHON is not set (scripts/test.sh sets it)");
            return;
        }
    };
    let loki = Receiver::start(Limits {
        auth_enabled: true,
        ..Limits::default()
    })
    .await;
    let weir = Weir::start_with(Options {
        exporter_extra: format!(
            "    batch: {{max_age: 100ms}}\n  loki:\n    loki: {{endpoint: \"{}\", tenant: team-a, severity_label: true}}\n",
            loki.url()
        ),
        ..Options::default()
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/send_logs.py");
    let out = Command::new(&python)
        .args([script, &weir.grpc_url(), "300", "py-loki"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: HashMap<String, (String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            let i = p.next().unwrap().to_string();
            (
                i,
                (p.next().unwrap().to_string(), p.next().unwrap().to_string()),
            )
        })
        .collect();
    assert_eq!(sent.len(), 300);

    let deadline = Instant::now() + Duration::from_secs(20);
    while loki.entry_count("team-a") < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let streams = loki.streams("team-a");
    assert_eq!(loki.entry_count("team-a"), 300, "log:\n{}", weir.log());
    assert_eq!(streams.len(), 1, "{:?}", streams.keys());
    let (labels, entries) = streams.iter().next().unwrap();
    // The SDK also sets service.instance.id, which Loki's default label list promotes.
    assert!(
        labels.starts_with("{k8s_namespace_name=\"prod\", level=\"warn\", service_instance_id=\"")
            && labels.ends_with("\", service_name=\"py-loki\"}"),
        "{labels}"
    );
    assert!(
        entries.windows(2).all(|w| w[0].ts <= w[1].ts),
        "stream sorted by time"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    for e in entries {
        let sm: HashMap<_, _> = e.metadata.iter().cloned().collect();
        let i = &sm["i"];
        assert_eq!(e.line, format!("record {i}"));
        let (trace_id, span_id) = &sent[i];
        assert_eq!(&sm["trace_id"], trace_id);
        assert_eq!(&sm["span_id"], span_id);
        assert_eq!(sm["severity_number"], "13");
        assert!(
            sm.contains_key("telemetry_sdk_language"),
            "other resource attributes ride along"
        );
        assert!(
            (now - e.ts).abs() < 120_000_000_000,
            "timestamps are the records' own"
        );
    }
    assert!(loki
        .requests()
        .iter()
        .all(|(t, s)| t.as_deref() == Some("team-a") && *s == 204));
}
