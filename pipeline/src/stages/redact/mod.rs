//! `Redact`: secrets and personal data out of every attribute (resource, scope, span, span event, link,
//! log record, metric data point and exemplar — nested maps and arrays included), log bodies, and
//! optionally span names and status messages, before anything leaves the process.
//!
//! Per attribute, in order: the allowlist (when set, keys not on it are dropped; Weir's own `weir.*`
//! annotations always survive), then key rules (first match acts on the whole value), then the value
//! scanner (every detector in one pass). Actions: mask, keyed hash, drop the field, drop the record.
//! Redacted output is recognised on a second pass and left alone, so redaction is idempotent.
//!
//! Metrics: `weir_redactions_total{signal, detector, action}` per redaction and
//! `weir_redaction_dropped_items_total{signal, detector}` per record dropped. The values themselves are
//! never logged or counted.

pub mod rules;
pub mod scanner;

use crate::attrs::{scalar_text, set as set_attribute};
use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::Registry;
use crate::signal::{Logs, Metrics, Traces};
use crate::stage::Stage;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, Exemplar, Metric, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use rules::{Glob, Hasher, Mask};
use scanner::{Found, Scanner};
use std::sync::Arc;
use weir_config::redact::{Action, RedactConfig};

/// A compiled `pipeline.redact`.
#[derive(Debug, Clone)]
pub struct RedactPolicy {
    enabled: bool,
    span_names: bool,
    status_messages: bool,
    allow: Option<Vec<Glob>>,
    keys: Vec<Glob>,
    scanner: Option<Scanner>,
    mask: Mask,
    hasher: Option<Hasher>,
    summary: Option<String>,
    /// Name and action of every detector id: the scanner's, then one per key rule, then the allowlist.
    detectors: Vec<(String, Action)>,
}

impl RedactPolicy {
    /// Compiles the config; the hash key is read through `env`. Errors name the key path.
    pub fn compile(c: &RedactConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let scanner = if c.enabled {
            Scanner::compile(c)?
        } else {
            None
        };
        let hasher = match &c.hash {
            Some(h) if c.enabled => Some(Hasher::new(h, env)?),
            _ => None,
        };
        let mut detectors: Vec<(String, Action)> = scanner
            .iter()
            .flat_map(|s| s.detectors.iter().map(|d| (d.name.clone(), d.action)))
            .collect();
        detectors.extend(c.keys.iter().map(|k| (format!("key:{}", k.key), k.action)));
        detectors.push(("allowlist".into(), Action::Drop));
        Ok(RedactPolicy {
            enabled: c.enabled,
            span_names: c.span_names,
            status_messages: c.status_messages,
            allow: c
                .allow_keys
                .as_ref()
                .map(|keys| keys.iter().map(|k| Glob::new(k)).collect()),
            keys: c.keys.iter().map(|k| Glob::new(&k.key)).collect(),
            scanner,
            mask: Mask::from(&c.mask),
            hasher,
            summary: c.summary_attribute.clone(),
            detectors,
        })
    }

    pub fn off() -> Self {
        RedactPolicy::compile(&RedactConfig::default(), |_| None).expect("the default compiles")
    }

    fn key_rule(&self, i: usize) -> usize {
        self.scanner.as_ref().map_or(0, |s| s.detectors.len()) + i
    }

    fn allowlist(&self) -> usize {
        self.detectors.len() - 1
    }
}

/// What became of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Kept, with this many redactions.
    Kept(u32),
    /// Remove the field (attribute, array element) or clear it (body, message).
    Remove,
    /// Drop the whole record, because of this detector.
    DropRecord(usize),
}

/// One batch's pass: the policy and the counts it gathers.
struct Pass<'a> {
    policy: &'a RedactPolicy,
    counts: Vec<u64>,
    dropped: Vec<u64>,
}

impl<'a> Pass<'a> {
    fn new(policy: &'a RedactPolicy) -> Self {
        Pass {
            policy,
            counts: vec![0; policy.detectors.len()],
            dropped: vec![0; policy.detectors.len()],
        }
    }

