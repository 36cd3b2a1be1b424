//! What the sample stage is told to do, compiled from `pipeline.sample`, apart from the stage itself so
//! the policy set can hold it without importing the batch the stage works on.

use crate::stages::ratelimit::RateLimit;
use crate::stages::threshold::Threshold;

/// A log-sampling rule, compiled.
#[derive(Debug, Clone)]
pub struct LogRule {
    pub name: String,
    pub min_severity: Option<i32>,
    pub max_severity: Option<i32>,
    pub service: Option<String>,
    pub threshold: Threshold,
}

#[derive(Debug, Clone)]
pub struct SamplePolicy {
    pub traces: Threshold,
    pub log_rules: Vec<LogRule>,
    pub logs_default: Threshold,
    pub span_limits: Vec<RateLimit>,
    pub log_limits: Vec<RateLimit>,
    /// Kept items carry the deciding rule's name under this key (`head` for head-sampled spans).
    pub attribute: Option<String>,
    /// `tail.logs: with_trace`: records with a trace id skip the log rules and limits and share their
    /// trace's fate, at head sampling here and at the tail sampler after.
    pub logs_with_trace: bool,
}

impl From<&weir_config::SampleConfig> for SamplePolicy {
    fn from(c: &weir_config::SampleConfig) -> Self {
        SamplePolicy {
            traces: Threshold::from_probability(c.traces.probability),
            log_rules: c
                .logs
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| LogRule {
                    name: r.name.clone().unwrap_or_else(|| format!("rule{i}")),
                    min_severity: r
                        .min_severity
                        .map(|s| s.range().0)
                        .or(r.severity.map(|s| s.range().0)),
                    max_severity: r.severity.map(|s| s.range().1),
                    service: r.service.clone(),
                    threshold: Threshold::from_probability(r.probability),
                })
                .collect(),
            logs_default: Threshold::from_probability(c.logs.default_probability),
            span_limits: limits(c, weir_config::SignalKind::Traces),
            log_limits: limits(c, weir_config::SignalKind::Logs),
            attribute: c.policy_attribute.clone(),
            logs_with_trace: c
                .tail
                .as_ref()
                .is_some_and(|t| t.logs == weir_config::TailLogs::WithTrace),
        }
    }
}

fn limits(c: &weir_config::SampleConfig, signal: weir_config::SignalKind) -> Vec<RateLimit> {
    c.rate_limits
        .iter()
        .filter(|l| l.signal == signal)
        .map(|l| RateLimit {
            name: l.name.clone(),
            key: l.key.clone(),
            items_per_second: l.items_per_second,
            bytes_per_second: l.bytes_per_second.map(|b| b.0 as f64),
            max_keys: l.max_keys,
        })
        .collect()
}

impl SamplePolicy {
    /// Keeps everything: the default.
    pub fn keep_all() -> Self {
        SamplePolicy {
            traces: Threshold(0),
            log_rules: Vec::new(),
            logs_default: Threshold(0),
            span_limits: Vec::new(),
            log_limits: Vec::new(),
            attribute: None,
            logs_with_trace: false,
        }
    }
}
