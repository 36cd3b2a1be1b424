//! Loki's acceptance rules for a stream's labels, an entry (age, size, structured metadata) and a
//! tenant id, with the messages Loki answers, and its way of grouping repeated messages.

use crate::labels::Labels;
use crate::{Entry, Limits};

pub(crate) fn check_stream(l: &Limits, labels: &Labels, rendered: &str) -> Result<(), String> {
    if labels.is_empty() {
        return Err("error at least one label pair is required per stream".into());
    }
    let counted = labels.iter().filter(|(k, _)| k != "service_name").count();
    if counted > l.max_label_names {
        return Err(format!(
            "entry for stream '{rendered}' has {counted} label names; limit {}",
            l.max_label_names
        ));
    }
    let mut previous: Option<&str> = None;
    for (name, value) in labels {
        if name.len() > l.max_label_name_len {
            return Err(format!(
                "stream '{rendered}' has label name too long: '{name}'"
            ));
        }
        if value.len() > l.max_label_value_len {
            return Err(format!(
                "stream '{rendered}' has label value too long: '{value}'"
            ));
        }
        if previous == Some(name.as_str()) {
            return Err(format!(
                "stream '{rendered}' has duplicate label name: '{name}'"
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

pub(crate) fn check_entry(l: &Limits, e: &Entry, rendered: &str, now: i128) -> Result<(), String> {
    if e.ts < now - l.reject_old_after.as_nanos() as i128 {
        return Err(format!(
            "entry for stream '{rendered}' has timestamp too old: {}",
            e.ts
        ));
    }
    if e.ts > now + l.creation_grace.as_nanos() as i128 {
        return Err(format!(
            "entry for stream '{rendered}' has timestamp too new: {}",
            e.ts
        ));
    }
    if e.line.len() > l.max_line {
        return Err(format!("max entry size '{}' bytes exceeded for stream '{rendered}' while adding an entry with length '{}' bytes", l.max_line, e.line.len()));
    }
    let sm_bytes: usize = e
        .metadata
        .iter()
        .filter(|(k, _)| k != "detected_level")
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if sm_bytes > l.max_sm_bytes {
        return Err(format!("stream '{rendered}' has structured metadata too large: '{sm_bytes}' bytes, limit: '{}' bytes", l.max_sm_bytes));
    }
    if e.metadata.len() > l.max_sm_entries {
        return Err(format!(
            "stream '{rendered}' has too many structured metadata labels: '{}', limit: '{}'",
            e.metadata.len(),
            l.max_sm_entries
        ));
    }
    Ok(())
}

/// One message seen once: itself; otherwise "<n> errors like: <msg>" clauses.
pub(crate) fn grouped(errors: &[String]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for e in errors {
        match counts.iter_mut().find(|(m, _)| m == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.clone(), 1)),
        }
    }
    if counts.len() == 1 && counts[0].1 == 1 {
        return counts[0].0.clone();
    }
    counts
        .iter()
        .map(|(m, n)| format!("{n} errors like: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn valid_tenant(t: &str) -> Result<(), String> {
    if t.contains('|') {
        return Err("multiple org IDs present".into());
    }
    if t.len() > 150 {
        return Err("tenant ID is too long: max 150 characters".to_string());
    }
    if t == "." || t == ".." {
        return Err("tenant ID is '.' or '..'".into());
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
    {
        return Err(format!(
            "tenant ID '{t}' contains unsupported character '{c}'"
        ));
    }
    Ok(())
}
