//! Label names and values in the Prometheus grammar Loki parses: names `[a-zA-Z_][a-zA-Z0-9_]*`,
//! values double-quoted with Go escapes, label sets `{a="1", b="2"}` with names sorted.

use std::fmt::Write as _;

/// `service.name` → `service_name`; any character outside `[a-zA-Z0-9_]` becomes `_`, runs of `_`
/// collapse, a leading digit gets `key_` — as Loki's own OTLP ingestion names them.
pub fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push_str("key_");
    }
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && out.ends_with('_') && out.len() > 1 {
            continue;
        }
        out.push(c);
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Appends `value` as a double-quoted Go string literal. Rust's `{:?}` is not usable: it writes
/// `\u{1b}`, which Go rejects.
pub fn quote_into(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{a="1", b="2"}` from (name, value) pairs already sanitised and sorted by name; empty values are
/// left out, as Loki drops them anyway.
pub fn label_set(pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(pairs.len() * 24 + 2);
    out.push('{');
    let mut first = true;
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(name);
        out.push('=');
        quote_into(&mut out, value);
    }
    out.push('}');
    out
}

/// The pairs of a label set written by [`label_set`] (for the JSON body, which wants them as an object).
pub fn parse_rendered(set: &str) -> Vec<(String, String)> {
    let inner = set.trim().trim_start_matches('{').trim_end_matches('}');
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',' | ' ')) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return out;
        }
        chars.next(); // opening quote
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        value.push(u8::from_str_radix(&hex, 16).map_or('?', char::from));
                    }
                    Some(other) => value.push(other),
                    None => {}
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_lokis_otlp_translation() {
        assert_eq!(sanitize("service.name"), "service_name");
        assert_eq!(sanitize("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(sanitize("a..b--c"), "a_b_c");
        assert_eq!(sanitize("1st"), "key_1st");
        assert_eq!(sanitize("__meta"), "__meta");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn values_are_go_quoted() {
        let mut s = String::new();
        quote_into(&mut s, "a\"b\\c\nd\u{1b}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\x1bé\"");
    }

    #[test]
    fn rendered_sets_parse_back() {
        let pairs = vec![
            ("a".to_string(), "x \"y\"\n\u{1b}".to_string()),
            ("b".to_string(), "2".to_string()),
        ];
        assert_eq!(parse_rendered(&label_set(&pairs)), pairs);
    }

    #[test]
    fn label_sets_skip_empty_values() {
        let pairs = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), String::new()),
            ("c".to_string(), "x y".to_string()),
        ];
        assert_eq!(label_set(&pairs), "{a=\"1\", c=\"x y\"}");
    }
}
