use super::*;
use crate::tail::condition::tests::{span, T};

fn rule(name: &str, condition: Condition, budget: Option<f64>) -> TailRule {
    TailRule {
        name: name.into(),
        condition,
        action: Effect::Keep,
        budget,
    }
}

fn trace(end: u64) -> T {
    T {
        id: vec![0; 16],
        spans: vec![span(0, end)],
        ..T::default()
    }
}

#[test]
fn first_match_with_budgets_falling_through() {
    let policy = TailPolicy {
        rules: vec![
            rule("slow", Condition::Latency(100), Some(2.0)),
            rule("errors", Condition::Error, None),
            rule("trickle", Condition::Any, Some(1.0)),
        ],
        ..TailPolicy::disabled()
    };
    let slow = trace(500);
    let mut budgets = Budgets::default();
    let now = Instant::now();
    let verdicts: Vec<_> = (0..4)
        .map(|_| policy.decide(&slow, &mut budgets, now))
        .collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Keep("slow".into()),
            Verdict::Keep("slow".into()),
            Verdict::Keep("trickle".into()),
            Verdict::OverBudget("slow".into()),
        ]
    );
    let fast = trace(5);
    assert_eq!(
        policy.decide(&fast, &mut budgets, now),
        Verdict::OverBudget("trickle".into())
    );
    let later = now + Duration::from_secs(1);
    assert_eq!(
        policy.decide(&fast, &mut budgets, later),
        Verdict::Keep("trickle".into())
    );
    let none = TailPolicy {
        rules: vec![rule("errors", Condition::Error, None)],
        ..TailPolicy::disabled()
    };
    assert_eq!(none.decide(&fast, &mut budgets, later), Verdict::NoMatch);
}

#[test]
fn a_drop_rule_decides_before_later_rules_and_spends_no_budget() {
    let policy = TailPolicy {
        rules: vec![
            TailRule {
                action: Effect::Drop,
                ..rule("tiny", Condition::SpanCount { min: 0, max: 1 }, None)
            },
            rule("all", Condition::Any, Some(1.0)),
        ],
        ..TailPolicy::disabled()
    };
    let mut budgets = Budgets::default();
    let now = Instant::now();
    assert_eq!(
        policy.decide(&trace(5), &mut budgets, now),
        Verdict::Dropped("tiny".into())
    );
    let mut two = trace(5);
    two.spans.push(span(0, 1));
    assert_eq!(
        policy.decide(&two, &mut budgets, now),
        Verdict::Keep("all".into()),
        "the drop did not spend the budget of the rule after it"
    );
}

#[test]
fn compiles_every_condition_from_config() {
    let yaml = r#"
exporters: {b: {blackhole: {}}}
pipeline:
  sample:
    tail:
      logs: with_trace
      policies:
        - {name: health, drop: true, attribute: {key: http.route, regex: "^/health"}}
        - {name: errors, status_code: [error, STATUS_CODE_OK]}
        - {name: err-logs, log_severity: error}
        - {name: big, span_count: {min: 100}}
        - {name: retries, numeric_attribute: {key: retry.count, min: 3}}
        - {name: small, trace_bytes: {max: 1KiB}}
        - {name: tagged, log_attribute: {key: audit, values: ["yes"], invert: true}}
        - name: slow-checkout
          and:
            - {attribute: {key: service.name, values: [checkout]}}
            - {latency: 500ms}
"#;
    let c = weir_config::parse(yaml, "t.yaml", |_| None).unwrap();
    let p = TailPolicy::from_config(&c.pipeline.sample);
    assert!(p.logs_with_trace);
    let conditions: Vec<_> = p
        .rules
        .iter()
        .map(|r| (&*r.name, &r.condition, r.action))
        .collect();
    assert!(matches!(
        conditions[0],
        (
            "health",
            Condition::Attribute(AttrMatch { regex: Some(_), .. }),
            Effect::Drop
        )
    ));
    assert_eq!(conditions[1].1, &Condition::Status(vec![2, 1]));
    assert_eq!(conditions[2].1, &Condition::LogSeverity(17));
    assert_eq!(
        conditions[3].1,
        &Condition::SpanCount {
            min: 100,
            max: u64::MAX
        }
    );
    assert!(
        matches!(conditions[4].1, Condition::Numeric { min, max, .. } if *min == 3.0 && max.is_infinite())
    );
    assert_eq!(
        conditions[5].1,
        &Condition::TraceBytes { min: 0, max: 1024 }
    );
    assert!(matches!(
        conditions[6].1,
        Condition::LogAttribute(AttrMatch { invert: true, .. })
    ));
    assert!(matches!(conditions[7].1, Condition::And(all) if all.len() == 2));
    assert!(conditions[1..].iter().all(|c| c.2 == Effect::Keep));
}
