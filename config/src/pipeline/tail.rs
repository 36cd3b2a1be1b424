//! `pipeline.sample.tail`: tail sampling of whole traces: how long spans are held, the memory bound,
//! and the policies (conditions, budgets, drops), with the checks that each condition is usable.

use super::sample::Severity;
use crate::check::{invalid, ordered, positive, probability, Invalid};
use crate::units::{ByteSize, Duration};
use serde::Deserialize;

/// Spans are held by trace id until the root span has arrived and `root_wait` has passed, or
/// `decision_wait` after the trace's first span, whichever comes first; then the policies decide, first
/// match wins. Memory is bounded by `max_traces` and `max_bytes`: at the bound the oldest traces are
/// decided early (counted), never evicted unseen.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailSamplingConfig {
    #[serde(default = "decision_wait")]
    pub decision_wait: Duration,
    #[serde(default = "root_wait")]
    pub root_wait: Duration,
    #[serde(default = "tail_max_traces")]
    pub max_traces: usize,
    #[serde(default = "tail_max_bytes")]
    pub max_bytes: ByteSize,
    /// Decided trace ids remembered so late spans (and late logs) follow their trace.
    #[serde(default = "decision_cache")]
    pub decision_cache: usize,
    /// What happens to log records that carry a trace id.
    #[serde(default)]
    pub logs: TailLogs,
    pub policies: Vec<TailPolicyConfig>,
}

fn decision_wait() -> Duration {
    Duration::secs(10)
}

fn root_wait() -> Duration {
    Duration::secs(1)
}

fn tail_max_traces() -> usize {
    50_000
}

fn tail_max_bytes() -> ByteSize {
    ByteSize::mib(128)
}

fn decision_cache() -> usize {
    100_000
}

/// `pass`: log records go through the log rules like any other (spans alone are tail sampled).
/// `with_trace`: records with a trace id are held with their trace and share its decision; records
/// without one follow the log rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TailLogs {
    #[default]
    Pass,
    WithTrace,
}

/// One tail policy: a name, exactly one condition (`and` combines several), and what a match does:
/// keep the trace (optionally capped by a budget in traces per second) or, with `drop: true`, drop it
/// outright. Entries of `and` are conditions only: no name, budget or `drop`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailPolicyConfig {
    #[serde(default)]
    pub name: String,
    /// Drop matching traces (health checks, synthetic probes) instead of keeping them.
    #[serde(default)]
    pub drop: Option<bool>,
    /// Any span with status ERROR.
    #[serde(default)]
    pub error: Option<bool>,
    /// The trace (first start to last end) or any one span lasted at least this long.
    #[serde(default)]
    pub latency: Option<Duration>,
    /// A span or resource attribute equal to one of `values`, or matching `regex` (any value when
    /// neither is set); `invert: true` holds when no span carries such a value.
    #[serde(default)]
    pub attribute: Option<AttributeMatch>,
    /// A span or resource attribute holding a number in `[min, max]`.
    #[serde(default)]
    pub numeric_attribute: Option<NumericMatch>,
    /// Any span whose status is one of these (`ok`, `error`, `unset`).
    #[serde(default)]
    pub status_code: Option<Vec<StatusCodeName>>,
    /// The trace has between `min` and `max` spans.
    #[serde(default)]
    pub span_count: Option<CountRange>,
    /// The trace's held size (spans and logs, as counted against `max_bytes`) is in `[min, max]`.
    #[serde(default)]
    pub trace_bytes: Option<BytesRange>,
    /// Any log record of the trace at this severity or above (needs `logs: with_trace`).
    #[serde(default)]
    pub log_severity: Option<Severity>,
    /// A log record (or its resource) attribute, matched like `attribute` (needs `logs: with_trace`).
    #[serde(default)]
    pub log_attribute: Option<AttributeMatch>,
    /// Consistent by trace id, the same randomness as head sampling.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Any trace, up to this many traces per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Every condition listed holds.
    #[serde(default)]
    pub and: Option<Vec<TailPolicyConfig>>,
    /// Caps what this policy keeps, in traces per second; traces over the budget fall through to the
    /// next policy.
    #[serde(default)]
    pub traces_per_second: Option<f64>,
}

