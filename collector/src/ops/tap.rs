//! `weir tap`: follows items through a running Weir from its admin endpoint and prints each line
//! of their way (received, what each stage did, handed to which exporter), as JSON lines or as a
//! compact human view.

use super::client::Admin;
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Write};

#[derive(clap::Args, Debug)]
pub struct TapArgs {
    /// Admin endpoint of the Weir to tap.
    #[arg(long, env = "WEIR_ADMIN_URL", default_value = "http://127.0.0.1:8888")]
    pub admin: String,
    /// Admin token (admin.token of that Weir), when it has one.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// traces, logs or metrics.
    #[arg(long)]
    pub signal: Option<String>,
    /// Only items whose resource has this service.name.
    #[arg(long)]
    pub service: Option<String>,
    /// Only items of this trace (32 hex digits).
    #[arg(long)]
    pub trace_id: Option<String>,
    /// Only items with this attribute (item or resource), as key=value.
    #[arg(long)]
    pub attribute: Option<String>,
    /// Points to show: receive, a stage (normalize, sample, redact), export; all when absent.
    #[arg(long = "point", value_delimiter = ',')]
    pub points: Vec<String>,
    /// Items followed per second at most (1–1000).
    #[arg(long, default_value_t = 10)]
    pub rate: u64,
    /// Print this many lines, then stop.
    #[arg(long)]
    pub limit: Option<usize>,
    /// json: one OTLP/JSON line per event; human: one short line per event.
    #[arg(long, value_enum, default_value_t = TapFormat::Human)]
    pub format: TapFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapFormat {
    Json,
    Human,
}

pub fn run(args: &TapArgs) -> Result<(), String> {
    let admin = Admin::new(&args.admin, args.token.clone())?;
    let mut query = vec![format!("rate={}", args.rate)];
    let mut add = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            query.push(format!("{key}={}", escape(v)));
        }
    };
    add("signal", &args.signal);
    add("service", &args.service);
    add("trace_id", &args.trace_id);
    add("attribute", &args.attribute);
    if !args.points.is_empty() {
        query.push(format!("point={}", escape(&args.points.join(","))));
    }
    let mut response = admin.get(&format!("/admin/tap?{}", query.join("&")), None)?;
    if response.status != 200 {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut response.body, &mut text);
        return Err(format!(
            "tap refused ({}): {}",
            response.status,
            text.trim()
        ));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut printed = 0;
    for line in BufReader::new(response.body).lines() {
        let line = line.map_err(|e| format!("tap stream ended: {e}"))?;
        let Ok(event) = serde_json::from_str::<Json>(&line) else {
            continue;
        };
        if event.get("heartbeat").is_some() {
            continue;
        }
        let text = match args.format {
            TapFormat::Json => line,
            TapFormat::Human => human(&event),
        };
        // A closed pipe (`weir tap | head`) ends the tap.
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
        if event.get("tap").is_none() {
            printed += 1;
        }
        if args.limit.is_some_and(|l| printed >= l) {
            return Ok(());
        }
    }
    Err("the tap stream closed (weir stopped?)".into())
}

/// One event as a short line: `logs checkout  sample    dropped   #31  log rule debug  "ERROR …"`.
pub fn human(e: &Json) -> String {
    let s = |k: &str| e.get(k).and_then(Json::as_str).unwrap_or("");
    if e.get("tap").is_some() {
        return format!(
            "tap attached ({} items/s at most); Ctrl-C to stop",
            e["rate"]
        );
    }
    let point = match s("exporter") {
        "" => s("point").to_string(),
        x => format!("export:{x}"),
    };
    let mut line = format!(
        "{:<7} {:<16} {:<18} {:<9}",
        s("signal"),
        clip(s("service"), 16),
        point,
        s("fate")
    );
    if let Some(id) = e.get("tap_id") {
        line.push_str(&format!(" #{id}"));
    }
    if let Some(c) = e.get("changed").and_then(Json::as_array) {
        let names: Vec<&str> = c.iter().filter_map(Json::as_str).collect();
        line.push_str(&format!(" [{}]", names.join(", ")));
    }
    if !s("reason").is_empty() {
        line.push_str(&format!(" ({})", s("reason")));
    }
    if let Some(lost) = e.get("lost_before") {
        line.push_str(&format!(" ({lost} lines lost: reader too slow)"));
    }
    if let Some(summary) = item_summary(e) {
        line.push_str(&format!("  {summary}"));
    }
    line
}

fn item_summary(e: &Json) -> Option<String> {
    if let Some(r) = e.get("log_record") {
        let body = r["body"]["stringValue"].as_str().unwrap_or("");
        let sev = match r["severityText"].as_str().unwrap_or("") {
            "" => format!("sev={}", r["severityNumber"].as_i64().unwrap_or(0)),
            text => text.to_string(),
        };
        return Some(format!("{sev} {:?}", clip(body, 60)));
    }
    if let Some(span) = e.get("span") {
        return Some(format!(
            "span {:?} trace {}",
            span["name"].as_str().unwrap_or(""),
            span["traceId"].as_str().unwrap_or("")
        ));
    }
    let m = e.get("data_point")?;
    Some(format!("metric {:?}", m["name"].as_str().unwrap_or("")))
}

fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Percent-encodes a query value.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_human_view_names_point_fate_reason_and_the_item() {
        let e: Json = serde_json::json!({
            "point": "sample", "signal": "logs", "service": "checkout", "fate": "dropped",
            "tap_id": 7, "reason": "log rule debug",
            "log_record": {"severityText": "DEBUG", "body": {"stringValue": "cache miss"}}
        });
        let line = human(&e);
        for part in [
            "logs",
            "checkout",
            "sample",
            "dropped",
            "#7",
            "(log rule debug)",
            "DEBUG \"cache miss\"",
        ] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
        let e = serde_json::json!({"point": "export", "exporter": "loki", "signal": "logs", "fate": "exporting"});
        assert!(human(&e).contains("export:loki"));
        assert_eq!(escape("a=b c/d"), "a%3Db%20c%2Fd");
    }
}
