//! Sampling, proven at scale and by property:
//! - over a million generated items the kept share is within 3σ of every configured probability, every
//!   record at or above WARN is kept, and a log record keeps exactly when its trace does;
//! - two instances, and one instance reloaded away and back, decide the same for the same trace;
//! - along a chain of tiers the threshold only rises (the probability only falls), and a span kept at
//!   the last tier was kept at every tier before it.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use weir_pipeline::metrics::Registry;
use weir_pipeline::stages::sample::{LogRule, Sample, SamplePolicy, Threshold};
use weir_pipeline::{Batch, Logs, Stage, Traces};

/// A well-mixed 128-bit trace id from a counter (splitmix64 on both halves).
fn trace_id(n: u64) -> Vec<u8> {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut id = mix(n).to_be_bytes().to_vec();
    id.extend_from_slice(&mix(n ^ 0xA5A5_A5A5).to_be_bytes());
    id
}

fn span(trace: Vec<u8>, trace_state: &str) -> Span {
    Span {
        trace_id: trace,
        span_id: vec![1; 8],
        trace_state: trace_state.into(),
        ..Span::default()
    }
}

fn spans_batch(spans: Vec<Span>) -> Batch<Traces> {
    Batch::measured(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn kept_spans(b: &Batch<Traces>) -> Vec<Span> {
    b.resources
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

fn head(p: f64) -> SamplePolicy {
    SamplePolicy {
        traces: Threshold::from_probability(p),
        ..SamplePolicy::keep_all()
    }
}

fn rule(name: &str, min: i32, max: Option<i32>, p: f64) -> LogRule {
    LogRule {
        name: name.into(),
        min_severity: Some(min),
        max_severity: max,
        service: None,
        threshold: Threshold::from_probability(p),
    }
}

fn within_3_sigma(kept: usize, n: usize, p: f64) -> bool {
    let expected = n as f64 * p;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    (kept as f64 - expected).abs() <= 3.0 * sigma
}

const N: u64 = 1_000_000;
const CHUNK: u64 = 20_000;

#[test]
fn a_million_items_keep_their_configured_shares() {
    let registry = Registry::new();
    let traces = Sample::new(head(0.25), &registry);
    let logs = Sample::new(
        SamplePolicy {
            traces: Threshold::from_probability(0.1),
            log_rules: vec![
                rule("warn+", 13, None, 1.0),
                rule("info", 9, Some(12), 0.1),
                rule("debug", 5, Some(8), 0.01),
            ],
            logs_default: Threshold::from_probability(0.5),
            ..SamplePolicy::keep_all()
        },
        &registry,
    );
    // The trace tier the info logs should agree with: same probability, same randomness.
    let info_traces = Sample::new(head(0.1), &registry);

    let (mut spans_kept, mut by_class) = (0, [(0usize, 0usize); 4]);
    for chunk in 0..N / CHUNK {
        let ids: Vec<u64> = (chunk * CHUNK..(chunk + 1) * CHUNK).collect();
        let mut b = spans_batch(ids.iter().map(|n| span(trace_id(*n), "")).collect());
        traces.apply(&mut b);
        spans_kept += kept_spans(&b).len();

        // Severities cycle through unset, DEBUG, INFO, WARN, ERROR; odd records carry a trace id.
        let records: Vec<LogRecord> = ids
            .iter()
            .map(|n| LogRecord {
                severity_number: [0, 5, 9, 13, 17][(*n % 5) as usize],
                trace_id: if n % 2 == 1 { trace_id(*n) } else { Vec::new() },
                time_unix_nano: *n,
                body: Some(AnyValue {
                    value: Some(Value::StringValue(format!("request {n} served"))),
                }),
                ..LogRecord::default()
            })
            .collect();
        let mut lb: Batch<Logs> = Batch::measured(vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }]);
        logs.apply(&mut lb);
        let kept: Vec<&LogRecord> = lb
            .resources
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .collect();
        for r in &kept {
            let class = match r.severity_number {
                0 => 0,
                5 => 1,
                9 => 2,
                _ => 3,
            };
            by_class[class].0 += 1;
        }
        for n in &ids {
            let class = match n % 5 {
                0 => 0,
                1 => 1,
                2 => 2,
                _ => 3,
            };
            by_class[class].1 += 1;
        }

        // Info records with a trace id: kept exactly when their trace is kept at the same p.
        let info_ids: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|n| n % 5 == 2 && n % 2 == 1)
            .collect();
        let mut tb = spans_batch(info_ids.iter().map(|n| span(trace_id(*n), "")).collect());
        info_traces.apply(&mut tb);
        let traces_kept: HashSet<Vec<u8>> =
            kept_spans(&tb).into_iter().map(|s| s.trace_id).collect();
        let logs_kept: HashSet<Vec<u8>> = kept
            .iter()
            .filter(|r| r.severity_number == 9 && !r.trace_id.is_empty())
            .map(|r| r.trace_id.clone())
            .collect();
        assert_eq!(
            logs_kept, traces_kept,
            "chunk {chunk}: info logs share their trace's fate"
        );
    }
    assert!(
        within_3_sigma(spans_kept, N as usize, 0.25),
        "spans kept {spans_kept}"
    );
    let (default, debug, info, warn) = (by_class[0], by_class[1], by_class[2], by_class[3]);
    assert!(
        within_3_sigma(default.0, default.1, 0.5),
        "default {default:?}"
    );
    assert!(within_3_sigma(debug.0, debug.1, 0.01), "debug {debug:?}");
    assert!(within_3_sigma(info.0, info.1, 0.1), "info {info:?}");
    assert_eq!(warn.0, warn.1, "every WARN and ERROR record kept");

    let out = registry.render();
    let dropped: u64 = out
        .lines()
        .filter(|l| l.starts_with("weir_sampled_out_items_total{signal=\"logs\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let kept_logs = default.0 + debug.0 + info.0 + warn.0;
    assert_eq!(
        dropped as usize + kept_logs,
        N as usize,
        "every record kept or counted"
    );
}

fn decide(sample: &Sample, id: &[u8]) -> bool {
    let mut b = spans_batch(vec![span(id.to_vec(), "")]);
    sample.apply(&mut b);
    !b.is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn same_trace_same_decision_across_instances_and_reloads(
        id in proptest::collection::vec(any::<u8>(), 16),
        p in 0.0f64..=1.0,
        other in 0.0f64..=1.0,
    ) {
        let a = Sample::new(head(p), &Registry::new());
        let b = Sample::new(head(p), &Registry::new());
        let first = decide(&a, &id);
        prop_assert_eq!(first, decide(&b, &id));
        a.policy().store(head(other));
        let _ = decide(&a, &id);
        a.policy().store(head(p));
        prop_assert_eq!(first, decide(&a, &id), "reloaded back to the same policy");
    }

    #[test]
    fn thresholds_only_rise_along_a_chain_of_tiers(
        id in proptest::collection::vec(any::<u8>(), 16),
        tiers in proptest::collection::vec(0.0f64..=1.0, 1..6),
    ) {
        let registry: Arc<Registry> = Registry::new();
        let mut state = String::new();
        let mut last = 0u64;
        for p in &tiers {
            let tier = Sample::new(head(*p), &registry);
            let mut b = spans_batch(vec![span(id.clone(), &state)]);
            tier.apply(&mut b);
            let Some(s) = kept_spans(&b).pop() else {
                return Ok(());
            };
            if let Some(th) = s.trace_state.split(',').find_map(|m| m.strip_prefix("ot=th:")) {
                let t = Threshold::decode(th.split(';').next().unwrap()).unwrap().0;
                prop_assert!(t >= last, "threshold fell from {last:x} to {t:x}");
                prop_assert!(t >= Threshold::from_probability(*p).0);
                last = t;
            }
            state = s.trace_state;
        }
    }
}