impl TailPolicyConfig {
    /// The condition keys this entry sets, by name, for "exactly one" checks.
    pub fn conditions(&self) -> Vec<&'static str> {
        [
            ("error", self.error.is_some()),
            ("latency", self.latency.is_some()),
            ("attribute", self.attribute.is_some()),
            ("numeric_attribute", self.numeric_attribute.is_some()),
            ("status_code", self.status_code.is_some()),
            ("span_count", self.span_count.is_some()),
            ("trace_bytes", self.trace_bytes.is_some()),
            ("log_severity", self.log_severity.is_some()),
            ("log_attribute", self.log_attribute.is_some()),
            ("probability", self.probability.is_some()),
            ("rate", self.rate.is_some()),
            ("and", self.and.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Whether this condition, or one inside it, looks at log records.
    pub fn reads_logs(&self) -> bool {
        self.log_severity.is_some()
            || self.log_attribute.is_some()
            || self.and.iter().flatten().any(TailPolicyConfig::reads_logs)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    pub key: String,
    #[serde(default)]
    pub values: Vec<String>,
    /// A regular expression the value must match (anywhere; anchor with `^…$`).
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub invert: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericMatch {
    pub key: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRange {
    #[serde(default)]
    pub min: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesRange {
    #[serde(default)]
    pub min: Option<ByteSize>,
    #[serde(default)]
    pub max: Option<ByteSize>,
}

/// A span status as written in config; OTLP's `STATUS_CODE_*` spellings are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StatusCodeName {
    #[serde(alias = "unset", alias = "UNSET", alias = "STATUS_CODE_UNSET")]
    Unset,
    #[serde(alias = "ok", alias = "OK", alias = "STATUS_CODE_OK")]
    Ok,
    #[serde(alias = "error", alias = "ERROR", alias = "STATUS_CODE_ERROR")]
    Error,
}

impl StatusCodeName {
    /// The OTLP `Status.code` number.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Waits that end, bounds above zero, and policies named once each whose conditions can hold.
pub(crate) fn check(t: &TailSamplingConfig) -> Result<(), Invalid> {
    const PATH: &str = "pipeline.sample.tail";
    positive(&format!("{PATH}.max_traces"), t.max_traces as u64)?;
    positive(&format!("{PATH}.max_bytes"), t.max_bytes.0)?;
    if t.decision_wait.0.is_zero() {
        return Err(invalid(
            format!("{PATH}.decision_wait"),
            "must be greater than 0",
        ));
    }
    if t.root_wait > t.decision_wait {
        return Err(invalid(
            format!("{PATH}.root_wait"),
            "must not be longer than decision_wait",
        ));
    }
    if t.policies.is_empty() {
        return Err(invalid(
            format!("{PATH}.policies"),
            "at least one policy is required (traces no policy keeps are dropped)",
        ));
    }
    for (i, p) in t.policies.iter().enumerate() {
        let path = format!("{PATH}.policies[{i}]");
        if p.name.is_empty() || t.policies[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is empty or used twice", p.name),
            ));
        }
        tail_condition(&path, p)?;
        for (key, rate) in [("rate", p.rate), ("traces_per_second", p.traces_per_second)] {
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                return Err(invalid(format!("{path}.{key}"), "must be greater than 0"));
            }
        }
        if p.drop == Some(false) {
            return Err(invalid(
                format!("{path}.drop"),
                "`drop: false` is the default; remove it",
            ));
        }
        if p.drop.is_some() && (p.rate.is_some() || p.traces_per_second.is_some()) {
            return Err(invalid(
                format!("{path}.drop"),
                "a drop policy takes no budget (rate, traces_per_second)",
            ));
        }
        if p.reads_logs() && t.logs != TailLogs::WithTrace {
            return Err(invalid(
                path,
                "log_severity and log_attribute see log records only with `logs: with_trace`",
            ));
        }
    }
    Ok(())
}

/// Checks one condition: exactly one kind set, and its values usable. Entries of `and` carry a
/// condition only.
fn tail_condition(path: &str, p: &TailPolicyConfig) -> Result<(), Invalid> {
    const KINDS: &str = "error, latency, attribute, numeric_attribute, status_code, span_count, \
                         trace_bytes, log_severity, log_attribute, probability, rate, and";
    if p.conditions().len() != 1 {
        return Err(invalid(path, format!("set exactly one of {KINDS}")));
    }
    if p.error == Some(false) {
        return Err(invalid(
            format!("{path}.error"),
            "`error: false` matches nothing; remove the policy or use `error: true`",
        ));
    }
    if let Some(prob) = p.probability {
        probability(&format!("{path}.probability"), prob)?;
    }
    for (key, a) in [
        ("attribute", &p.attribute),
        ("log_attribute", &p.log_attribute),
    ] {
        let Some(a) = a else { continue };
        if a.key.is_empty() {
            return Err(invalid(format!("{path}.{key}.key"), "must not be empty"));
        }
        if let Some(re) = &a.regex {
            if !a.values.is_empty() {
                return Err(invalid(
                    format!("{path}.{key}"),
                    "set values or regex, not both",
                ));
            }
            if let Err(e) = regex::Regex::new(re) {
                return Err(invalid(format!("{path}.{key}.regex"), e.to_string()));
            }
        }
    }
    if let Some(n) = &p.numeric_attribute {
        let at = format!("{path}.numeric_attribute");
        if n.key.is_empty() {
            return Err(invalid(format!("{at}.key"), "must not be empty"));
        }
        ordered(&at, n.min, n.max)?;
    }
    if let Some(c) = &p.span_count {
        ordered(&format!("{path}.span_count"), c.min, c.max)?;
    }
    if let Some(b) = &p.trace_bytes {
        ordered(
            &format!("{path}.trace_bytes"),
            b.min.map(|v| v.0),
            b.max.map(|v| v.0),
        )?;
    }
    if p.status_code.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            format!("{path}.status_code"),
            "list at least one of ok, error, unset",
        ));
    }
    if let Some(all) = &p.and {
        if all.len() < 2 {
            return Err(invalid(
                format!("{path}.and"),
                "list at least two conditions (one needs no `and`)",
            ));
        }
        for (j, c) in all.iter().enumerate() {
            let at = format!("{path}.and[{j}]");
            if !c.name.is_empty()
                || c.drop.is_some()
                || c.traces_per_second.is_some()
                || c.rate.is_some()
            {
                return Err(invalid(
                    at,
                    "entries of `and` are conditions: name, drop, rate and traces_per_second \
                     belong to the policy",
                ));
            }
            tail_condition(&at, c)?;
        }
    }
    Ok(())
}
