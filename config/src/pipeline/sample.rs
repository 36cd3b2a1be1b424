//! `pipeline.sample`: head sampling of traces, log rules, rate limits, and where tail sampling hangs
//! off ([`super::tail`]). The defaults keep everything: sampling is opt-in.

use super::tail::TailSamplingConfig;
use crate::check::{invalid, probability, Invalid};
use crate::common::SignalKind;
use crate::units::ByteSize;
use serde::Deserialize;

/// Consistent probability sampling; the defaults keep everything.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    #[serde(default)]
    pub traces: TraceSampling,
    #[serde(default)]
    pub logs: LogSampling,
    /// Token buckets applied after sampling; an item must fit every bucket of its signal.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
    /// Tail sampling for traces: whole traces buffered and decided by what they contain.
    #[serde(default)]
    pub tail: Option<TailSamplingConfig>,
    /// When set, kept items carry the name of the rule or policy that kept them under this attribute
    /// (log rules, tail policies, and `head` for spans kept by head sampling below 100 %).
    #[serde(default)]
    pub policy_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSampling {
    /// Head sampling by trace id (OpenTelemetry-compatible thresholds); 1.0 keeps every trace.
    #[serde(default = "one")]
    pub probability: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for TraceSampling {
    fn default() -> Self {
        TraceSampling { probability: 1.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSampling {
    /// First match wins.
    #[serde(default)]
    pub rules: Vec<LogRuleConfig>,
    /// For records no rule matches.
    #[serde(default = "one")]
    pub default_probability: f64,
}

impl Default for LogSampling {
    fn default() -> Self {
        LogSampling {
            rules: Vec::new(),
            default_probability: 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogRuleConfig {
    /// Used in the `rule` label of `weir_sampled_out_items_total`; default `rule<N>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Matches this level and above.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Matches exactly this level.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Matches the resource's `service.name`.
    #[serde(default)]
    pub service: Option<String>,
    pub probability: f64,
}

/// OTLP severity ranges by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// The severity numbers of this level: TRACE is 1–4, DEBUG 5–8, … FATAL 21–24.
    pub fn range(self) -> (i32, i32) {
        let lo = 1 + 4 * self as i32;
        (lo, lo + 3)
    }
}

/// A token bucket per value of `key` (a resource attribute), refilled every second, bursting one
/// second's worth.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub name: String,
    pub signal: SignalKind,
    #[serde(default = "rate_limit_key")]
    pub key: String,
    pub items_per_second: f64,
    #[serde(default)]
    pub bytes_per_second: Option<ByteSize>,
    /// Most key values with a bucket of their own; the least recently used are forgotten beyond it
    /// (counted in `weir_ratelimit_evicted_keys_total`), since clients choose the values.
    #[serde(default = "rate_limit_max_keys")]
    pub max_keys: usize,
}

fn rate_limit_key() -> String {
    "service.name".into()
}

fn rate_limit_max_keys() -> usize {
    10_000
}

/// Probabilities that are probabilities, rate limits that let something through, named once each,
/// and only for the signals that have them.
pub(crate) fn check(sample: &SampleConfig) -> Result<(), Invalid> {
    probability(
        "pipeline.sample.traces.probability",
        sample.traces.probability,
    )?;
    probability(
        "pipeline.sample.logs.default_probability",
        sample.logs.default_probability,
    )?;
    for (i, limit) in sample.rate_limits.iter().enumerate() {
        let path = format!("pipeline.sample.rate_limits[{i}]");
        if limit.items_per_second.is_nan() || limit.items_per_second <= 0.0 {
            return Err(invalid(
                format!("{path}.items_per_second"),
                "must be greater than 0",
            ));
        }
        if limit.max_keys == 0 {
            return Err(invalid(format!("{path}.max_keys"), "must be at least 1"));
        }
        if limit.signal == SignalKind::Metrics {
            return Err(invalid(
                format!("{path}.signal"),
                "rate limits apply to traces and logs",
            ));
        }
        if sample.rate_limits[..i].iter().any(|l| l.name == limit.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is used twice", limit.name),
            ));
        }
    }
    for (i, rule) in sample.logs.rules.iter().enumerate() {
        probability(
            &format!("pipeline.sample.logs.rules[{i}].probability"),
            rule.probability,
        )?;
        if rule.min_severity.is_some() && rule.severity.is_some() {
            return Err(invalid(
                format!("pipeline.sample.logs.rules[{i}]"),
                "set min_severity or severity, not both",
            ));
        }
    }
    if let Some(tail) = &sample.tail {
        super::tail::check(tail)?;
    }
    if sample.policy_attribute.as_deref() == Some("") {
        return Err(invalid(
            "pipeline.sample.policy_attribute",
            "must not be empty",
        ));
    }
    Ok(())
}
