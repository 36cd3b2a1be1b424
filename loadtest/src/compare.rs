//! `weir-loadtest compare`: one closed-loop workload against several collectors in turn, alternating
//! for `--rounds` rounds so that a noisy machine treats every target alike, and one side-by-side
//! table and chart of the medians: throughput, items per CPU-second of the target, RSS, p50/p99 —
//! the capacity-planning report a team would publish.

use crate::report::RunReport;
use crate::{Mode, Options};
use serde::Serialize;
use std::fmt::Write as _;

/// The command line of `compare`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "weir-loadtest compare",
    about = "One workload against several OTLP endpoints in turn; a side-by-side table and chart."
)]
pub struct CompareOptions {
    /// `name=ENDPOINT[,pid=PID][,metrics=URL]`, repeatable; the pid gives CPU and RSS.
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// Rounds; each runs every target once, in turn. Medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds of rest between runs, so one target's backlog does not slow the next.
    #[arg(long, default_value_t = 2.0)]
    pub rest: f64,
    /// Everything else as for a closed-loop run (`--duration`, `--connections`, `--in-flight`,
    /// the workload, `--out`); `--endpoint`, `--pid` and `--metrics-url` come from each target.
    #[command(flatten)]
    pub run: Options,
}

/// One target of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub name: String,
    pub endpoint: String,
    pub pid: Option<u32>,
    pub metrics_url: Option<String>,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected name=ENDPOINT[,pid=PID][,metrics=URL]"))?;
        let mut parts = rest.split(',');
        let endpoint = parts.next().unwrap_or_default().to_string();
        if name.is_empty() || endpoint.is_empty() {
            return Err(format!("{s:?}: a target needs a name and an endpoint"));
        }
        let mut t = Target {
            name: name.into(),
            endpoint,
            pid: None,
            metrics_url: None,
        };
        for p in parts {
            match p.split_once('=') {
                Some(("pid", v)) => {
                    t.pid = Some(v.parse().map_err(|_| format!("{s:?}: pid {v:?}"))?)
                }
                Some(("metrics", v)) => t.metrics_url = Some(v.into()),
                _ => return Err(format!("{s:?}: unknown part {p:?} (pid=, metrics=)")),
            }
        }
        Ok(t)
    }
}

/// The medians of one target's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub target: Target,
    pub items_per_second: f64,
    /// Items accepted per second of the target's CPU time (needs its pid).
    pub items_per_cpu_second: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub rss_mb: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Requests refused or failed over all rounds: a comparison only means something at zero.
    pub refused_or_failed_items: u64,
    pub rounds: Vec<RunReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub workload: crate::workload::Workload,
    pub connections: usize,
    pub in_flight: usize,
    pub seconds_per_run: f64,
    pub request_bytes: f64,
    pub rows: Vec<Row>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Runs the comparison; writes compare.json and compare.svg under `--out` when set.
pub async fn run(o: &CompareOptions) -> anyhow::Result<Comparison> {
    let targets: Vec<Target> = o
        .targets
        .iter()
        .map(|t| t.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    let mut reports: Vec<Vec<RunReport>> = vec![Vec::new(); targets.len()];
    for round in 0..o.rounds.max(1) {
        for (i, t) in targets.iter().enumerate() {
            let mut run = o.run.clone();
            run.mode = Mode::Closed;
            run.out = None;
            run.target.endpoint = t.endpoint.clone();
            run.watch.pid = t.pid;
            run.watch.metrics_url = t.metrics_url.clone();
            if !o.run.quiet {
                eprintln!("[compare] round {} of {}: {}", round + 1, o.rounds, t.name);
            }
            reports[i].push(crate::run(&run).await?);
            tokio::time::sleep(std::time::Duration::from_secs_f64(o.rest)).await;
        }
    }
    let rows: Vec<Row> = targets
        .into_iter()
        .zip(reports)
        .map(|(target, rounds)| row(target, rounds))
        .collect();
    let comparison = Comparison {
        workload: o.run.workload.clone(),
        connections: o.run.connections,
        in_flight: o.run.in_flight,
        seconds_per_run: o.run.duration,
        request_bytes: rows
            .first()
            .and_then(|r| r.rounds.first())
            .map_or(0.0, |r| r.request_bytes),
        rows,
    };
    if let Some(dir) = &o.run.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("compare.json"),
            serde_json::to_string_pretty(&comparison)?,
        )?;
        std::fs::write(dir.join("compare.svg"), comparison.svg())?;
    }
    Ok(comparison)
}

