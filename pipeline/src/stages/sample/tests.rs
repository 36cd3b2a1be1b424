use super::*;
use crate::fixtures;

fn registry() -> std::sync::Arc<Registry> {
    Registry::new()
}

#[test]
fn head_sampling_is_consistent_accurate_and_respects_upstream() {
    let r = registry();
    let half = Sample::new(
        SamplePolicy {
            traces: Threshold::from_probability(0.5),
            ..SamplePolicy::keep_all()
        },
        &r,
    );
    let other_instance = Sample::new(
        SamplePolicy {
            traces: Threshold::from_probability(0.5),
            ..SamplePolicy::keep_all()
        },
        &registry(),
    );
    let mut spans = fixtures::resource_spans(1, 40_000);
    for (i, s) in spans[0].scope_spans[0].spans.iter_mut().enumerate() {
        // Random-looking ids, one per span.
        let x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        s.trace_id[8..].copy_from_slice(&x.to_be_bytes());
    }
    let mut a = Batch::<Traces>::measured(spans.clone());
    let mut b = Batch::<Traces>::measured(spans);
    Stage::<Traces>::apply(&half, &mut a);
    Stage::<Traces>::apply(&other_instance, &mut b);
    let kept = |x: &Batch<Traces>| {
        x.resources[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.span_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kept(&a), kept(&b), "two instances decide alike");
    let n = kept(&a).len() as f64;
    let sigma = (40_000.0f64 * 0.25).sqrt();
    assert!((n - 20_000.0).abs() < 3.0 * sigma, "kept {n}");
    assert!(a.resources[0].scope_spans[0]
        .spans
        .iter()
        .all(|s| s.trace_state == "ot=th:8"));

    // A later tier at 100 % keeps what the first kept and passes the threshold on unchanged.
    let full = Sample::new(SamplePolicy::keep_all(), &r);
    let mut again = Batch::<Traces>::measured(a.resources.clone());
    Stage::<Traces>::apply(&full, &mut again);
    assert_eq!(kept(&again), kept(&a));
    // A tier at 25 % raises the threshold; never lowers it.
    let quarter = Sample::new(
        SamplePolicy {
            traces: Threshold::from_probability(0.25),
            ..SamplePolicy::keep_all()
        },
        &r,
    );
    Stage::<Traces>::apply(&quarter, &mut again);
    assert!(again.resources[0].scope_spans[0]
        .spans
        .iter()
        .all(|s| s.trace_state == "ot=th:c"));
    let n = kept(&again).len() as f64;
    assert!(
        (n - 10_000.0).abs() < 3.0 * (40_000.0f64 * 0.25 * 0.75).sqrt(),
        "kept {n}"
    );
}

#[test]
fn log_rules_keep_warnings_sample_info_and_follow_traces() {
    let r = registry();
    let policy = SamplePolicy {
        traces: Threshold::from_probability(0.1),
        log_rules: vec![
            LogRule {
                name: "warn+".into(),
                min_severity: Some(13),
                max_severity: None,
                service: None,
                threshold: Threshold(0),
            },
            LogRule {
                name: "info".into(),
                min_severity: Some(9),
                max_severity: Some(12),
                service: None,
                threshold: Threshold::from_probability(0.1),
            },
        ],
        logs_default: Threshold::from_probability(0.0),
        ..SamplePolicy::keep_all()
    };
    let s = Sample::new(policy, &r);
    let mut logs = fixtures::resource_logs(1, 20_000);
    for (i, rec) in logs[0].scope_logs[0].log_records.iter_mut().enumerate() {
        let x = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if !rec.trace_id.is_empty() {
            rec.trace_id[8..].copy_from_slice(&x.to_be_bytes());
        }
        rec.body = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(Value::StringValue(format!("event {x}"))),
        });
    }
    let errors = logs[0].scope_logs[0]
        .log_records
        .iter()
        .filter(|r| r.severity_number >= 13)
        .count();
    let mut batch = Batch::<Logs>::measured(logs);
    Stage::<Logs>::apply(&s, &mut batch);
    let kept = &batch.resources[0].scope_logs[0].log_records;
    assert_eq!(
        kept.iter().filter(|r| r.severity_number >= 13).count(),
        errors,
        "every warning and error kept"
    );
    let info = kept.iter().filter(|r| r.severity_number == 9).count() as f64;
    let infos = 18_000.0;
    assert!(
        (info - infos * 0.1).abs() < 3.0 * (infos * 0.1 * 0.9f64).sqrt(),
        "kept {info} info"
    );
    // An info record with a trace id is kept exactly when its trace is (same p, same randomness).
    let t = Threshold::from_probability(0.1);
    for rec in kept
        .iter()
        .filter(|r| r.severity_number == 9 && !r.trace_id.is_empty())
    {
        assert!(trace_randomness(&rec.trace_id) >= t.0);
    }
    assert!(r
        .render()
        .contains("weir_sampled_out_items_total{signal=\"logs\",rule=\"info\",version=\"0\"}"));
}