    /// Redacts a list of attributes in place: the redaction count, or the detector that drops the
    /// record.
    fn attributes(&mut self, attrs: &mut Vec<KeyValue>, top: bool) -> Result<u32, usize> {
        let mut total = 0;
        let mut drop_record = None;
        attrs.retain_mut(|kv| {
            if drop_record.is_some() {
                return true;
            }
            match self.attribute(kv, top) {
                Fate::Kept(n) => {
                    total += n;
                    true
                }
                Fate::Remove => {
                    total += 1;
                    false
                }
                Fate::DropRecord(d) => {
                    drop_record = Some(d);
                    true
                }
            }
        });
        drop_record.map_or(Ok(total), Err)
    }

    fn attribute(&mut self, kv: &mut KeyValue, top: bool) -> Fate {
        let p = self.policy;
        let ours = kv.key.starts_with("weir.");
        if let (Some(allow), true, false) = (&p.allow, top, ours) {
            if !allow.iter().any(|g| g.matches(&kv.key)) {
                self.counts[p.allowlist()] += 1;
                return Fate::Remove;
            }
        }
        if let Some(i) = p.keys.iter().position(|g| g.matches(&kv.key)) {
            let id = p.key_rule(i);
            return self.whole(kv.value.get_or_insert_with(AnyValue::default), id);
        }
        match kv.value.as_mut() {
            Some(v) => self.value(v),
            None => Fate::Kept(0),
        }
    }

    /// A key rule's action on a whole value, whatever its type.
    fn whole(&mut self, v: &mut AnyValue, id: usize) -> Fate {
        let action = self.policy.detectors[id].1;
        let text = match &v.value {
            None => return Fate::Kept(0),
            Some(Value::StringValue(s)) => {
                if self.is_output(s, 0, s.len()) {
                    return Fate::Kept(0);
                }
                std::borrow::Cow::Borrowed(s.as_str())
            }
            Some(other) => std::borrow::Cow::Owned(scalar_text(other)),
        };
        self.counts[id] += 1;
        match action {
            Action::Drop => Fate::Remove,
            Action::DropRecord => Fate::DropRecord(id),
            Action::Mask | Action::Hash => {
                let mut out = String::new();
                self.replace(action, &text, &mut out);
                v.value = Some(Value::StringValue(out));
                Fate::Kept(1)
            }
        }
    }

    fn value(&mut self, v: &mut AnyValue) -> Fate {
        match v.value.as_mut() {
            Some(Value::StringValue(s)) => self.text(s),
            Some(Value::KvlistValue(list)) => match self.attributes(&mut list.values, false) {
                Ok(n) => Fate::Kept(n),
                Err(d) => Fate::DropRecord(d),
            },
            Some(Value::ArrayValue(array)) => {
                let mut total = 0;
                let mut drop_record = None;
                array.values.retain_mut(|item| {
                    if drop_record.is_some() {
                        return true;
                    }
                    match self.value(item) {
                        Fate::Kept(n) => {
                            total += n;
                            true
                        }
                        Fate::Remove => {
                            total += 1;
                            false
                        }
                        Fate::DropRecord(d) => {
                            drop_record = Some(d);
                            true
                        }
                    }
                });
                drop_record.map_or(Fate::Kept(total), Fate::DropRecord)
            }
            _ => Fate::Kept(0),
        }
    }

