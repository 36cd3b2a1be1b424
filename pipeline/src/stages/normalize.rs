//! `Normalize`: W3C trace context made trustworthy before anything samples or exports on it.
//!
//! - Spans: an all-zero trace or span id is invalid — the span is dropped and counted, or kept with
//!   `weir.trace_context.invalid = true` (policy). An all-zero parent id becomes empty (a root).
//!   `trace_state` is validated and trimmed ([`super::tracestate`]).
//! - Log records without a trace id get one, with span id and flags, from the first source that
//!   parses, in this order: a `traceparent` attribute; `trace_id` + `span_id` (+ `trace_flags`)
//!   attributes; B3 single `b3`; B3 multi `X-B3-TraceId`/`X-B3-SpanId`/`X-B3-Sampled`/`X-B3-Flags`;
//!   Jaeger `uber-trace-id`; AWS `X-Amzn-Trace-Id` — first among the record's attributes, then the
//!   same keys in a map body, then in a JSON-object string body. Keys match case-insensitively.
//!   Sources that parse to a different trace are counted as conflicting; sources that do not parse as
//!   invalid. An all-zero id already on a record is cleared (counted).
//!
//! Ids stay binary in OTLP; every exporter writes them as lowercase hex.

use super::context::{self, Context, Invalid};
use super::tracestate;
use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::{Counter, Registry};
use crate::signal::{Logs, Traces};
use crate::stage::Stage;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

pub(crate) mod policy;
pub use policy::NormalizePolicy;
use weir_config::InvalidSpans;

/// The attribute set on spans kept despite invalid ids (`invalid_spans: flag`).
pub const INVALID_FLAG: &str = "weir.trace_context.invalid";

/// Keys that carry trace context on log records, lowercase.
const SOURCE_KEYS: [&str; 11] = [
    "traceparent",
    "trace_id",
    "span_id",
    "trace_flags",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "x-amzn-trace-id",
];

/// Bit `n` is set when a source key is `n` bytes long: most attribute keys (`http.request.method`,
/// `url.full`) are ruled out by their length alone, before any comparison.
const SOURCE_KEY_LENGTHS: u32 = {
    let mut lengths = 0u32;
    let mut i = 0;
    while i < SOURCE_KEYS.len() {
        assert!(SOURCE_KEYS[i].len() < 32);
        lengths |= 1 << SOURCE_KEYS[i].len();
        i += 1;
    }
    lengths
};

pub struct Normalize {
    policy: HotSwap<NormalizePolicy>,
    filled: Counter,
    invalid_source: Counter,
    conflicting: Counter,
    zero_ids_cleared: Counter,
    spans_dropped: Counter,
    spans_flagged: Counter,
    tracestate_trimmed: Counter,
}

impl Normalize {
    pub fn new(policy: NormalizePolicy, registry: &Registry) -> Self {
        let c = |signal: &str, action: &str| {
            registry.counter(
                "weir_normalize_items_total",
                "Items the normalize stage changed, dropped or could not use a trace-context source of, by action.",
                &[("signal", signal), ("action", action)],
            )
        };
        Normalize {
            policy: HotSwap::new(policy),
            filled: c("logs", "filled"),
            invalid_source: c("logs", "invalid_source"),
            conflicting: c("logs", "conflicting"),
            zero_ids_cleared: c("logs", "zero_ids_cleared"),
            spans_dropped: c("traces", "invalid_dropped"),
            spans_flagged: c("traces", "invalid_flagged"),
            tracestate_trimmed: c("traces", "tracestate_trimmed"),
        }
    }

    /// The policy of the set `batch` runs under, or this stage's own outside such a chain.
    fn current<S: crate::Signal>(
        &self,
        batch: &crate::Batch<S>,
    ) -> std::sync::Arc<NormalizePolicy> {
        batch
            .policies()
            .map_or_else(|| self.policy.load_full(), |set| set.normalize.clone())
    }

    /// The policy holder, for reloads.
    pub fn policy(&self) -> &HotSwap<NormalizePolicy> {
        &self.policy
    }
}

