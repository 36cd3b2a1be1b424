//! Tail-sampling policies compiled from config, and the verdict they give on a whole trace.
//!
//! Rules are tried in order; the first whose condition holds and whose budget (traces per second) has
//! room keeps the trace. A rule whose condition holds but whose budget is spent lets the trace fall
//! through to the next; if nothing keeps it, the verdict says whether it matched nothing or only
//! over-budget rules. Budget buckets live in the caller (one thread owns them), keyed by rule name, so a
//! reload that keeps a rule's name keeps its bucket.

use crate::stages::sample::{trace_randomness, Threshold};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Error,
    /// Nanoseconds.
    Latency(u64),
    Attribute {
        key: String,
        values: Vec<String>,
    },
    Probability(Threshold),
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TailRule {
    pub name: Arc<str>,
    pub condition: Condition,
    /// Traces per second this rule may keep.
    pub budget: Option<f64>,
}

/// The compiled `pipeline.sample.tail`, plus the attribute kept spans carry.
#[derive(Debug, Clone, PartialEq)]
pub struct TailPolicy {
    /// When false, spans pass straight through (a reload removed tail sampling).
    pub enabled: bool,
    pub rules: Vec<TailRule>,
    pub decision_wait: Duration,
    pub root_wait: Duration,
    pub max_traces: usize,
    pub max_bytes: usize,
    pub cache_size: usize,
    pub attribute: Option<String>,
}

impl TailPolicy {
    pub fn from_config(c: &weir_config::SampleConfig) -> Self {
        let Some(t) = &c.tail else {
            return TailPolicy::disabled();
        };
        TailPolicy {
            enabled: true,
            rules: t.policies.iter().map(TailRule::from).collect(),
            decision_wait: t.decision_wait.0,
            root_wait: t.root_wait.0,
            max_traces: t.max_traces,
            // Held to a quarter of the process's memory limit: resident memory runs at up to 1.5×
            // the heap, and with the buffer any larger the receivers would push back before the
            // tail sampler felt pressure to decide early, stalling ingest for `decision_wait`.
            max_bytes: t.max_bytes.as_usize().min(crate::memory::limit() / 4),
            cache_size: t.decision_cache,
            attribute: c.policy_attribute.clone(),
        }
    }

    pub fn disabled() -> Self {
        TailPolicy {
            enabled: false,
            rules: Vec::new(),
            decision_wait: Duration::ZERO,
            root_wait: Duration::ZERO,
            max_traces: usize::MAX,
            max_bytes: usize::MAX,
            cache_size: 0,
            attribute: None,
        }
    }
}

impl From<&weir_config::TailPolicyConfig> for TailRule {
    fn from(p: &weir_config::TailPolicyConfig) -> Self {
        let condition = if p.error.is_some() {
            Condition::Error
        } else if let Some(l) = p.latency {
            Condition::Latency(l.0.as_nanos().min(u128::from(u64::MAX)) as u64)
        } else if let Some(a) = &p.attribute {
            Condition::Attribute {
                key: a.key.clone(),
                values: a.values.clone(),
            }
        } else if let Some(prob) = p.probability {
            Condition::Probability(Threshold::from_probability(prob))
        } else {
            Condition::Any
        };
        TailRule {
            name: p.name.as_str().into(),
            condition,
            budget: p.rate.or(p.traces_per_second),
        }
    }
}

/// What a trace looks like to a condition: its id, and each span with its resource.
pub trait TraceView {
    fn trace_id(&self) -> &[u8];
    fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)>;
}

impl Condition {
    pub fn holds(&self, trace: &impl TraceView) -> bool {
        match self {
            Condition::Error => trace.spans().any(|(s, _)| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32)
            }),
            Condition::Latency(min) => {
                let (mut start, mut end) = (u64::MAX, 0);
                for (s, _) in trace.spans() {
                    if s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) >= *min {
                        return true;
                    }
                    start = start.min(s.start_time_unix_nano);
                    end = end.max(s.end_time_unix_nano);
                }
                end.saturating_sub(start) >= *min
            }
            Condition::Attribute { key, values } => trace.spans().any(|(s, r)| {
                let resource = r.into_iter().flat_map(|r| &r.attributes);
                s.attributes
                    .iter()
                    .chain(resource)
                    .any(|kv| kv.key == *key && (values.is_empty() || value_in(kv, values)))
            }),
            Condition::Probability(t) => trace_randomness(trace.trace_id()) >= t.0,
            Condition::Any => true,
        }
    }
}

