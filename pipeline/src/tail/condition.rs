//! What a tail policy asks of a whole trace: its spans (status, duration, attributes, count), its held
//! size, and, with `logs: with_trace`, its log records. Conditions are compiled once per reload, so a
//! regex is built when the config is loaded, never per trace.

use crate::stages::threshold::{trace_randomness, Threshold};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Error,
    /// Nanoseconds.
    Latency(u64),
    /// A span or resource attribute.
    Attribute(AttrMatch),
    /// A span or resource attribute holding a number in `[min, max]`.
    Numeric {
        key: String,
        min: f64,
        max: f64,
    },
    /// Any span's status code is one of these.
    Status(Vec<i32>),
    SpanCount {
        min: u64,
        max: u64,
    },
    /// The trace's held bytes (spans and logs, as the buffer counts them).
    TraceBytes {
        min: usize,
        max: usize,
    },
    /// Any log record at this severity number or above.
    LogSeverity(i32),
    /// A log record or its resource's attribute.
    LogAttribute(AttrMatch),
    Probability(Threshold),
    Any,
    And(Vec<Condition>),
}

/// A key and what its value must be: one of `values`, a `regex` match, or anything when neither is
/// set. `invert` turns "some item carries it" into "no item does".
#[derive(Debug, Clone, PartialEq)]
pub struct AttrMatch {
    pub key: String,
    pub values: Vec<String>,
    pub regex: Option<Pattern>,
    pub invert: bool,
}

/// A compiled regex, compared by its source so policies stay comparable.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What a trace looks like to a condition: its id, each span and log record with its resource, and
/// what it weighs in the buffer.
pub trait TraceView {
    fn trace_id(&self) -> &[u8];
    fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)>;
    fn logs(&self) -> impl Iterator<Item = (&LogRecord, Option<&Resource>)> {
        std::iter::empty()
    }
    fn bytes(&self) -> usize {
        0
    }
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
            Condition::Attribute(m) => m.held_by(trace.spans().map(|(s, r)| (&s.attributes, r))),
            Condition::Numeric { key, min, max } => trace.spans().any(|(s, r)| {
                with_resource(&s.attributes, r)
                    .any(|kv| kv.key == *key && number(kv).is_some_and(|n| n >= *min && n <= *max))
            }),
            Condition::Status(codes) => trace.spans().any(|(s, _)| {
                let code = s.status.as_ref().map_or(0, |st| st.code);
                codes.contains(&code)
            }),
            Condition::SpanCount { min, max } => {
                let n = trace.spans().count() as u64;
                n >= *min && n <= *max
            }
            Condition::TraceBytes { min, max } => (*min..=*max).contains(&trace.bytes()),
            Condition::LogSeverity(min) => trace.logs().any(|(r, _)| r.severity_number >= *min),
            Condition::LogAttribute(m) => m.held_by(trace.logs().map(|(l, r)| (&l.attributes, r))),
            Condition::Probability(t) => trace_randomness(trace.trace_id()) >= t.0,
            Condition::Any => true,
            Condition::And(all) => all.iter().all(|c| c.holds(trace)),
        }
    }
}

impl AttrMatch {
    /// Whether any of `items` (attributes with their resource) carries a matching value, or, inverted,
    /// none does.
    fn held_by<'a>(
        &self,
        mut items: impl Iterator<Item = (&'a Vec<KeyValue>, Option<&'a Resource>)>,
    ) -> bool {
        let found = items.any(|(attrs, r)| with_resource(attrs, r).any(|kv| self.matches(kv)));
        found != self.invert
    }

    fn matches(&self, kv: &KeyValue) -> bool {
        if kv.key != self.key {
            return false;
        }
        let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
            return false;
        };
        if let Some(re) = &self.regex {
            return match v {
                Value::StringValue(s) => re.0.is_match(s),
                other => re.0.is_match(&crate::attrs::scalar_text(other)),
            };
        }
        self.values.is_empty() || value_in(v, &self.values)
    }
}

fn with_resource<'a>(
    attrs: &'a [KeyValue],
    resource: Option<&'a Resource>,
) -> impl Iterator<Item = &'a KeyValue> {
    attrs.iter().chain(crate::attrs::of(resource))
}

fn number(kv: &KeyValue) -> Option<f64> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) => Some(*d),
        _ => None,
    }
}

fn value_in(v: &Value, values: &[String]) -> bool {
    match v {
        Value::StringValue(s) => values.iter().any(|x| x == s),
        Value::IntValue(i) => values.iter().any(|x| x.parse() == Ok(*i)),
        Value::BoolValue(b) => values.iter().any(|x| x.parse() == Ok(*b)),
        Value::DoubleValue(d) => values.iter().any(|x| x.parse() == Ok(*d)),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests;