    /// Scans one string; rewrites it only when something was found.
    fn text(&mut self, s: &mut String) -> Fate {
        let Some(scanner) = &self.policy.scanner else {
            return Fate::Kept(0);
        };
        let found: Vec<Found> = scanner.scan(s, |t, a, b| self.is_output(t, a, b));
        if found.is_empty() {
            return Fate::Kept(0);
        }
        let detectors = &self.policy.detectors;
        for f in &found {
            self.counts[f.detector] += 1;
        }
        if let Some(f) = found
            .iter()
            .find(|f| detectors[f.detector].1 == Action::DropRecord)
        {
            return Fate::DropRecord(f.detector);
        }
        if found
            .iter()
            .any(|f| detectors[f.detector].1 == Action::Drop)
        {
            return Fate::Remove;
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for f in &found {
            out.push_str(&s[last..f.start]);
            self.replace(detectors[f.detector].1, &s[f.start..f.end], &mut out);
            last = f.end;
        }
        out.push_str(&s[last..]);
        *s = out;
        Fate::Kept(found.len() as u32)
    }

    fn replace(&self, action: Action, secret: &str, out: &mut String) {
        match (action, &self.policy.hasher) {
            (Action::Hash, Some(h)) => h.apply(secret, out),
            _ => self.policy.mask.apply(secret, out),
        }
    }

    fn is_output(&self, text: &str, start: usize, end: usize) -> bool {
        self.policy.mask.is_output(&text[start..end])
            || self
                .policy
                .hasher
                .as_ref()
                .is_some_and(|h| h.is_output(text, start, end))
    }

    /// A string field that cannot be removed (span name, status message): `Remove` clears it.
    fn field(&mut self, s: &mut String) -> Result<u32, usize> {
        match self.text(s) {
            Fate::Kept(n) => Ok(n),
            Fate::Remove => {
                s.clear();
                s.push_str(&self.policy.mask.replacement);
                Ok(1)
            }
            Fate::DropRecord(d) => Err(d),
        }
    }

    /// Everything in a span: attributes, events', links', and the name and status message when
    /// configured.
    fn span(&mut self, span: &mut Span) -> Result<u32, usize> {
        let mut n = self.attributes(&mut span.attributes, true)?;
        for e in &mut span.events {
            n += self.attributes(&mut e.attributes, true)?;
        }
        for l in &mut span.links {
            n += self.attributes(&mut l.attributes, true)?;
        }
        if self.policy.span_names {
            n += self.field(&mut span.name)?;
        }
        if let (true, Some(st)) = (self.policy.status_messages, span.status.as_mut()) {
            n += self.field(&mut st.message)?;
        }
        Ok(n)
    }

    /// Sets the summary attribute on a record that had redactions.
    fn summarise(&self, attrs: &mut Vec<KeyValue>, n: u32) {
        if let Some(key) = self.policy.summary.as_deref().filter(|_| n > 0) {
            set_attribute(attrs, key, Value::IntValue(i64::from(n)));
        }
    }
}

pub struct Redact {
    policy: HotSwap<RedactPolicy>,
    registry: Arc<Registry>,
}

impl Redact {
    pub fn new(policy: RedactPolicy, registry: &Arc<Registry>) -> Self {
        Redact {
            policy: HotSwap::new(policy),
            registry: registry.clone(),
        }
    }

    /// The policy of the set `batch` runs under, or this stage's own outside such a chain.
    fn current<S: crate::Signal>(&self, batch: &crate::Batch<S>) -> std::sync::Arc<RedactPolicy> {
        batch
            .policies()
            .map_or_else(|| self.policy.load_full(), |set| set.redact.clone())
    }

    pub fn policy(&self) -> &HotSwap<RedactPolicy> {
        &self.policy
    }

    fn report(&self, pass: Pass<'_>, signal: &str) {
        for (i, (name, action)) in pass.policy.detectors.iter().enumerate() {
            if pass.counts[i] > 0 {
                self.registry
                    .counter(
                        "weir_redactions_total",
                        "Values redacted, by signal, detector and action.",
                        &[
                            ("signal", signal),
                            ("detector", name),
                            ("action", action_name(*action)),
                        ],
                    )
                    .add(pass.counts[i]);
            }
            if pass.dropped[i] > 0 {
                self.registry
                    .counter(
                        "weir_redaction_dropped_items_total",
                        "Spans and log records dropped by a drop_record redaction rule, by detector.",
                        &[("signal", signal), ("detector", name)],
                    )
                    .add(pass.dropped[i]);
            }
        }
    }
}

fn action_name(a: Action) -> &'static str {
    match a {
        Action::Mask => "mask",
        Action::Hash => "hash",
        Action::Drop => "drop",
        Action::DropRecord => "drop_record",
    }
}

