//! The attribute conditions: `string_attribute` (values or regexes), `boolean_attribute` and
//! `numeric_attribute`, inverted or not, with what Go's regexes read differently from Rust's.

use super::conditions::Cond;
use super::Place;
use crate::migrate::report::{text, Obj};
use crate::migrate::yaml::{Map, Node};
use crate::migrate::{units, Ctx};

const STRING_NOTE: &str = ": span or resource attributes, as in the Collector (Weir also compares int, double and bool values, by their text, where the Collector reads string values only)";

const INVERTED_NOTE: &str = "; invert_match → invert: true, keeping every trace in which no span or resource carries a matching value, in its place among the keep policies: the Collector's plain inverted match since processor.tailsamplingprocessor.disableinvertdecisions (default-on around v0.144, and the only behaviour since the gate was removed, #48976). Collector releases before that gate dropped a trace carrying the value whatever other policies said: for that behaviour, write drop: true on the plain match instead";

pub(super) fn attribute(cx: &mut Ctx, c: &mut Obj, ty: &str, place: Place) -> Result<Cond, String> {
    let key = c.str("key").filter(|k| !k.is_empty()).ok_or("no key")?;
    let invert = c.bool("invert_match") == Some(true);
    let mut m = Map::default();
    m.set("key", Node::str(&key));
    let (weir_key, note) = match ty {
        "numeric_attribute" => {
            if invert {
                return Err("Weir's numeric_attribute has no inverted form".into());
            }
            let min = bound(c, "min_value")?;
            let max = bound(c, "max_value")?;
            if let (Some((_, Some(lo))), Some((_, Some(hi)))) = (&min, &max) {
                if lo > hi {
                    return Err("min_value exceeds max_value (the Collector refuses this)".into());
                }
            }
            let mut note = String::from(": the bounds inclusive, on span or resource attributes, as in the Collector; Weir also matches double values, where the Collector reads int values only (a double counting as 0)");
            match (&min, &max) {
                (None, None) => {
                    return Err(
                        "neither min_value nor max_value (the Collector refuses this)".into(),
                    )
                }
                (None, Some(_)) | (Some(_), None) => {
                    let open = if min.is_none() {
                        "min_value"
                    } else {
                        "max_value"
                    };
                    note.push_str(&format!("; the absent {open} leaves that side open, as in the Collector since July 2025 (#41567; before, an absent bound was read as 0)"));
                }
                _ => {}
            }
            for (k, b) in [("min", min), ("max", max)] {
                if let Some((n, _)) = b {
                    m.set(k, n);
                }
            }
            ("numeric_attribute", note)
        }
        "boolean_attribute" => {
            m.set("values", Node::strs(&[c.str("value").ok_or("no value")?]));
            ("attribute", String::new())
        }
        _ => {
            // The Collector ignores empty values.
            let values: Vec<String> = c
                .strs("values")
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(
                    "no values, so the Collector's policy matches no trace (inverted, every trace)"
                        .into(),
                );
            }
            if c.get("cache_max_size").is_some() {
                cx.report.not_needed(
                    &c.at("cache_max_size"),
                    "Weir compiles the regex once and matches values directly",
                );
            }
            if c.bool("enabled_regex_matching") == Some(true) {
                let re = regex_of(&values)?;
                let classes = unicode_classes(&re);
                let note = format!("`{re}`: the Collector's regexes are unanchored (Go's MatchString finds one anywhere in the value), as Weir's regex is; several become one alternation, each in a group of its own so its anchors stay its own");
                let weir = "pipeline.sample.tail.policies[].attribute.regex";
                if classes.is_empty() {
                    cx.report.translated(
                        &c.at("enabled_regex_matching"),
                        weir,
                        format!("{note}; Go's RE2 syntax and Rust's regex read these the same"),
                    );
                } else {
                    cx.report.approximate(&c.at("enabled_regex_matching"), Some(weir), format!("{note}; but {} are ASCII-only in Go's regexp and Unicode-aware in Rust's, so non-ASCII digits, letters or spaces match too (write [0-9], [0-9A-Za-z_], (?-u:\\b) for Go's meaning)", classes.join(", ")));
                }
                m.set("regex", Node::str(&re));
            } else {
                m.set("values", Node::strs(&values));
            }
            ("attribute", STRING_NOTE.to_string())
        }
    };
    if invert {
        m.set("invert", Node::bool(true));
    }
    let mut cond = Cond::new(weir_key, Node::Map(m)).note(note);
    if invert && place != Place::Top {
        cond.note.push_str("; invert_match → invert: true, holding when no span or resource carries a matching value, as the Collector's inverted match inside and, drop and composite");
    } else if invert {
        cond.note.push_str(INVERTED_NOTE);
    }
    Ok(cond)
}

/// A numeric bound, as Weir writes it and as a number when it is one (not a variable).
fn bound(c: &mut Obj, key: &str) -> Result<Option<(Node, Option<f64>)>, String> {
    let Some(v) = c.get(key) else {
        return Ok(None);
    };
    let n = units::number(v).ok_or(format!("{key} is not a number"))?;
    Ok(Some((n, text(v).and_then(|t| t.parse().ok()))))
}

/// The Collector's list of regexes as one Rust regex. Each is unanchored there (Go's `MatchString`
/// finds it anywhere in the value) as in Weir, so they join as alternatives, each in a group of its
/// own so that its `^`/`$` anchor only it.
pub(super) fn regex_of(values: &[String]) -> Result<String, String> {
    for v in values {
        if let Err(e) = regex::Regex::new(v) {
            return Err(format!(
                "`{v}` is not a regular expression Weir reads ({})",
                e.to_string().lines().last().unwrap_or("")
            ));
        }
    }
    Ok(match values {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|v| format!("(?:{v})"))
            .collect::<Vec<_>>()
            .join("|"),
    })
}

/// The Perl classes and word boundaries in a regex: ASCII in Go, Unicode in Rust.
pub(super) fn unicode_classes(re: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut chars = re.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            continue;
        }
        if let Some(n) = chars.next().filter(|n| "dDwWsSbB".contains(*n)) {
            let class = format!("\\{n}");
            if !found.contains(&class) {
                found.push(class);
            }
        }
    }
    found
}
