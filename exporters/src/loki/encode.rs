//! Log records → Loki push requests: labels from the allowlists (guarded for cardinality), structured
//! metadata (trace context, severity, the attributes not promoted), the line, then entries grouped by
//! tenant and stream, sorted by time inside each stream, and cut into requests of at most
//! `max_request_bytes` of line + metadata — the measure Loki's own clients and rate limits use.

use super::labels::{label_set, sanitize};
use super::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
use super::streams::StreamGuard;
use crate::text::{json_string, value_text};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use std::collections::{BTreeMap, HashMap, HashSet};
use weir_config::{LineFormat, LokiEncoding, LokiExporter, MetadataMode, OversizeLine};

/// The encoding rules, compiled from config once.
pub struct Rules {
    tenant: Option<String>,
    tenant_attribute: Option<String>,
    /// (attribute key, label name)
    resource_labels: Vec<(String, String)>,
    attribute_labels: Vec<(String, String)>,
    severity_label: bool,
    metadata: MetadataMode,
    metadata_keys: HashSet<String>,
    line_format: LineFormat,
    max_line: usize,
    oversize: OversizeLine,
    max_request: usize,
    encoding: LokiEncoding,
}

/// Loki refuses a stream with more label names than this (`service_name` not counted).
pub const MAX_LABELS: usize = 15;

impl Rules {
    pub fn new(c: &LokiExporter) -> Self {
        let labels = |keys: &[String]| keys.iter().map(|k| (k.clone(), sanitize(k))).collect();
        Rules {
            tenant: c.tenant.clone().filter(|t| !t.is_empty()),
            tenant_attribute: c.tenant_attribute.clone(),
            resource_labels: labels(&c.resource_labels),
            attribute_labels: labels(&c.attribute_labels),
            severity_label: c.severity_label,
            metadata: c.structured_metadata,
            metadata_keys: c.structured_metadata_keys.iter().cloned().collect(),
            line_format: c.line_format,
            max_line: c.max_line_bytes.as_usize(),
            oversize: c.oversize_lines,
            max_request: c.max_request_bytes.as_usize(),
            encoding: c.encoding,
        }
    }

    fn keeps_metadata(&self, key: &str) -> bool {
        match self.metadata {
            MetadataMode::All => true,
            MetadataMode::Allowlist => self.metadata_keys.contains(key),
            MetadataMode::None => false,
        }
    }
}

/// One push request for one tenant.
#[derive(Debug, Clone)]
pub struct Push {
    pub tenant: Option<String>,
    /// Snappy block of the protobuf `PushRequest`, or Loki's JSON push format.
    pub body: Bytes,
    pub content_type: &'static str,
    pub entries: usize,
}

/// What encoding changed or removed, for metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub truncated: usize,
    pub dropped_too_long: usize,
    pub overflowed: usize,
}

struct Line {
    tenant: Option<String>,
    labels: Vec<(String, String)>,
    entry: EntryAdapter,
}

