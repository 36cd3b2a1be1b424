//! `weir top`: a live terminal view of a running Weir, from its admin endpoint's `/metrics`: items
//! per second in and out of each receiver, stage and exporter, queue fill, memory against
//! `memory_limit`, drops and failures by reason, the tail buffer and the durable log. Redrawn every
//! interval; rates are the change between two scrapes.

use super::client::Admin;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Admin endpoint of the Weir to watch.
    #[arg(long, env = "WEIR_ADMIN_URL", default_value = "http://127.0.0.1:8888")]
    pub admin: String,
    /// Admin token, when the endpoint needs one.
    #[arg(long, env = "WEIR_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Draw one frame (rates over one interval) and exit: for scripts and bug reports.
    #[arg(long)]
    pub once: bool,
}

/// One scrape: series (name and sorted labels) → value.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    series: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut series = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let Some((head, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, labels(rest.trim_end_matches('}'))),
                None => (head, Vec::new()),
            };
            series.insert((name.to_string(), labels), value);
        }
        Scrape { series }
    }

    /// Series of `name`, summed over the labels not in `by`, keyed by the values of `by`.
    fn sum_by(&self, name: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for ((n, labels), v) in &self.series {
            if n != name {
                continue;
            }
            let key = by
                .iter()
                .map(|b| {
                    labels
                        .iter()
                        .find(|(k, _)| k == b)
                        .map_or(String::new(), |(_, v)| v.clone())
                })
                .collect();
            *out.entry(key).or_insert(0.0) += v;
        }
        out
    }

    fn one(&self, name: &str) -> Option<f64> {
        self.series.get(&(name.to_string(), Vec::new())).copied()
    }
}

fn labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, v)) = rest.split_once("=\"") {
        let Some(end) = v.find('"') else { break };
        out.push((k.trim_start_matches(',').to_string(), v[..end].to_string()));
        rest = &v[end + 1..];
    }
    out.sort();
    out
}

/// Per-second change of a counter between two scrapes, keyed like `sum_by`.
fn rates(
    before: &Scrape,
    now: &Scrape,
    name: &str,
    by: &[&str],
    secs: f64,
) -> BTreeMap<Vec<String>, f64> {
    let old = before.sum_by(name, by);
    now.sum_by(name, by)
        .into_iter()
        .map(|(k, v)| {
            // A series that appeared since the last scrape started from zero.
            let was = old.get(&k).copied().unwrap_or(0.0);
            (k, ((v - was).max(0.0)) / secs.max(1e-3))
        })
        .collect()
}

