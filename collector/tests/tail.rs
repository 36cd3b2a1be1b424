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
    // Decisions are counted as they are made, which may trail the spans' arrival by a moment.
    let traces = |decision: &str, policy: &str| {
        let read = || {
            weir.metric(
                "weir_tail_traces_total",
                &[
                    &format!("decision=\"{decision}\""),
                    &format!("policy=\"{policy}\""),
                ],
            )
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut last = read();
        while std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = read();
            if now == last {
                break;
            }
            last = now;
        }
        last
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
