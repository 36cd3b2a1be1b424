//! Tail-sampling policies compiled from config, and the verdict they give on a whole trace.
//!
//! Rules are tried in order; the first whose condition holds and whose budget (traces per second) has
//! room keeps the trace. A rule whose condition holds but whose budget is spent lets the trace fall
//! through to the next; if nothing keeps it, the verdict says whether it matched nothing or only
//! over-budget rules. A `drop` rule that holds ends the search: the trace is dropped, whatever later
//! rules would say, so health checks and probes never spend a budget. Budget buckets live in the caller (one thread owns them), keyed by rule name, so a
//! reload that keeps a rule's name keeps its bucket.

pub use super::condition::{AttrMatch, Condition, Pattern, TraceView};
use crate::stages::threshold::Threshold;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a policy does with a trace its condition holds for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Keep,
    /// Drop the trace outright: the first matching policy decides, later ones are not asked.
    Drop,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TailRule {
    pub name: Arc<str>,
    pub condition: Condition,
    pub action: Effect,
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
    /// Log records with a trace id are held with their trace (`logs: with_trace`).
    pub logs_with_trace: bool,
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
            logs_with_trace: t.logs == weir_config::TailLogs::WithTrace,
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
            logs_with_trace: false,
        }
    }
}

impl From<&weir_config::TailPolicyConfig> for TailRule {
    fn from(p: &weir_config::TailPolicyConfig) -> Self {
        TailRule {
            name: p.name.as_str().into(),
            condition: condition(p),
            action: if p.drop == Some(true) {
                Effect::Drop
            } else {
                Effect::Keep
            },
            budget: p.rate.or(p.traces_per_second),
        }
    }
}

/// The condition a checked policy entry sets (validation leaves exactly one).
fn condition(p: &weir_config::TailPolicyConfig) -> Condition {
    let attr = |a: &weir_config::AttributeMatch| AttrMatch {
        key: a.key.clone(),
        values: a.values.clone(),
        // Checked at load; an entry that somehow does not compile matches nothing rather than all.
        regex: a.regex.as_ref().map(|r| {
            Pattern(regex::Regex::new(r).unwrap_or_else(|_| regex::Regex::new("$^").unwrap()))
        }),
        invert: a.invert,
    };
    if p.error.is_some() {
        Condition::Error
    } else if let Some(l) = p.latency {
        Condition::Latency(l.0.as_nanos().min(u128::from(u64::MAX)) as u64)
    } else if let Some(a) = &p.attribute {
        Condition::Attribute(attr(a))
    } else if let Some(n) = &p.numeric_attribute {
        Condition::Numeric {
            key: n.key.clone(),
            min: n.min.unwrap_or(f64::NEG_INFINITY),
            max: n.max.unwrap_or(f64::INFINITY),
        }
    } else if let Some(codes) = &p.status_code {
        Condition::Status(codes.iter().map(|c| c.code()).collect())
    } else if let Some(c) = p.span_count {
        Condition::SpanCount {
            min: c.min.unwrap_or(0),
            max: c.max.unwrap_or(u64::MAX),
        }
    } else if let Some(b) = p.trace_bytes {
        Condition::TraceBytes {
            min: b.min.map_or(0, |v| v.as_usize()),
            max: b.max.map_or(usize::MAX, |v| v.as_usize()),
        }
    } else if let Some(s) = p.log_severity {
        Condition::LogSeverity(s.range().0)
    } else if let Some(a) = &p.log_attribute {
        Condition::LogAttribute(attr(a))
    } else if let Some(prob) = p.probability {
        Condition::Probability(Threshold::from_probability(prob))
    } else if let Some(all) = &p.and {
        Condition::And(all.iter().map(condition).collect())
    } else {
        Condition::Any
    }
}

/// Why a trace was kept or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep(Arc<str>),
    /// Matched a `drop` policy.
    Dropped(Arc<str>),
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
            if rule.action == Effect::Drop {
                return Verdict::Dropped(rule.name.clone());
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
mod tests;