pub fn encode(
    rules: &Rules,
    guard: &StreamGuard,
    resources: &[ResourceLogs],
) -> (Vec<Push>, Outcome) {
    let mut outcome = Outcome::default();
    let mut pending = Vec::new();
    let mut scratch = String::new();
    for rl in resources {
        let attrs: &[KeyValue] = rl.resource.as_ref().map_or(&[], |r| &r.attributes);
        let tenant = rules
            .tenant_attribute
            .as_ref()
            .and_then(|key| attrs.iter().find(|kv| &kv.key == key))
            .map(|kv| value_text(kv.value.as_ref(), &mut scratch).to_string())
            .filter(|t| !t.is_empty())
            .or_else(|| rules.tenant.clone());
        let resource_labels = promoted(&rules.resource_labels, attrs, &mut scratch);
        let resource_metadata: Vec<LabelPairAdapter> = attrs
            .iter()
            .filter(|kv| !rules.resource_labels.iter().any(|(k, _)| *k == kv.key))
            .filter(|kv| rules.tenant_attribute.as_deref() != Some(kv.key.as_str()))
            .filter(|kv| rules.keeps_metadata(&kv.key))
            .map(|kv| pair(kv, &mut scratch))
            .collect();
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let Some(line) = line(rules, r, &mut scratch, &mut outcome) else {
                    continue;
                };
                let mut labels = resource_labels.clone();
                labels.extend(promoted(
                    &rules.attribute_labels,
                    &r.attributes,
                    &mut scratch,
                ));
                if rules.severity_label {
                    labels.push(("level".into(), level(r).into()));
                }
                let mut metadata =
                    Vec::with_capacity(4 + r.attributes.len() + resource_metadata.len());
                // Past Loki's label limit the later-listed labels travel as metadata instead.
                let mut counted = 0;
                labels.retain(|(name, value)| {
                    if name == "service_name" {
                        return true;
                    }
                    counted += 1;
                    if counted <= MAX_LABELS {
                        return true;
                    }
                    metadata.push(meta(name, value.clone()));
                    false
                });
                labels.sort();
                labels.dedup_by(|a, b| a.0 == b.0);
                if !is_zero(&r.trace_id) {
                    metadata.push(meta("trace_id", hex(&r.trace_id)));
                }
                if !is_zero(&r.span_id) {
                    metadata.push(meta("span_id", hex(&r.span_id)));
                }
                if !r.severity_text.is_empty() {
                    metadata.push(meta("severity_text", r.severity_text.clone()));
                }
                if r.severity_number != 0 {
                    metadata.push(meta("severity_number", r.severity_number.to_string()));
                }
                metadata.extend(
                    r.attributes
                        .iter()
                        .filter(|kv| !rules.attribute_labels.iter().any(|(k, _)| *k == kv.key))
                        .filter(|kv| rules.keeps_metadata(&kv.key))
                        .map(|kv| pair(kv, &mut scratch)),
                );
                metadata.extend(resource_metadata.iter().cloned());
                let ts = if r.time_unix_nano != 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                pending.push(Line {
                    tenant: tenant.clone(),
                    labels,
                    entry: EntryAdapter {
                        timestamp: Some(Timestamp::from_nanos(ts)),
                        line,
                        structured_metadata: metadata,
                    },
                });
            }
        }
    }
    outcome.overflowed = guard.admit_all(pending.iter_mut().map(|p| &mut p.labels));
    (requests(rules, pending), outcome)
}

/// Groups by tenant and stream, sorts each stream by time, and cuts requests at `max_request` bytes.
fn requests(rules: &Rules, pending: Vec<Line>) -> Vec<Push> {
    // Keyed by the label pairs; each stream's label string is rendered once, not once per record.
    type Streams = HashMap<Vec<(String, String)>, Vec<EntryAdapter>>;
    let mut by_tenant: BTreeMap<Option<String>, Streams> = BTreeMap::new();
    for p in pending {
        by_tenant
            .entry(p.tenant)
            .or_default()
            .entry(p.labels)
            .or_default()
            .push(p.entry);
    }
    let mut out = Vec::new();
    for (tenant, streams) in by_tenant {
        let mut streams: Vec<(String, Vec<EntryAdapter>)> = streams
            .into_iter()
            .map(|(labels, entries)| (label_set(&labels), entries))
            .collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        let mut req = PushRequest::default();
        let (mut size, mut entries) = (0usize, 0usize);
        for (labels, mut stream) in streams {
            stream.sort_by_key(|e| e.timestamp.map(|t| t.as_nanos()));
            let mut current = StreamAdapter {
                labels: labels.clone(),
                entries: Vec::new(),
            };
            for e in stream {
                let cost = e.line.len()
                    + e.structured_metadata
                        .iter()
                        .map(|m| m.name.len() + m.value.len())
                        .sum::<usize>();
                // The first entry always fits, however large, so nothing is ever stuck.
                if entries > 0 && size + cost > rules.max_request {
                    if !current.entries.is_empty() {
                        req.streams.push(std::mem::replace(
                            &mut current,
                            StreamAdapter {
                                labels: labels.clone(),
                                entries: Vec::new(),
                            },
                        ));
                    }
                    out.push(seal(rules, &tenant, std::mem::take(&mut req), entries));
                    (size, entries) = (0, 0);
                }
                size += cost;
                entries += 1;
                current.entries.push(e);
            }
            if !current.entries.is_empty() {
                req.streams.push(current);
            }
        }
        if entries > 0 {
            out.push(seal(rules, &tenant, req, entries));
        }
    }
    out
}