/// The frame for two scrapes `secs` apart.
pub fn render(url: &str, before: &Scrape, now: &Scrape, secs: f64) -> String {
    let mut f = String::new();
    let _ = writeln!(
        f,
        "weir top  {url}  policy v{}  (rates over {secs:.1}s; Ctrl-C quits)",
        now.one("weir_policy_version").unwrap_or(0.0)
    );
    let limit = now.one("weir_memory_limit_bytes").unwrap_or(0.0);
    let resident = now.one("weir_memory_resident_bytes").unwrap_or(0.0);
    let arena = now.sum_by("weir_memory_arena_bytes", &["state"]);
    let arena = |state: &str| arena.get(&vec![state.to_string()]).copied().unwrap_or(0.0);
    let _ = writeln!(
        f,
        "MEMORY     resident {}  heap {}  reserved {}  limit {}  {}",
        bytes(resident),
        bytes(now.one("weir_memory_heap_bytes").unwrap_or(0.0)),
        bytes(now.one("weir_memory_reserved_bytes").unwrap_or(0.0)),
        bytes(limit),
        bar(resident, limit)
    );
    // Decoded telemetry sits in arena chunks: in use while its batches live, warm once free.
    let _ = writeln!(
        f,
        "           decode arena {} in use, {} free and resident",
        bytes(arena("in_use")),
        bytes(arena("warm"))
    );

    let _ = writeln!(
        f,
        "\nRECEIVERS  {:<24} {:>12} {:>12}",
        "signal/transport", "accepted/s", "refused/s"
    );
    let accepted = rates(
        before,
        now,
        "weir_receiver_accepted_items_total",
        &["signal", "transport"],
        secs,
    );
    let refused = rates(
        before,
        now,
        "weir_receiver_refused_items_total",
        &["signal", "transport"],
        secs,
    );
    for (k, v) in &accepted {
        let r = refused.get(k).copied().unwrap_or(0.0);
        let _ = writeln!(
            f,
            "           {:<24} {:>12} {:>12}",
            k.join("/"),
            count(*v),
            count(r)
        );
    }

    let _ = writeln!(
        f,
        "\nSTAGES     {:<24} {:>12} {:>12} {:>12}",
        "signal", "sampled out/s", "redacted/s", "red. drops/s"
    );
    let sampled = rates(
        before,
        now,
        "weir_sampled_out_items_total",
        &["signal"],
        secs,
    );
    let redacted = rates(before, now, "weir_redactions_total", &["signal"], secs);
    let red_drops = rates(
        before,
        now,
        "weir_redaction_dropped_items_total",
        &["signal"],
        secs,
    );
    for signal in accepted
        .keys()
        .map(|k| k[0].clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let k = vec![signal.clone()];
        let get = |m: &BTreeMap<Vec<String>, f64>| count(m.get(&k).copied().unwrap_or(0.0));
        let _ = writeln!(
            f,
            "           {signal:<24} {:>12} {:>12} {:>12}",
            get(&sampled),
            get(&redacted),
            get(&red_drops)
        );
    }

    let _ = writeln!(
        f,
        "\nEXPORTERS  {:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "exporter/signal", "in/s", "sent/s", "failed/s", "dropped/s", "retries/s", "in flight"
    );
    let by = ["exporter", "signal"];
    let ins = rates(before, now, "weir_exporter_received_items_total", &by, secs);
    let sent = rates(before, now, "weir_exporter_sent_items_total", &by, secs);
    let failed = rates(before, now, "weir_exporter_failed_items_total", &by, secs);
    let dropped = rates(before, now, "weir_exporter_dropped_items_total", &by, secs);
    let retries = rates(before, now, "weir_exporter_retries_total", &by, secs);
    let in_flight = now.sum_by("weir_exporter_in_flight_items", &by);
    for (k, v) in &ins {
        let get = |m: &BTreeMap<Vec<String>, f64>| count(m.get(k).copied().unwrap_or(0.0));
        let _ = writeln!(
            f,
            "           {:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            k.join("/"),
            count(*v),
            get(&sent),
            get(&failed),
            get(&dropped),
            get(&retries),
            get(&in_flight)
        );
    }

    let _ = writeln!(
        f,
        "\nQUEUES     {:<24} {:>22} {:>22} {:>12}",
        "queue/signal", "items", "bytes", "fill"
    );
    let by = ["queue", "signal"];
    let items = now.sum_by("weir_queue_items", &by);
    let cap_items = now.sum_by("weir_queue_capacity_items", &by);
    let qbytes = now.sum_by("weir_queue_bytes", &by);
    let cap_bytes = now.sum_by("weir_queue_capacity_bytes", &by);
    for (k, n) in &items {
        let ci = cap_items.get(k).copied().unwrap_or(0.0);
        let b = qbytes.get(k).copied().unwrap_or(0.0);
        let cb = cap_bytes.get(k).copied().unwrap_or(0.0);
        let fill = (n / ci.max(1.0)).max(b / cb.max(1.0));
        let _ = writeln!(
            f,
            "           {:<24} {:>22} {:>22} {:>11.0}%",
            k.join("/"),
            format!("{}/{}", count(*n), count(ci)),
            format!("{}/{}", bytes(b), bytes(cb)),
            fill * 100.0
        );
    }

    let _ = writeln!(
        f,
        "\nTAIL       traces {}  bytes {}   WAL  bytes {}  undelivered records {}  oldest {:.0}s   SPILL  bytes {}",
        count(now.one("weir_tail_traces").unwrap_or(0.0)),
        bytes(now.one("weir_tail_bytes").unwrap_or(0.0)),
        bytes(total(now, "weir_wal_bytes")),
        count(total(now, "weir_wal_undelivered_records")),
        now.sum_by("weir_wal_oldest_undelivered_age_seconds", &[]).values().fold(0.0, |a: f64, b| a.max(*b)),
        bytes(total(now, "weir_spill_bytes")),
    );

    let _ = writeln!(f, "\nDROPS AND FAILURES BY REASON (since start)");
    let mut any = false;
    for (name, what) in [
        ("weir_receiver_refused_items_total", "refused items"),
        ("weir_receiver_refused_requests_total", "refused requests"),
        ("weir_exporter_dropped_items_total", "dropped"),
        ("weir_exporter_failed_items_total", "failed"),
        ("weir_sampled_out_items_total", "sampled out"),
        ("weir_wal_dropped_items_total", "wal dropped"),
    ] {
        for (k, v) in now.sum_by(name, &["signal", "exporter", "reason", "rule"]) {
            if v > 0.0 {
                any = true;
                let parts: Vec<&str> = k
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !s.is_empty())
                    .collect();
                let _ = writeln!(
                    f,
                    "           {what:<17} {:<40} {:>12}",
                    parts.join(" "),
                    count(v)
                );
            }
        }
    }
    if !any {
        let _ = writeln!(f, "           none");
    }
    f
}