fn row(target: Target, rounds: Vec<RunReport>) -> Row {
    let steps: Vec<_> = rounds.iter().flat_map(|r| r.steps.first()).collect();
    let of = |f: &dyn Fn(&crate::engine::StepReport) -> Option<f64>| {
        median(steps.iter().filter_map(|s| f(s)).collect())
    };
    let cpu = |s: &crate::engine::StepReport| s.target.as_ref()?.cpu_percent;
    Row {
        items_per_second: of(&|s| Some(s.achieved_rate)).unwrap_or(0.0),
        items_per_cpu_second: of(&|s| {
            let c = cpu(s)?;
            (c > 0.0).then(|| s.achieved_rate / (c / 100.0))
        }),
        cpu_percent: of(&cpu),
        rss_mb: of(&|s| s.target.as_ref()?.rss_mb),
        p50_ms: of(&|s| Some(s.latency_ms.p50)).unwrap_or(0.0),
        p99_ms: of(&|s| Some(s.latency_ms.p99)).unwrap_or(0.0),
        refused_or_failed_items: steps
            .iter()
            .map(|s| s.refused_items + s.failed_items + s.rejected_items)
            .sum(),
        target,
        rounds,
    }
}

impl Comparison {
    /// The table, with each target's throughput and efficiency as a ratio to the first target's.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "weir-loadtest compare: {:?} ({:?} profile) × {} items/request ({:.0} B), {} connections × {} in flight, {} s per run, medians of {} rounds",
            self.workload.signal,
            self.workload.profile,
            self.workload.batch,
            self.request_bytes,
            self.connections,
            self.in_flight,
            self.seconds_per_run,
            self.rows.first().map_or(0, |r| r.rounds.len()),
        );
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>7} {:>14} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "target",
            "items/s",
            "ratio",
            "items/CPU-s",
            "ratio",
            "cpu %",
            "rss MB",
            "p50 ms",
            "p99 ms",
            "refused"
        );
        let base = self.rows.first();
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
        for r in &self.rows {
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            let _ = writeln!(
                s,
                "{:<16} {:>12.0} {:>7} {:>14} {:>7} {:>8} {:>8} {:>8.2} {:>8.2} {:>9}",
                r.target.name,
                r.items_per_second,
                opt(
                    ratio(Some(r.items_per_second), base.map(|b| b.items_per_second)),
                    2
                ),
                opt(r.items_per_cpu_second, 0),
                opt(
                    ratio(
                        r.items_per_cpu_second,
                        base.and_then(|b| b.items_per_cpu_second)
                    ),
                    2
                ),
                opt(r.cpu_percent, 0),
                opt(r.rss_mb, 0),
                r.p50_ms,
                r.p99_ms,
                r.refused_or_failed_items,
            );
        }
        s
    }

    /// Four bar groups (items/s, items per CPU-second, RSS, p99), one bar per target.
    pub fn svg(&self) -> String {
        const W: f64 = 900.0;
        const PANEL: f64 = 200.0;
        const COLOURS: &[&str] = &["#2f6fb0", "#d9822b", "#3a9c5a", "#a33c8f", "#777777"];
        let panels: [Panel; 4] = [
            ("accepted items/s", |r| r.items_per_second),
            ("items per CPU-second", |r| {
                r.items_per_cpu_second.unwrap_or(0.0)
            }),
            ("RSS MB", |r| r.rss_mb.unwrap_or(0.0)),
            ("p99 ms", |r| r.p99_ms),
        ];
        let height = 60.0 + panels.len() as f64 * (PANEL + 40.0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="24" font-size="15">weir-loadtest compare: {:?} × {}, {} connections × {} in flight</text>"#,
            self.workload.signal, self.workload.batch, self.connections, self.in_flight
        );
        for (p, (title, value)) in panels.iter().enumerate() {
            let top = 50.0 + p as f64 * (PANEL + 40.0);
            let max = self.rows.iter().map(value).fold(0.0, f64::max);
            let _ = writeln!(
                s,
                r#"<text x="10" y="{}" font-weight="bold">{title}</text>"#,
                top + 14.0
            );
            let bar = (W - 220.0) / self.rows.len().max(1) as f64;
            for (i, r) in self.rows.iter().enumerate() {
                let v = value(r);
                let h = if max > 0.0 {
                    v / max * (PANEL - 40.0)
                } else {
                    0.0
                };
                let x = 200.0 + i as f64 * bar;
                let y = top + PANEL - h;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
                    bar * 0.7,
                    COLOURS[i % COLOURS.len()]
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{x:.1}" y="{:.1}">{v:.0}</text><text x="{x:.1}" y="{:.1}">{}</text>"#,
                    y - 4.0,
                    top + PANEL + 16.0,
                    xml(&r.target.name)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}

/// A chart panel: its title and what it plots per target.
type Panel = (&'static str, fn(&Row) -> f64);

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_optional_pid_and_metrics() {
        let t: Target = "weir=http://127.0.0.1:4317,pid=42,metrics=http://127.0.0.1:8888/metrics"
            .parse()
            .unwrap();
        assert_eq!(
            t,
            Target {
                name: "weir".into(),
                endpoint: "http://127.0.0.1:4317".into(),
                pid: Some(42),
                metrics_url: Some("http://127.0.0.1:8888/metrics".into()),
            }
        );
        assert!("http://x".parse::<Target>().is_err());
        assert!("a=http://x,pid=x".parse::<Target>().is_err());
        assert!("a=http://x,colour=red".parse::<Target>().is_err());
    }

    #[test]
    fn medians_ignore_missing_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
