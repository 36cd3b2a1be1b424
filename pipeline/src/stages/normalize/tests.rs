use super::*;
use crate::fixtures::{self, kv};
use opentelemetry_proto::tonic::common::v1::KeyValueList;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn stage(invalid_spans: InvalidSpans, remove: bool) -> (Normalize, std::sync::Arc<Registry>) {
    let registry = Registry::new();
    let n = Normalize::new(
        NormalizePolicy {
            enabled: true,
            invalid_spans,
            remove_source_attributes: remove,
        },
        &registry,
    );
    (n, registry)
}

/// One log record without trace context, with `attrs` and `body`, through the stage.
fn fill(attrs: Vec<KeyValue>, body: Option<Value>, remove: bool) -> (LogRecord, String) {
    let (n, registry) = stage(InvalidSpans::Flag, remove);
    let mut logs = fixtures::resource_logs(1, 1);
    let r = &mut logs[0].scope_logs[0].log_records[0];
    r.trace_id.clear();
    r.span_id.clear();
    r.flags = 0;
    r.attributes = attrs;
    r.body = body.map(|v| AnyValue { value: Some(v) });
    let mut batch = Batch::<Logs>::measured(logs);
    Stage::<Logs>::apply(&n, &mut batch);
    (
        batch.resources[0].scope_logs[0].log_records[0].clone(),
        registry.render(),
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_source_fills_log_records() {
    let cases: Vec<(Vec<KeyValue>, &str, u32)> = vec![
        (vec![kv("traceparent", TP)], TRACE, 1),
        (
            vec![
                kv("trace_id", &TRACE.to_uppercase()),
                kv("span_id", "00F067AA0BA902B7"),
                kv("trace_flags", "01"),
            ],
            TRACE,
            1,
        ),
        (
            vec![
                kv("trace_id", "a3ce929d0e0e4736"),
                kv("span_id", "00f067aa0ba902b7"),
            ],
            "0000000000000000a3ce929d0e0e4736",
            0,
        ),
        (
            vec![kv("b3", &format!("{TRACE}-00f067aa0ba902b7-1"))],
            TRACE,
            1,
        ),
        (
            vec![
                kv("X-B3-TraceId", TRACE),
                kv("X-B3-SpanId", "00f067aa0ba902b7"),
                kv("X-B3-Sampled", "1"),
            ],
            TRACE,
            1,
        ),
        (
            vec![kv("uber-trace-id", &format!("{TRACE}:f067aa0ba902b7:0:1"))],
            TRACE,
            1,
        ),
        (
            vec![kv(
                "X-Amzn-Trace-Id",
                "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1",
            )],
            TRACE,
            1,
        ),
    ];
    for (attrs, want, flags) in cases {
        let label = format!("{:?}", attrs[0].key);
        let (r, _) = fill(attrs, None, false);
        assert_eq!(hex(&r.trace_id), want, "{label}");
        assert_eq!(hex(&r.span_id), "00f067aa0ba902b7", "{label}");
        assert_eq!(r.flags, flags, "{label}");
    }
}

#[test]
fn body_map_and_json_body_are_sources_too() {
    let map = Value::KvlistValue(KeyValueList {
        values: vec![kv("traceparent", TP)],
    });
    assert_eq!(hex(&fill(vec![], Some(map), false).0.trace_id), TRACE);
    let json = Value::StringValue(format!(r#"{{"msg":"hi","traceparent":"{TP}"}}"#));
    assert_eq!(hex(&fill(vec![], Some(json), false).0.trace_id), TRACE);
    let (r, _) = fill(vec![], Some(Value::StringValue("{not json".into())), false);
    assert!(r.trace_id.is_empty());
}

#[test]
fn precedence_conflicts_invalid_sources_and_removal() {
    let other = "00-11111111111111111111111111111111-2222222222222222-00";
    let (r, metrics) = fill(
        vec![
            kv("b3", &format!("{TRACE}-00f067aa0ba902b7")),
            kv("traceparent", other),
        ],
        None,
        false,
    );
    assert_eq!(
        hex(&r.trace_id),
        "11111111111111111111111111111111",
        "traceparent wins over b3"
    );
    assert!(metrics.contains("action=\"conflicting\"} 1"), "{metrics}");
    let (r, metrics) = fill(
        vec![
            kv("traceparent", "00-zz-00f067aa0ba902b7-01"),
            kv("b3", &format!("{TRACE}-00f067aa0ba902b7")),
        ],
        None,
        true,
    );
    assert_eq!(
        hex(&r.trace_id),
        TRACE,
        "an invalid traceparent falls through to b3"
    );
    assert!(
        metrics.contains("action=\"invalid_source\"} 1"),
        "{metrics}"
    );
    assert!(r.attributes.is_empty(), "sources removed when asked");
    let (r, metrics) = fill(vec![kv("traceparent", "ff-bad")], None, false);
    assert!(r.trace_id.is_empty());
    assert_eq!(r.attributes.len(), 1, "unused sources stay");
    assert!(metrics.contains("action=\"filled\"} 0"), "{metrics}");
}

#[test]
fn records_with_ids_keep_them_and_zero_ids_are_cleared() {
    let (n, registry) = stage(InvalidSpans::Flag, false);
    let mut logs = fixtures::resource_logs(1, 2);
    let before = logs[0].scope_logs[0].log_records[0].trace_id.clone();
    logs[0].scope_logs[0].log_records[0]
        .attributes
        .push(kv("traceparent", TP));
    logs[0].scope_logs[0].log_records[1].trace_id = vec![0; 16];
    let mut batch = Batch::<Logs>::measured(logs);
    Stage::<Logs>::apply(&n, &mut batch);
    let recs = &batch.resources[0].scope_logs[0].log_records;
    assert_eq!(
        recs[0].trace_id, before,
        "an existing valid id is never overwritten"
    );
    assert!(recs[1].trace_id.is_empty() && recs[1].span_id.is_empty());
    assert!(registry.render().contains("action=\"zero_ids_cleared\"} 1"));
}

#[test]
fn invalid_spans_are_flagged_or_dropped_and_tracestate_trimmed() {
    for (policy, left) in [(InvalidSpans::Flag, 4), (InvalidSpans::Drop, 3)] {
        let (n, registry) = stage(policy, false);
        let mut spans = fixtures::resource_spans(1, 4);
        let s = &mut spans[0].scope_spans[0].spans;
        s[0].trace_id = vec![0; 16];
        s[1].parent_span_id = vec![0; 8];
        s[2].trace_state = "ot=th:8,Bad=1".into();
        let mut batch = Batch::<Traces>::measured(spans);
        Stage::<Traces>::apply(&n, &mut batch);
        let s = &batch.resources[0].scope_spans[0].spans;
        assert_eq!(s.len(), left);
        if policy == InvalidSpans::Flag {
            assert_eq!(s[0].attributes.last().unwrap().key, INVALID_FLAG);
            assert!(s[1].parent_span_id.is_empty());
            assert_eq!(s[2].trace_state, "ot=th:8");
        }
        assert!(registry
            .render()
            .contains("action=\"tracestate_trimmed\"} 1"));
    }
}