fn all_zero(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

impl Stage<Traces> for Normalize {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn apply(&self, batch: &mut Batch<Traces>) {
        let policy = self.current(batch);
        if !policy.enabled {
            return;
        }
        for scope in batch
            .resources
            .iter_mut()
            .flat_map(|r| r.scope_spans.iter_mut())
        {
            scope.spans.retain_mut(|span| {
                if !span.parent_span_id.is_empty() && all_zero(&span.parent_span_id) {
                    span.parent_span_id.clear();
                }
                if let Some(fixed) = tracestate::normalize(&span.trace_state) {
                    span.trace_state = fixed;
                    self.tracestate_trimmed.inc();
                }
                if !(all_zero(&span.trace_id) || all_zero(&span.span_id)) {
                    return true;
                }
                match policy.invalid_spans {
                    InvalidSpans::Drop => {
                        self.spans_dropped.inc();
                        crate::tap::explain(&span.attributes, || {
                            "normalize: all-zero trace or span id (invalid_spans: drop)".into()
                        });
                        false
                    }
                    InvalidSpans::Flag => {
                        self.spans_flagged.inc();
                        span.attributes.push(KeyValue {
                            key: INVALID_FLAG.into(),
                            value: Some(AnyValue {
                                value: Some(Value::BoolValue(true)),
                            }),
                            ..Default::default()
                        });
                        true
                    }
                }
            });
        }
    }
}

impl Stage<Logs> for Normalize {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn apply(&self, batch: &mut Batch<Logs>) {
        let policy = self.current(batch);
        if !policy.enabled {
            return;
        }
        for scope in batch
            .resources
            .iter_mut()
            .flat_map(|r| r.scope_logs.iter_mut())
        {
            for record in &mut scope.log_records {
                if !record.trace_id.is_empty() {
                    if all_zero(&record.trace_id) {
                        record.trace_id.clear();
                        record.span_id.clear();
                        self.zero_ids_cleared.inc();
                    } else {
                        continue;
                    }
                }
                self.fill(record, policy.remove_source_attributes);
            }
        }
    }
}

/// Source values found on one record, borrowed.
#[derive(Default)]
struct SourceValues<'a> {
    values: [Option<&'a str>; SOURCE_KEYS.len()],
}

impl<'a> SourceValues<'a> {
    fn offer(&mut self, key: &str, value: &'a str) {
        if key.len() >= 32 || SOURCE_KEY_LENGTHS & (1 << key.len()) == 0 {
            return;
        }
        if let Some(i) = SOURCE_KEYS.iter().position(|k| k.eq_ignore_ascii_case(key)) {
            self.values[i].get_or_insert(value);
        }
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        SOURCE_KEYS
            .iter()
            .position(|k| *k == key)
            .and_then(|i| self.values[i])
    }

    fn any(&self) -> bool {
        self.values.iter().any(Option::is_some)
    }

    /// Parses every source present, in precedence order, into `tally`.
    fn parse_into(&self, tally: &mut Choice) {
        if let Some(v) = self.get("traceparent") {
            tally.add(context::traceparent(v));
        }
        if let (Some(t), Some(s)) = (self.get("trace_id"), self.get("span_id")) {
            tally.add(context::hex_ids(t, s, self.get("trace_flags")));
        }
        if let Some(v) = self.get("b3") {
            // A lone sampling flag (`0`, `1`, `d`) carries no ids and is not an error.
            if v.trim().len() > 1 {
                tally.add(context::b3_single(v));
            }
        }
        if let (Some(t), Some(s)) = (self.get("x-b3-traceid"), self.get("x-b3-spanid")) {
            tally.add(context::b3_multi(
                t,
                s,
                self.get("x-b3-sampled"),
                self.get("x-b3-flags"),
            ));
        }
        if let Some(v) = self.get("uber-trace-id") {
            tally.add(context::uber(v));
        }
        if let Some(v) = self.get("x-amzn-trace-id") {
            tally.add(context::amzn(v));
        }
    }
}

/// The first valid context found, and how many sources disagreed with it or did not parse.
#[derive(Default)]
struct Choice {
    chosen: Option<Context>,
    conflicts: u64,
    invalid: u64,
}

impl Choice {
    fn add(&mut self, parsed: Result<Context, Invalid>) {
        match (parsed, &self.chosen) {
            (Ok(c), None) => self.chosen = Some(c),
            (Ok(c), Some(first)) if c.trace_id != first.trace_id => self.conflicts += 1,
            (Ok(_), Some(_)) => {}
            (Err(_), _) => self.invalid += 1,
        }
    }
}

impl Normalize {
    /// Sources are parsed as they are found, attributes first, then the body; nothing is collected,
    /// so a record without any source costs one pass over its attributes.
    fn fill(&self, record: &mut LogRecord, remove_sources: bool) {
        let mut tally = Choice::default();
        let mut attrs = SourceValues::default();
        for kv in &record.attributes {
            if let Some(s) = crate::attrs::string_value(&kv.value) {
                attrs.offer(&kv.key, s);
            }
        }
        let from_attributes = attrs.any();
        attrs.parse_into(&mut tally);
        match record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::KvlistValue(map)) => {
                let mut body = SourceValues::default();
                for kv in &map.values {
                    if let Some(s) = crate::attrs::string_value(&kv.value) {
                        body.offer(&kv.key, s);
                    }
                }
                body.parse_into(&mut tally);
            }
            Some(Value::StringValue(s)) if s.trim_start().starts_with('{') => {
                if let Ok(obj) =
                    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s)
                {
                    let mut body = SourceValues::default();
                    for (k, v) in &obj {
                        if let Some(s) = v.as_str() {
                            body.offer(k, s);
                        }
                    }
                    body.parse_into(&mut tally);
                }
            }
            _ => {}
        }
        if tally.conflicts > 0 {
            self.conflicting.add(tally.conflicts);
        }
        if tally.invalid > 0 {
            self.invalid_source.add(tally.invalid);
        }
        let context = tally.chosen;
        let Some(c) = context else { return };
        record.trace_id = c.trace_id.to_vec();
        record.span_id = c.span_id.to_vec();
        if let Some(f) = c.flags {
            record.flags = (record.flags & !0xff) | u32::from(f);
        }
        self.filled.inc();
        if remove_sources && from_attributes {
            record
                .attributes
                .retain(|kv| !SOURCE_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&kv.key)));
        }
    }
}

#[cfg(test)]
mod tests;