#[test]
fn with_trace_records_skip_the_log_rules_and_follow_their_traces_head_decision() {
    let r = registry();
    let drop_all_info = LogRule {
        name: "no-info".into(),
        min_severity: Some(1),
        max_severity: None,
        service: None,
        threshold: Threshold::from_probability(0.0),
    };
    let policy = SamplePolicy {
        traces: Threshold::from_probability(0.5),
        log_rules: vec![drop_all_info],
        logs_with_trace: true,
        ..SamplePolicy::keep_all()
    };
    let s = Sample::new(policy, &r);
    let mut logs = fixtures::resource_logs(1, 2_000);
    for (i, rec) in logs[0].scope_logs[0].log_records.iter_mut().enumerate() {
        if !rec.trace_id.is_empty() {
            let x = (i as u64 + 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            rec.trace_id[8..].copy_from_slice(&x.to_be_bytes());
        }
    }
    let carrying = logs[0].scope_logs[0]
        .log_records
        .iter()
        .filter(|r| traced(r))
        .count();
    let mut batch = Batch::<Logs>::measured(logs);
    Stage::<Logs>::apply(&s, &mut batch);
    let kept = &batch.resources[0].scope_logs[0].log_records;
    assert!(
        kept.iter().all(traced),
        "the rule drops every record without a trace"
    );
    let t = Threshold::from_probability(0.5);
    assert!(kept.iter().all(|r| trace_randomness(&r.trace_id) >= t.0));
    let n = kept.len() as f64;
    assert!(
        (n - carrying as f64 * 0.5).abs() < 4.0 * (carrying as f64 * 0.25).sqrt(),
        "kept {n} of {carrying} traced records: their traces' head decision, not the rule"
    );
    let text = r.render();
    assert!(
        text.contains("weir_sampled_out_items_total{signal=\"logs\",rule=\"head\",version=\"0\"}"),
        "{text}"
    );
    assert!(
        text.contains(
            "weir_sampled_out_items_total{signal=\"logs\",rule=\"no-info\",version=\"0\"} 1000"
        ),
        "{text}"
    );
}

#[test]
fn rate_limits_per_service_and_buckets_survive_a_reload() {
    let r = registry();
    let limit = RateLimit {
        name: "per-service".into(),
        key: "service.name".into(),
        items_per_second: 100.0,
        bytes_per_second: None,
        max_keys: 10_000,
    };
    let policy = SamplePolicy {
        log_limits: vec![limit.clone()],
        ..SamplePolicy::keep_all()
    };
    let s = Sample::new(policy.clone(), &r);
    // Three services (checkout-0/1/2), 500 records each.
    let mut batch = Batch::<Logs>::measured(fixtures::resource_logs(3, 500));
    Stage::<Logs>::apply(&s, &mut batch);
    let kept: Vec<usize> = batch
        .resources
        .iter()
        .map(|r| r.scope_logs[0].log_records.len())
        .collect();
    assert_eq!(kept, [100, 100, 100]);
    assert!(r.render().contains(
        "weir_sampled_out_items_total{signal=\"logs\",rule=\"per-service\",version=\"0\"} 1200"
    ));
    // A reload with the same rule name keeps the (empty) buckets: no fresh burst.
    s.policy().store(policy);
    let mut again = Batch::<Logs>::measured(fixtures::resource_logs(3, 50));
    Stage::<Logs>::apply(&s, &mut again);
    again.recount();
    assert!(
        again.items() < 15,
        "{} admitted right after the reload",
        again.items()
    );
}
