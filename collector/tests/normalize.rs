//! Trace-context normalisation runs by default in the real binary: a log record carrying only a
//! `traceparent` attribute leaves with binary ids, and a span with an all-zero trace id is kept, marked.

mod common;

use common::{http_request, Weir};

#[test]
fn default_pipeline_fills_log_ids_and_flags_invalid_spans() {
    let weir = Weir::start();
    let log = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"paid"},
        "attributes":[{"key":"traceparent","value":{"stringValue":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}]}]}]}]}"#;
    let r = http_request(
        weir.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        log.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let span = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00000000000000000000000000000000",
        "spanId":"00f067aa0ba902b7","name":"zero","traceState":"ot=th:8,Bad=1"}]}]}]}"#;
    let r = http_request(
        weir.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/json")],
        span.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(weir.wait_for(1, Weir::log_count), 1);
    assert_eq!(weir.wait_for(1, Weir::span_count), 1);
    let rec = weir.logs()[0].resource_logs[0].scope_logs[0].log_records[0].clone();
    assert_eq!(
        hex::encode(&rec.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(hex::encode(&rec.span_id), "00f067aa0ba902b7");
    assert_eq!(rec.flags & 0xff, 1);
    let s = weir.traces()[0].resource_spans[0].scope_spans[0].spans[0].clone();
    assert_eq!(s.trace_state, "ot=th:8");
    assert!(s
        .attributes
        .iter()
        .any(|kv| kv.key == "weir.trace_context.invalid"));
    assert_eq!(
        weir.metric("weir_normalize_items_total", &["action=\"filled\""]),
        1.0
    );
    assert_eq!(
        weir.metric(
            "weir_normalize_items_total",
            &["action=\"invalid_flagged\""]
        ),
        1.0
    );
}
