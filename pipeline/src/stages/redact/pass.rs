//! One batch's pass: what becomes of each attribute, value and string field under the policy (key
//! rules, the scanner, mask or hash), and the counts per detector it gathers for the stage to report.

use super::memo::{CleanMemo, Lookup};
use super::policy::{action_name, RedactPolicy};
use super::scanner::Found;
use crate::attrs::{scalar_text, set as set_attribute};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use weir_config::redact::Action;

/// What became of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Kept, with this many redactions.
    Kept(u32),
    /// Remove the field (attribute, array element) or clear it (body, message).
    Remove,
    /// Drop the whole record, because of this detector.
    DropRecord(usize),
}

/// One batch's pass: the policy and the counts it gathers.
pub(super) struct Pass<'a> {
    pub(super) policy: &'a RedactPolicy,
    pub(super) counts: Vec<u64>,
    pub(super) dropped: Vec<u64>,
    /// Long attribute values already scanned clean in this pass.
    clean: CleanMemo,
    /// Reused from string to string: what the scanner found, and the rewritten text (swapped with
    /// the string it replaces, whose buffer is reused next time).
    found: Vec<Found>,
    scratch: String,
}

impl<'a> Pass<'a> {
    pub(super) fn new(policy: &'a RedactPolicy) -> Self {
        Pass {
            policy,
            counts: vec![0; policy.detectors.len()],
            dropped: vec![0; policy.detectors.len()],
            clean: CleanMemo::default(),
            found: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Redacts a list of attributes in place: the redaction count, or the detector that drops the
    /// record.
    pub(super) fn attributes(
        &mut self,
        attrs: &mut Vec<KeyValue>,
        top: bool,
    ) -> Result<u32, usize> {
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
            Some(AnyValue {
                value: Some(Value::StringValue(s)),
            }) => self.keyed_text(&kv.key, s),
            Some(v) => self.value(v),
            None => Fate::Kept(0),
        }
    }

    /// An attribute's string value: skipped when it is the value this key last held clean.
    fn keyed_text(&mut self, key: &str, s: &mut String) -> Fate {
        if self.policy.scanner.is_none() {
            return Fate::Kept(0);
        }
        let lookup = self.clean.lookup(key, s);
        if lookup == Lookup::Clean {
            return Fate::Kept(0);
        }
        let fate = self.text(s);
        if let (Fate::Kept(0), Lookup::Scan(slot)) = (fate, lookup) {
            self.clean.remember(slot, key, s);
        }
        fate
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

    pub(super) fn value(&mut self, v: &mut AnyValue) -> Fate {
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
        let mut found = std::mem::take(&mut self.found);
        scanner.scan(s, |t, a, b| self.is_output(t, a, b), &mut found);
        let fate = self.rewrite(s, &found);
        self.found = found;
        fate
    }

    /// Counts what `found` names in `s` and applies the first decisive action: drop the record,
    /// remove the field, or replace every finding in place.
    fn rewrite(&mut self, s: &mut String, found: &[Found]) -> Fate {
        if found.is_empty() {
            return Fate::Kept(0);
        }
        let detectors = &self.policy.detectors;
        for f in found {
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
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let mut last = 0;
        for f in found {
            out.push_str(&s[last..f.start]);
            self.replace(detectors[f.detector].1, &s[f.start..f.end], &mut out);
            last = f.end;
        }
        out.push_str(&s[last..]);
        std::mem::swap(s, &mut out);
        self.scratch = out;
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
    pub(super) fn span(&mut self, span: &mut Span) -> Result<u32, usize> {
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
    pub(super) fn summarise(&self, attrs: &mut Vec<KeyValue>, n: u32) {
        if let Some(key) = self.policy.summary.as_deref().filter(|_| n > 0) {
            set_attribute(attrs, key, Value::IntValue(i64::from(n)));
        }
    }
}

pub(super) fn explain_redaction(
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
pub(super) fn container(
    pass: &mut Pass<'_>,
    resource: Option<&mut Resource>,
    items: usize,
) -> bool {
    resource.is_none_or(|r| scoped(pass, &mut r.attributes, items))
}

pub(super) fn scoped(pass: &mut Pass<'_>, attrs: &mut Vec<KeyValue>, items: usize) -> bool {
    match pass.attributes(attrs, true) {
        Ok(_) => true,
        Err(d) => {
            pass.dropped[d] += items as u64;
            false
        }
    }
}