fn value_in(kv: &KeyValue, values: &[String]) -> bool {
    let Some(v) = kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) else {
        return false;
    };
    match v {
        Value::StringValue(s) => values.iter().any(|x| x == s),
        Value::IntValue(i) => values.iter().any(|x| x.parse() == Ok(*i)),
        Value::BoolValue(b) => values.iter().any(|x| x.parse() == Ok(*b)),
        Value::DoubleValue(d) => values.iter().any(|x| x.parse() == Ok(*d)),
        _ => false,
    }
}

/// Why a trace was kept or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(Arc<str>),
    /// Matched no rule.
    NoMatch,
    /// Matched only rules whose budget was spent; names the first.
    OverBudget(Arc<str>),
}

/// Token buckets for rule budgets, by rule name; one second's worth of burst.
#[derive(Default)]
pub struct Budgets {
    buckets: HashMap<Arc<str>, (f64, Instant)>,
}

impl Budgets {
    fn admit(&mut self, name: &Arc<str>, rate: f64, now: Instant) -> bool {
        let (tokens, at) = self.buckets.entry(name.clone()).or_insert((rate, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *at = now;
        *tokens = (*tokens + elapsed * rate).min(rate);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets buckets of rules no longer configured.
    pub fn retain(&mut self, rules: &[TailRule]) {
        self.buckets
            .retain(|name, _| rules.iter().any(|r| r.name == *name));
    }
}

impl TailPolicy {
    pub fn decide(&self, trace: &impl TraceView, budgets: &mut Budgets, now: Instant) -> Verdict {
        let mut over = None;
        for rule in &self.rules {
            if !rule.condition.holds(trace) {
                continue;
            }
            match rule.budget {
                Some(rate) if !budgets.admit(&rule.name, rate, now) => {
                    over.get_or_insert_with(|| rule.name.clone());
                }
                _ => return Verdict::Keep(rule.name.clone()),
            }
        }
        over.map_or(Verdict::NoMatch, Verdict::OverBudget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Status;

    struct T(Vec<u8>, Vec<Span>, Resource);
    impl TraceView for T {
        fn trace_id(&self) -> &[u8] {
            &self.0
        }
        fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)> {
            self.1.iter().map(|s| (s, Some(&self.2)))
        }
    }

    fn span(start: u64, end: u64) -> Span {
        Span {
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Span::default()
        }
    }

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn rule(name: &str, condition: Condition, budget: Option<f64>) -> TailRule {
        TailRule {
            name: name.into(),
            condition,
            budget,
        }
    }

    #[test]
    fn conditions() {
        let mut t = T(
            vec![0; 16],
            vec![span(0, 10), span(5, 30)],
            Resource::default(),
        );
        assert!(Condition::Latency(30).holds(&t), "trace spans 0..30");
        assert!(!Condition::Latency(31).holds(&t));
        assert!(!Condition::Error.holds(&t));
        t.1[1].status = Some(Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        });
        assert!(Condition::Error.holds(&t));

        let attr = |values: &[&str]| Condition::Attribute {
            key: "tier".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert!(!attr(&[]).holds(&t));
        t.2.attributes
            .push(kv("tier", Value::StringValue("gold".into())));
        assert!(attr(&[]).holds(&t), "resource attributes count");
        assert!(attr(&["silver", "gold"]).holds(&t));
        assert!(!attr(&["silver"]).holds(&t));
        t.1[0].attributes.push(kv("tier", Value::IntValue(3)));
        assert!(attr(&["3"]).holds(&t), "non-string values compare by parse");

        t.0 = vec![0xff; 16];
        assert!(Condition::Probability(Threshold::from_probability(0.01)).holds(&t));
        t.0 = vec![0; 16];
        assert!(!Condition::Probability(Threshold::from_probability(0.99)).holds(&t));
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
        let slow = T(vec![0; 16], vec![span(0, 500)], Resource::default());
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
        let fast = T(vec![0; 16], vec![span(0, 5)], Resource::default());
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
}
