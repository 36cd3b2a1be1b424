//! Tail sampling in the real binary, fed by the Rust OpenTelemetry SDK: error and slow traces are kept
//! whole (every span, tagged with the policy that kept them), the rest are dropped and counted, and
//! spans arriving after their trace's decision follow it.

mod common;

use common::{Options, Weir};
use opentelemetry::trace::{
    Span as _, SpanContext, Status, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

const TRACES: usize = 60;

fn provider(url: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .build()
        .unwrap();
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build()
}

/// Root plus three children; trace `i % 10 == 0` has a failing child, `i % 10 == 1` a 2 s child.
fn send_trace(tracer: &SdkTracer, i: usize) -> SpanContext {
    let start = SystemTime::now();
    let root = tracer.span_builder(format!("root-{i}")).start(tracer);
    let ctx = root.span_context().clone();
    let parent = Context::new().with_remote_span_context(ctx.clone());
    for c in 0..3 {
        let mut child = tracer
            .span_builder(format!("child-{i}-{c}"))
            .with_start_time(start)
            .start_with_context(tracer, &parent);
        if i.is_multiple_of(10) && c == 1 {
            child.set_status(Status::error("boom"));
        }
        let end = if i % 10 == 1 && c == 2 {
            start + Duration::from_secs(2)
        } else {
            start + Duration::from_millis(3)
        };
        child.end_with_timestamp(end);
    }
    drop(root);
    ctx
}

/// A counter once it stops changing: decisions are counted as they are made, which may trail the
/// items' arrival by a moment.
fn settled(weir: &Weir, name: &str, labels: &[&str]) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut last = weir.metric(name, labels);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = weir.metric(name, labels);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn error_and_slow_traces_are_kept_whole_and_late_spans_follow() {
    let weir = Weir::start_with(Options {
        pipeline: "pipeline:\n  workers: 2\n  sample:\n    policy_attribute: weir.sampling.policy\n    tail:\n      decision_wait: 5s\n      root_wait: 300ms\n      policies:\n        - {name: errors, error: true}\n        - {name: slow, latency: 1s}\n".into(),
        ..Options::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let provider = provider(&weir.grpc_url());
    let tracer = provider.tracer("tail-test");
    let contexts: Vec<SpanContext> = (0..TRACES).map(|i| send_trace(&tracer, i)).collect();

    let want = 12 * 4;
    assert_eq!(
        weir.wait_for(want, Weir::span_count),
        want,
        "{}",
        weir.log()
    );
    let mut by_trace: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for rs in weir.traces().iter().flat_map(|r| r.resource_spans.clone()) {
        for span in rs.scope_spans.iter().flat_map(|s| s.spans.clone()) {
            let policy = span
                .attributes
                .iter()
                .find(|kv| kv.key == "weir.sampling.policy")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .expect("kept spans name their policy");
            by_trace
                .entry(span.trace_id.clone())
                .or_default()
                .push(policy);
        }
    }
    assert_eq!(by_trace.len(), 12);
    for (i, ctx) in contexts.iter().enumerate() {
        let got = by_trace.get(ctx.trace_id().to_bytes().as_slice());
        match i % 10 {
            0 => assert_eq!(got, Some(&vec!["errors".to_string(); 4]), "trace {i}"),
            1 => assert_eq!(got, Some(&vec!["slow".to_string(); 4]), "trace {i}"),
            _ => assert_eq!(got, None, "trace {i} matched no policy"),
        }
    }
    let traces = |decision: &str, policy: &str| {
        settled(
            &weir,
            "weir_tail_traces_total",
            &[
                &format!("decision=\"{decision}\""),
                &format!("policy=\"{policy}\""),
            ],
        )
    };
    assert_eq!(traces("keep", "errors"), 6.0);
    assert_eq!(traces("keep", "slow"), 6.0);
    assert_eq!(traces("drop", "none"), 48.0);
    assert_eq!(
        weir.metric("weir_sampled_out_items_total", &["rule=\"tail\""]),
        192.0
    );

    // Late spans: one for a kept trace, one for a dropped one.
    for ctx in [&contexts[0], &contexts[5]] {
        let parent = Context::new().with_remote_span_context(SpanContext::new(
            ctx.trace_id(),
            ctx.span_id(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        tracer.start_with_context("late", &parent).end();
    }
    assert_eq!(weir.wait_for(want + 1, Weir::span_count), want + 1);
    let late = |d: &str| {
        weir.metric(
            "weir_tail_late_spans_total",
            &[&format!("decision=\"{d}\"")],
        )
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while late("drop") < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!((late("keep"), late("drop")), (1.0, 1.0));
    provider.shutdown().unwrap();
}

/// `logs: with_trace` through the real binary, fed by the Rust SDK's trace and log exporters: every
/// kept trace arrives with all its logs (tagged with the policy), an ERROR log saves a trace with no
/// error span, a `drop` policy removes health checks before any keep policy sees them, dropped traces'
/// logs are counted, and logs without a trace id still follow the log rules.
#[test]
fn logs_are_kept_and_dropped_with_their_traces() {
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::logs::SdkLoggerProvider;

    let weir = Weir::start_with(Options {
        pipeline: "pipeline:\n  workers: 2\n  sample:\n    policy_attribute: weir.sampling.policy\n    logs:\n      rules:\n        - {name: quiet, severity: info, probability: 0}\n    tail:\n      logs: with_trace\n      decision_wait: 5s\n      root_wait: 500ms\n      policies:\n        - {name: health, drop: true, attribute: {key: http.route, regex: \"^/health\"}}\n        - {name: errors, error: true}\n        - {name: error-logs, log_severity: error}\n        - {name: slow, latency: 1s}\n".into(),
        ..Options::default()
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let tracer_provider = provider(&weir.grpc_url());
    let tracer = tracer_provider.tracer("tail-logs");
    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(weir.grpc_url())
        .build()
        .unwrap();
    let logger_provider = SdkLoggerProvider::builder()
        .with_simple_exporter(log_exporter)
        .build();
    let logger = logger_provider.logger("tail-logs");
    let emit = |severity: Severity, body: String, ctx: Option<&SpanContext>| {
        let mut r = logger.create_log_record();
        r.set_severity_number(severity);
        r.set_severity_text(severity.name());
        r.set_body(body.into());
        if let Some(ctx) = ctx {
            r.set_trace_context(ctx.trace_id(), ctx.span_id(), Some(ctx.trace_flags()));
        }
        logger.emit(r);
    };

    // Trace kinds by i % 10: 0 an error span, 1 a 2 s child, 2 nothing wrong but an ERROR log,
    // 3 a failing health check (dropped although it errs), the rest ordinary. Each trace logs two
    // INFO lines before its root ends.
    const N: usize = 40;
    let mut contexts = Vec::new();
    for i in 0..N {
        let start = SystemTime::now();
        let mut root = tracer.span_builder(format!("root-{i}")).start(&tracer);
        if i % 10 == 3 {
            root.set_attribute(KeyValue::new("http.route", "/healthz"));
        }
        let ctx = root.span_context().clone();
        let parent = Context::new().with_remote_span_context(ctx.clone());
        for c in 0..2 {
            let mut child = tracer
                .span_builder(format!("child-{i}-{c}"))
                .with_start_time(start)
                .start_with_context(&tracer, &parent);
            if (i % 10 == 0 || i % 10 == 3) && c == 1 {
                child.set_status(Status::error("boom"));
            }
            let long = i % 10 == 1 && c == 1;
            let took = Duration::from_millis(if long { 2000 } else { 3 });
            child.end_with_timestamp(start + took);
        }
        emit(Severity::Info, format!("info {i} a"), Some(&ctx));
        emit(Severity::Info, format!("info {i} b"), Some(&ctx));
        if i % 10 == 2 {
            emit(Severity::Error, format!("error {i}"), Some(&ctx));
        }
        root.end();
        contexts.push(ctx);
    }
    for j in 0..10 {
        emit(Severity::Info, format!("untraced info {j}"), None);
    }
    for j in 0..5 {
        emit(Severity::Warn, format!("untraced warn {j}"), None);
    }

    let kept_traces: Vec<usize> = (0..N).filter(|i| i % 10 < 3).collect();
    let want_spans = kept_traces.len() * 3;
    let want_logs = kept_traces.len() * 2 + N / 10 + 5;
    assert_eq!(
        weir.wait_for(want_spans, Weir::span_count),
        want_spans,
        "{}",
        weir.log()
    );
    assert_eq!(weir.wait_for(want_logs, Weir::log_count), want_logs);

    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    };
    let mut logs_by_trace: BTreeMap<Vec<u8>, Vec<(String, String)>> = BTreeMap::new();
    let mut untraced = Vec::new();
    for rl in weir.logs().iter().flat_map(|r| r.resource_logs.clone()) {
        for r in rl.scope_logs.iter().flat_map(|s| s.log_records.clone()) {
            let policy = r
                .attributes
                .iter()
                .find(|kv| kv.key == "weir.sampling.policy")
                .map(|kv| text(&kv.value))
                .unwrap_or_default();
            if r.trace_id.is_empty() {
                untraced.push(text(&r.body));
            } else {
                logs_by_trace
                    .entry(r.trace_id.clone())
                    .or_default()
                    .push((text(&r.body), policy));
            }
        }
    }
    untraced.sort();
    assert_eq!(
        untraced,
        (0..5)
            .map(|j| format!("untraced warn {j}"))
            .collect::<Vec<_>>(),
        "untraced INFO lines follow the `quiet` rule, WARN lines the default"
    );
    let spans_by_trace: BTreeMap<Vec<u8>, usize> = weir
        .traces()
        .iter()
        .flat_map(|r| r.resource_spans.clone())
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.trace_id).or_default() += 1;
            m
        });
    for (i, ctx) in contexts.iter().enumerate() {
        let id = ctx.trace_id().to_bytes().to_vec();
        let logs = logs_by_trace.get(&id);
        let policy = match i % 10 {
            0 => "errors",
            1 => "slow",
            2 => "error-logs",
            _ => {
                assert_eq!(logs, None, "trace {i} was dropped, and its logs with it");
                assert_eq!(spans_by_trace.get(&id), None, "trace {i}");
                continue;
            }
        };
        assert_eq!(spans_by_trace.get(&id), Some(&3), "trace {i} kept whole");
        let mut bodies: Vec<_> = logs.unwrap().iter().map(|(b, _)| b.clone()).collect();
        bodies.sort();
        let mut want = vec![format!("info {i} a"), format!("info {i} b")];
        if i % 10 == 2 {
            want.insert(0, format!("error {i}"));
        }
        assert_eq!(bodies, want, "trace {i}: every log, INFO too");
        assert!(
            logs.unwrap().iter().all(|(_, p)| p == policy),
            "trace {i}: logs name the policy {policy}"
        );
    }
    let dropped_traces = N - kept_traces.len();
    assert_eq!(
        settled(
            &weir,
            "weir_sampled_out_items_total",
            &["signal=\"logs\"", "rule=\"tail\""]
        ),
        (dropped_traces * 2) as f64,
        "dropped traces' logs are counted"
    );
    assert_eq!(
        settled(
            &weir,
            "weir_tail_traces_total",
            &["decision=\"drop\"", "policy=\"health\""]
        ),
        (N / 10) as f64
    );
    assert_eq!(
        weir.metric(
            "weir_sampled_out_items_total",
            &["signal=\"logs\"", "rule=\"quiet\""]
        ),
        10.0
    );
    tracer_provider.shutdown().unwrap();
    logger_provider.shutdown().unwrap();
}