/// The resource → scope → record shape both signals share, so one walk serves both.
trait Shape: crate::signal::Signal {
    type Scope;
    type Record;
    fn scopes(r: &mut Self::Resource) -> (Option<&mut Resource>, &mut Vec<Self::Scope>);
    fn records(s: &mut Self::Scope) -> (Option<&mut InstrumentationScope>, &mut Vec<Self::Record>);
    fn scope_items(s: &Self::Scope) -> usize;
    /// Redacts a record's own fields: the redaction count, or the detector that drops it.
    fn redact(pass: &mut Pass<'_>, r: &mut Self::Record) -> Result<u32, usize>;
    fn attributes(r: &mut Self::Record) -> &mut Vec<KeyValue>;
}

impl Shape for Traces {
    type Scope = ScopeSpans;
    type Record = Span;
    fn scopes(r: &mut ResourceSpans) -> (Option<&mut Resource>, &mut Vec<ScopeSpans>) {
        (r.resource.as_mut(), &mut r.scope_spans)
    }
    fn records(s: &mut ScopeSpans) -> (Option<&mut InstrumentationScope>, &mut Vec<Span>) {
        (s.scope.as_mut(), &mut s.spans)
    }
    fn scope_items(s: &ScopeSpans) -> usize {
        s.spans.len()
    }
    fn redact(pass: &mut Pass<'_>, span: &mut Span) -> Result<u32, usize> {
        pass.span(span)
    }
    fn attributes(span: &mut Span) -> &mut Vec<KeyValue> {
        &mut span.attributes
    }
}

impl Shape for Logs {
    type Scope = ScopeLogs;
    type Record = LogRecord;
    fn scopes(r: &mut ResourceLogs) -> (Option<&mut Resource>, &mut Vec<ScopeLogs>) {
        (r.resource.as_mut(), &mut r.scope_logs)
    }
    fn records(s: &mut ScopeLogs) -> (Option<&mut InstrumentationScope>, &mut Vec<LogRecord>) {
        (s.scope.as_mut(), &mut s.log_records)
    }
    fn scope_items(s: &ScopeLogs) -> usize {
        s.log_records.len()
    }
    fn redact(pass: &mut Pass<'_>, r: &mut LogRecord) -> Result<u32, usize> {
        let n = pass.attributes(&mut r.attributes, true)?;
        let body = match r.body.as_mut().map(|b| pass.value(b)) {
            None => 0,
            Some(Fate::Kept(k)) => k,
            Some(Fate::Remove) => {
                r.body = None;
                1
            }
            Some(Fate::DropRecord(d)) => return Err(d),
        };
        Ok(n + body)
    }
    fn attributes(r: &mut LogRecord) -> &mut Vec<KeyValue> {
        &mut r.attributes
    }
}

impl Shape for Metrics {
    type Scope = ScopeMetrics;
    type Record = Metric;
    fn scopes(r: &mut ResourceMetrics) -> (Option<&mut Resource>, &mut Vec<ScopeMetrics>) {
        (r.resource.as_mut(), &mut r.scope_metrics)
    }
    fn records(s: &mut ScopeMetrics) -> (Option<&mut InstrumentationScope>, &mut Vec<Metric>) {
        (s.scope.as_mut(), &mut s.metrics)
    }
    fn scope_items(s: &ScopeMetrics) -> usize {
        s.metrics.iter().map(crate::signal::data_points).sum()
    }
    /// Data points are the items: each is redacted (with its exemplars) and dropped on its own, so a
    /// metric is never dropped whole here.
    fn redact(pass: &mut Pass<'_>, m: &mut Metric) -> Result<u32, usize> {
        let mut point = |attrs: &mut Vec<KeyValue>, exemplars: &mut Vec<Exemplar>| {
            let mut verdict = pass.attributes(attrs, true);
            for e in exemplars {
                verdict = verdict
                    .and_then(|n| Ok(n + pass.attributes(&mut e.filtered_attributes, true)?));
            }
            match verdict {
                Ok(_) => true,
                Err(d) => {
                    pass.dropped[d] += 1;
                    false
                }
            }
        };
        match &mut m.data {
            Some(Data::Gauge(g)) => g
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Sum(x)) => x
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Histogram(h)) => h
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::ExponentialHistogram(h)) => h
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut p.exemplars)),
            Some(Data::Summary(x)) => x
                .data_points
                .retain_mut(|p| point(&mut p.attributes, &mut Vec::new())),
            None => {}
        }
        Ok(0)
    }
    fn attributes(m: &mut Metric) -> &mut Vec<KeyValue> {
        &mut m.metadata
    }
}