fn total(s: &Scrape, name: &str) -> f64 {
    s.sum_by(name, &[]).values().fold(0.0, |a, b| a + b)
}

fn count(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e4 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn bytes(v: f64) -> String {
    match v {
        v if v >= (1u64 << 30) as f64 => format!("{:.1} GiB", v / (1u64 << 30) as f64),
        v if v >= (1u64 << 20) as f64 => format!("{:.1} MiB", v / (1u64 << 20) as f64),
        v if v >= 1024.0 => format!("{:.1} KiB", v / 1024.0),
        v => format!("{v:.0} B"),
    }
}

fn bar(v: f64, limit: f64) -> String {
    if limit <= 0.0 {
        return String::new();
    }
    let share = (v / limit).clamp(0.0, 1.0);
    let full = (share * 20.0).round() as usize;
    format!(
        "[{}{}] {:.0}%",
        "#".repeat(full),
        "-".repeat(20 - full),
        share * 100.0
    )
}

pub fn run(args: &TopArgs) -> Result<(), String> {
    let admin = Admin::new(&args.admin, args.token.clone())?;
    let interval = Duration::from_secs_f64(args.interval.clamp(0.1, 3600.0));
    let mut before = Scrape::parse(&admin.fetch("/metrics")?);
    let mut at = Instant::now();
    loop {
        std::thread::sleep(interval);
        let now = match admin.fetch("/metrics") {
            Ok(text) => Scrape::parse(&text),
            Err(e) if !args.once => {
                print!("\x1b[H\x1b[2J{e}\nretrying…\n");
                continue;
            }
            Err(e) => return Err(e),
        };
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        let frame = render(&args.admin, &before, &now, secs);
        if args.once {
            print!("{frame}");
            return Ok(());
        }
        // Home and clear, then the frame: the terminal shows one frame, not a scrolling log.
        print!("\x1b[H\x1b[2J{frame}");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_shows_rates_fill_memory_and_reasons() {
        let before = Scrape::parse(
            "weir_receiver_accepted_items_total{signal=\"logs\",transport=\"grpc\"} 1000\n\
             weir_exporter_received_items_total{exporter=\"ch\",signal=\"logs\"} 900\n\
             weir_exporter_sent_items_total{exporter=\"ch\",signal=\"logs\"} 800\n",
        );
        let now = Scrape::parse(
            "# HELP x\nweir_receiver_accepted_items_total{signal=\"logs\",transport=\"grpc\"} 3000\n\
             weir_exporter_received_items_total{exporter=\"ch\",signal=\"logs\"} 2900\n\
             weir_exporter_sent_items_total{exporter=\"ch\",signal=\"logs\"} 1800\n\
             weir_exporter_dropped_items_total{exporter=\"ch\",signal=\"logs\",reason=\"queue_full\"} 7\n\
             weir_queue_items{queue=\"intake\",signal=\"logs\"} 50\n\
             weir_queue_capacity_items{queue=\"intake\",signal=\"logs\"} 100\n\
             weir_memory_limit_bytes 134217728\nweir_memory_resident_bytes 67108864\n\
             weir_memory_arena_bytes{state=\"in_use\"} 3145728\n\
             weir_memory_arena_bytes{state=\"warm\"} 1048576\n",
        );
        let frame = render("http://x", &before, &now, 2.0);
        assert!(frame.contains("logs/grpc"), "{frame}");
        assert!(frame.contains("1000"), "2000 accepted over 2 s: {frame}");
        assert!(frame.contains("ch/logs"));
        assert!(frame.contains("500"), "1000 sent over 2 s: {frame}");
        assert!(frame.contains("50%"), "queue half full: {frame}");
        assert!(frame.contains("[##########----------] 50%"), "{frame}");
        assert!(
            frame.contains("decode arena 3.0 MiB in use, 1.0 MiB free"),
            "{frame}"
        );
        assert!(
            frame.contains("dropped") && frame.contains("logs ch queue_full"),
            "{frame}"
        );
    }
}
