//! What became of every Collector key: translated (to which Weir key), approximate (translated, but
//! behaving differently in a way an operator should check), not needed (Weir does it by default), or
//! without equivalent (and what Weir does instead). Also the reader that makes sure no key of a known
//! component goes unreported: keys a translator did not look at are reported as without equivalent.

use serde_yaml_ng::{Mapping, Value};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Unsupported,
    Approximate,
    NotNeeded,
    Translated,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Unsupported => "no equivalent",
            Status::Approximate => "approximate",
            Status::NotNeeded => "not needed",
            Status::Translated => "translated",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub status: Status,
    /// The Collector key path, e.g. `exporters.otlp/gw.tls.insecure`.
    pub path: String,
    /// Where it went in the Weir config, when it went somewhere.
    pub weir: Option<String>,
    pub note: String,
}

impl Entry {
    pub fn line(&self) -> String {
        let mut s = format!("{:<13} {}", self.status.label(), self.path);
        if let Some(w) = &self.weir {
            let _ = write!(s, " → {w}");
        }
        if !self.note.is_empty() {
            let _ = write!(s, ": {}", self.note);
        }
        s
    }
}

#[derive(Debug, Default)]
pub struct MigrationReport {
    pub entries: Vec<Entry>,
}

impl MigrationReport {
    pub fn add(&mut self, status: Status, path: &str, weir: Option<&str>, note: impl Into<String>) {
        self.entries.push(Entry {
            status,
            path: path.to_string(),
            weir: weir.map(str::to_string),
            note: note.into(),
        });
    }
    pub fn translated(&mut self, path: &str, weir: &str, note: impl Into<String>) {
        self.add(Status::Translated, path, Some(weir), note);
    }
    pub fn approximate(&mut self, path: &str, weir: Option<&str>, note: impl Into<String>) {
        self.add(Status::Approximate, path, weir, note);
    }
    pub fn not_needed(&mut self, path: &str, note: impl Into<String>) {
        self.add(Status::NotNeeded, path, None, note);
    }
    pub fn unsupported(&mut self, path: &str, note: impl Into<String>) {
        self.add(Status::Unsupported, path, None, note);
    }

    /// Every key of `obj` that no translator read, as without equivalent.
    pub fn rest(&mut self, obj: &Obj<'_>, instead: &str) {
        for key in obj.unread() {
            self.unsupported(&obj.at(&key), instead);
        }
    }

    pub fn count(&self, status: Status) -> usize {
        self.entries.iter().filter(|e| e.status == status).count()
    }

    /// Sorted by status (what needs attention first), then in the order found.
    pub fn sorted(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.entries.iter().collect();
        v.sort_by_key(|e| e.status);
        v
    }

    pub fn summary(&self) -> String {
        format!(
            "{} translated, {} approximate, {} not needed, {} with no equivalent",
            self.count(Status::Translated),
            self.count(Status::Approximate),
            self.count(Status::NotNeeded),
            self.count(Status::Unsupported)
        )
    }

    /// The report as an operator reads it on stderr: one line per key.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for e in self.sorted() {
            let _ = writeln!(out, "  {}", e.line());
        }
        let _ = writeln!(out, "  summary: {}", self.summary());
        out
    }
}

/// A mapping being read: remembers which keys were looked at so the rest can be reported.
pub struct Obj<'a> {
    pub path: String,
    map: Option<&'a Mapping>,
    read: Vec<String>,
}

impl<'a> Obj<'a> {
    /// `value` may be absent or null (`grpc:` with nothing after it): an empty mapping.
    pub fn new(path: impl Into<String>, value: Option<&'a Value>) -> Obj<'a> {
        Obj {
            path: path.into(),
            map: value.and_then(Value::as_mapping),
            read: Vec::new(),
        }
    }

    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.is_some_and(|m| m.contains_key(key))
    }

    pub fn get(&mut self, key: &str) -> Option<&'a Value> {
        self.read.push(key.to_string());
        self.map?.get(key).filter(|v| !v.is_null())
    }

    /// A scalar as text (numbers and booleans too: `port: 4317` and `port: "4317"` mean the same).
    pub fn str(&mut self, key: &str) -> Option<String> {
        self.get(key).and_then(text)
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn child(&mut self, key: &str) -> Obj<'a> {
        let value = self.get(key);
        Obj::new(self.at(key), value)
    }

    /// A list of scalars (a single scalar counts as a list of one).
    pub fn strs(&mut self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Sequence(items)) => items.iter().filter_map(text).collect(),
            Some(v) => text(v).into_iter().collect(),
            None => Vec::new(),
        }
    }

    pub fn seq(&mut self, key: &str) -> &'a [Value] {
        match self.get(key) {
            Some(Value::Sequence(items)) => items,
            _ => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_none_or(Mapping::is_empty)
    }

    /// Keys present and not read, in file order.
    pub fn unread(&self) -> Vec<String> {
        let Some(m) = self.map else {
            return Vec::new();
        };
        m.keys()
            .filter_map(text)
            .filter(|k| !self.read.contains(k))
            .collect()
    }

    /// Entries in file order, for sections keyed by component id.
    pub fn entries(&self) -> Vec<(String, &'a Value)> {
        self.map
            .map(|m| m.iter().filter_map(|(k, v)| Some((text(k)?, v))).collect())
            .unwrap_or_default()
    }
}

pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_report_lists_unread_keys_as_without_equivalent() {
        let v: Value = serde_yaml_ng::from_str("endpoint: a:1\nfancy: 3\nother: {x: 1}\n").unwrap();
        let mut o = Obj::new("exporters.otlp", Some(&v));
        assert_eq!(o.str("endpoint").as_deref(), Some("a:1"));
        let mut r = MigrationReport::default();
        r.rest(&o, "ignored");
        let lines: Vec<String> = r.entries.iter().map(Entry::line).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("no equivalent") && lines[0].contains("exporters.otlp.fancy"));
        assert!(r
            .text()
            .contains("0 translated, 0 approximate, 0 not needed, 2 with no equivalent"));
    }
}
