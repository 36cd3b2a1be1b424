//! The Collector's values in Weir's units: Go durations (`1m30s`, `1.5s`) to Weir durations, MiB
//! counts to sizes, percentages to probabilities. A value that reads a variable is kept as text where
//! Weir's textual substitution still produces the right thing (`${X}MiB`), and refused where it
//! cannot (a percentage cannot be divided before the variable is known).

use super::env;
use super::report::text;
use super::yaml::Node;
use serde_yaml_ng::Value;

/// A Go duration string as Weir writes durations; references pass through.
pub fn duration(s: &str) -> Result<String, String> {
    if env::has_reference(s) {
        return Ok(s.to_string());
    }
    go_duration(s)
        .map(format_duration)
        .ok_or_else(|| format!("`{s}` is not a duration (such as 200ms, 5s, 1m30s)"))
}

/// The nanoseconds of a Go duration: `300ms`, `1.5h`, `1h2m3s`, `0`.
pub fn go_duration(s: &str) -> Option<u128> {
    let s = s.trim();
    if s == "0" {
        return Some(0);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(total.round() as u128)
}

/// The largest whole unit: `90s`, `5m`, `1500ms`.
pub fn format_duration(ns: u128) -> String {
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if ns == 0 {
        return "0s".into();
    }
    UNITS
        .iter()
        .find(|(u, _)| ns.is_multiple_of(*u))
        .map(|(u, name)| format!("{}{name}", ns / u))
        .unwrap_or_else(|| format!("{ns}ns"))
}

/// A count of MiB (`limit_mib: 512`, or a variable holding one) as a Weir size.
pub fn mib(v: &Value) -> Option<String> {
    let t = text(v)?;
    if env::has_reference(&t) || t.parse::<u64>().is_ok() {
        Some(format!("{t}MiB"))
    } else {
        None
    }
}

/// A number, or a whole reference standing for one, written unquoted so Weir reads a number.
pub fn number(v: &Value) -> Option<Node> {
    match v {
        Value::Number(n) => Some(Node::raw(n.to_string())),
        Value::String(s) if env::whole_reference(s).is_some() => Some(Node::raw(s.clone())),
        Value::String(s) if s.parse::<f64>().is_ok() => Some(Node::raw(s.clone())),
        _ => None,
    }
}

/// A plain float as Weir reads it, without binary noise (`0.333` not `0.33299999999999996`).
pub fn float(x: f64) -> String {
    let s = format!("{x:.9}");
    let s = s.trim_end_matches('0');
    let s = s
        .strip_suffix('.')
        .map_or(s.to_string(), |t| format!("{t}.0"));
    s
}

/// A percentage (`sampling_percentage`) as a probability. A variable cannot be divided before it is
/// known, so its default is used and the note says so.
pub fn percent(v: &Value) -> Result<(f64, Option<String>), String> {
    let t = text(v).ok_or("not a number")?;
    let (value, note) = match env::whole_reference(&t) {
        Some((name, Some(d))) => (d.to_string(), Some(format!("`{name}` held a percentage; Weir wants a probability, so its default {d} % is written as a number: set it here by hand"))),
        Some((name, None)) => return Err(format!("`{name}` holds a percentage and has no default; Weir wants a probability (0–1) written here")),
        None => (t.clone(), None),
    };
    let pct: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a percentage"))?;
    if pct.is_nan() || pct < 0.0 {
        return Err(format!("`{value}` is not a percentage"));
    }
    Ok(((pct / 100.0).min(1.0), note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_units_convert_go_durations() {
        assert_eq!(duration("30s").unwrap(), "30s");
        assert_eq!(duration("1m30s").unwrap(), "90s");
        assert_eq!(duration("1.5s").unwrap(), "1500ms");
        assert_eq!(duration("2h").unwrap(), "2h");
        assert_eq!(duration("120s").unwrap(), "2m");
        assert_eq!(duration("0").unwrap(), "0s");
        assert_eq!(duration("${D:-5s}").unwrap(), "${D:-5s}");
        assert!(duration("soon").is_err());
        assert!(duration("5 parsecs").is_err());
    }

    #[test]
    fn migrate_units_convert_sizes_numbers_and_percentages() {
        assert_eq!(mib(&Value::from(512)).as_deref(), Some("512MiB"));
        assert_eq!(
            mib(&Value::from("${MEM:-400}")).as_deref(),
            Some("${MEM:-400}MiB")
        );
        assert_eq!(mib(&Value::from("lots")), None);
        assert_eq!(number(&Value::from("${N}")), Some(Node::raw("${N}")));
        assert_eq!(float(0.1), "0.1");
        assert_eq!(float(33.3 / 100.0), "0.333");
        assert_eq!(float(1.0), "1.0");
        assert_eq!(percent(&Value::from(15)).unwrap().0, 0.15);
        assert_eq!(percent(&Value::from(250)).unwrap().0, 1.0);
        let (p, note) = percent(&Value::from("${PCT:-25}")).unwrap();
        assert_eq!(p, 0.25);
        assert!(note.unwrap().contains("PCT"));
        assert!(percent(&Value::from("${PCT}")).is_err());
    }
}