fn explain_redaction(
    pass: &Pass<'_>,
    attrs: &[KeyValue],
    before: &[u64],
    dropped_by: Option<usize>,
) {
    crate::tap::explain(attrs, || {
        let detectors = &pass.policy.detectors;
        if let Some(d) = dropped_by {
            return format!("redaction detector {} (drop_record)", detectors[d].0);
        }
        let fired: Vec<String> = pass
            .counts
            .iter()
            .zip(before)
            .zip(detectors)
            .filter(|((now, was), _)| now > was)
            .map(|((now, was), (name, action))| {
                format!("{name} ({}) x{}", action_name(*action), now - was)
            })
            .collect();
        format!("redaction detectors {}", fired.join(", "))
    });
}

/// Redacts a resource's or scope's attributes; false on a drop_record verdict, which drops every item
/// under it, counted against that detector.
fn container(pass: &mut Pass<'_>, resource: Option<&mut Resource>, items: usize) -> bool {
    resource.is_none_or(|r| scoped(pass, &mut r.attributes, items))
}

fn scoped(pass: &mut Pass<'_>, attrs: &mut Vec<KeyValue>, items: usize) -> bool {
    match pass.attributes(attrs, true) {
        Ok(_) => true,
        Err(d) => {
            pass.dropped[d] += items as u64;
            false
        }
    }
}

fn walk<S: Shape>(pass: &mut Pass<'_>, batch: &mut Batch<S>) {
    batch.resources.retain_mut(|rs| {
        let (resource, scopes) = S::scopes(rs);
        let items = scopes.iter().map(S::scope_items).sum();
        if !container(pass, resource, items) {
            return false;
        }
        scopes.retain_mut(|ss| {
            let items = S::scope_items(ss);
            let (scope, records) = S::records(ss);
            if let Some(scope) = scope {
                if !scoped(pass, &mut scope.attributes, items) {
                    return false;
                }
            }
            records.retain_mut(|r| {
                // Only for an item a tap follows: which detectors fired on it.
                let before = crate::tap::following().then(|| pass.counts.clone());
                let verdict = S::redact(pass, r);
                if let Some(before) = before {
                    explain_redaction(pass, S::attributes(r), &before, verdict.err());
                }
                match verdict {
                    Ok(n) => {
                        pass.summarise(S::attributes(r), n);
                        true
                    }
                    Err(d) => {
                        pass.dropped[d] += 1;
                        false
                    }
                }
            });
            true
        });
        true
    });
}

macro_rules! redact_stage {
    ($($signal:ty => $label:literal),*) => {$(
        impl Stage<$signal> for Redact {
            fn name(&self) -> &'static str {
                "redact"
            }

            fn apply(&self, batch: &mut Batch<$signal>) {
                let policy = self.current(batch);
                if !policy.enabled {
                    return;
                }
                let mut pass = Pass::new(&policy);
                walk(&mut pass, batch);
                self.report(pass, $label);
            }
        }
    )*};
}
redact_stage!(Traces => "traces", Logs => "logs", Metrics => "metrics");