fn seal(rules: &Rules, tenant: &Option<String>, req: PushRequest, entries: usize) -> Push {
    let (body, content_type) = match rules.encoding {
        LokiEncoding::Protobuf => {
            let proto = prost::Message::encode_to_vec(&req);
            let body = snap::raw::Encoder::new()
                .compress_vec(&proto)
                .expect("snappy block compression cannot fail for in-memory input");
            (body, "application/x-protobuf")
        }
        LokiEncoding::Json => (json_body(&req).into_bytes(), "application/json"),
    };
    Push {
        tenant: tenant.clone(),
        body: Bytes::from(body),
        content_type,
        entries,
    }
}

/// `{"streams":[{"stream":{…},"values":[["<ns>","<line>",{…}]]}]}`: timestamps as decimal strings,
/// structured metadata as a string-valued object.
fn json_body(req: &PushRequest) -> String {
    let mut out = String::from("{\"streams\":[");
    for (i, s) in req.streams.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":{");
        let labels = super::labels::parse_rendered(&s.labels);
        for (j, (k, v)) in labels.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = json_string(k, &mut out);
            out.push(':');
            let _ = json_string(v, &mut out);
        }
        out.push_str("},\"values\":[");
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let ts = e.timestamp.map_or(0, |t| t.as_nanos());
            out.push_str(&format!("[\"{ts}\","));
            let _ = json_string(&e.line, &mut out);
            if !e.structured_metadata.is_empty() {
                out.push_str(",{");
                for (k, m) in e.structured_metadata.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    let _ = json_string(&m.name, &mut out);
                    out.push(':');
                    let _ = json_string(&m.value, &mut out);
                }
                out.push('}');
            }
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// The line: the body as is (non-strings as compact JSON), or a JSON object with the attributes
/// folded in; `None` when it is too long and the rule is to drop.
fn line(
    rules: &Rules,
    r: &LogRecord,
    scratch: &mut String,
    outcome: &mut Outcome,
) -> Option<String> {
    let mut line = match rules.line_format {
        LineFormat::Raw => value_text(r.body.as_ref(), scratch).to_string(),
        LineFormat::Json => {
            let mut out = String::from("{\"body\":");
            json_value(r.body.as_ref(), &mut out, scratch);
            for kv in &r.attributes {
                out.push(',');
                let _ = json_string(&kv.key, &mut out);
                out.push(':');
                json_value(kv.value.as_ref(), &mut out, scratch);
            }
            out.push('}');
            out
        }
    };
    if line.len() > rules.max_line {
        match rules.oversize {
            OversizeLine::Drop => {
                outcome.dropped_too_long += 1;
                return None;
            }
            OversizeLine::Truncate => {
                let mut cut = rules.max_line;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                outcome.truncated += 1;
            }
        }
    }
    Some(line)
}

/// A value inside a JSON line: strings quoted, everything else in its text form (already JSON for
/// numbers, bools, arrays and maps).
fn json_value(v: Option<&AnyValue>, out: &mut String, scratch: &mut String) {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => {
            let _ = json_string(s, out);
        }
        Some(Value::BytesValue(_)) => {
            let _ = json_string(value_text(v, scratch), out);
        }
        Some(Value::DoubleValue(d)) if !d.is_finite() => {
            let _ = json_string(value_text(v, scratch), out);
        }
        Some(_) => out.push_str(value_text(v, scratch)),
        None => out.push_str("null"),
    }
}

fn promoted(
    rules: &[(String, String)],
    attrs: &[KeyValue],
    scratch: &mut String,
) -> Vec<(String, String)> {
    rules
        .iter()
        .filter_map(|(key, label)| {
            let kv = attrs.iter().find(|kv| &kv.key == key)?;
            Some((
                label.clone(),
                value_text(kv.value.as_ref(), scratch).to_string(),
            ))
        })
        .collect()
}

fn pair(kv: &KeyValue, scratch: &mut String) -> LabelPairAdapter {
    LabelPairAdapter {
        name: sanitize(&kv.key),
        value: value_text(kv.value.as_ref(), scratch).to_string(),
    }
}

fn meta(name: &str, value: String) -> LabelPairAdapter {
    LabelPairAdapter {
        name: name.into(),
        value,
    }
}

fn is_zero(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

/// Lowercase hex, one allocation (not one per byte).
fn hex(id: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(id.len() * 2);
    for b in id {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Loki's `level` words for OTLP severity numbers.
fn level(r: &LogRecord) -> &'static str {
    match r.severity_number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    }
}
