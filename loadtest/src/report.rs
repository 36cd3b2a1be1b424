//! What a run leaves behind: a human summary on stdout, `report.json`, and `report.svg` — achieved
//! throughput against the asked-for rate with p50/p99 latency, and the target's CPU and RSS, per step.

use crate::engine::StepReport;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub mode: &'static str,
    pub endpoint: String,
    pub protocol: crate::transport::Protocol,
    pub compression: crate::transport::Compression,
    pub workload: crate::workload::Workload,
    pub connections: usize,
    /// Closed loop: requests outstanding per connection.
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// Mean encoded request size.
    pub request_bytes: f64,
    pub idle_rss_mb: Option<f64>,
    pub steps: Vec<StepReport>,
    /// Sweep: the highest rate whose step passed.
    pub highest_sustainable_rate: Option<f64>,
    /// Sweep: why the first failing step failed.
    pub saturation: Option<String>,
}

impl RunReport {
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "weir-loadtest {} → {} ({:?}, {:?}), {:?} × {} items/request ({:.0} B), {} connections × {} in flight",
            self.mode,
            self.endpoint,
            self.protocol,
            self.compression,
            self.workload.signal,
            self.workload.batch,
            self.request_bytes,
            self.connections,
            self.in_flight
        );
        let _ = writeln!(
            s,
            "{:>12} {:>12} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9}  verdict",
            "target/s",
            "accepted/s",
            "refused",
            "failed",
            "p50 ms",
            "p99 ms",
            "cpu %",
            "rss MB",
            "dropped"
        );
        for r in &self.steps {
            let t = r.target.clone().unwrap_or_default();
            let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let _ = writeln!(
                s,
                "{:>12} {:>12.0} {:>10} {:>9} {:>9.2} {:>9.2} {:>8} {:>8} {:>9}  {}",
                opt(r.target_rate),
                r.achieved_rate,
                r.refused_items,
                r.failed_items + r.rejected_items,
                r.latency_ms.p50,
                r.latency_ms.p99,
                opt(t.cpu_percent),
                opt(t.rss_mb),
                opt(t.dropped_items),
                r.verdict.as_deref().unwrap_or("")
            );
        }
        let sent: u64 = self.steps.iter().map(|r| r.sent_items).sum();
        let accepted: u64 = self.steps.iter().map(|r| r.accepted_items).sum();
        let refused: u64 = self.steps.iter().map(|r| r.refused_items).sum();
        let lost: u64 = self
            .steps
            .iter()
            .map(|r| r.failed_items + r.rejected_items)
            .sum();
        let _ = writeln!(
            s,
            "items: sent {sent}, accepted {accepted}, refused {refused}, failed or rejected {lost}"
        );
        if let Some(idle) = self.idle_rss_mb {
            let _ = writeln!(s, "target idle RSS: {idle:.1} MB");
        }
        if self.mode == "sweep" {
            match self.highest_sustainable_rate {
                Some(r) => {
                    let _ = writeln!(s, "highest sustainable rate: {r:.0} items/s");
                }
                None => {
                    let _ = writeln!(s, "no step passed: even the first rate is too much");
                }
            }
            if let Some(why) = &self.saturation {
                let _ = writeln!(s, "saturated: {why}");
            } else {
                let _ = writeln!(
                    s,
                    "not saturated within the steps allowed; raise --max-steps"
                );
            }
        }
        s
    }

    pub fn svg(&self) -> String {
        chart(
            &self.steps,
            &format!("weir-loadtest {} → {}", self.mode, self.endpoint),
        )
    }
}

/// One line of a chart: name, colour, a value per step, the scale's top, and whether it reads against
/// the right-hand axis.
type Series<'a> = (&'a str, &'a str, Vec<Option<f64>>, f64, bool);

/// Two panels over the steps: accepted vs asked rate with p50/p99 latency, then CPU and RSS.
fn chart(steps: &[StepReport], title: &str) -> String {
    const W: f64 = 900.0;
    const PANEL: f64 = 220.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 80.0;
    let n = steps.len().max(1);
    let x = |i: usize| {
        LEFT + (W - LEFT - RIGHT)
            * if n == 1 {
                0.5
            } else {
                i as f64 / (n - 1) as f64
            }
    };
    let max =
        |f: &dyn Fn(&StepReport) -> f64| steps.iter().map(f).fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let rate_max = max(&|r| r.achieved_rate.max(r.target_rate.unwrap_or(0.0)));
    let lat_max = max(&|r| r.latency_ms.p99);
    let cpu_max = max(&|r| r.target.as_ref().and_then(|t| t.cpu_percent).unwrap_or(0.0));
    let rss_max = max(&|r| r.target.as_ref().and_then(|t| t.rss_mb).unwrap_or(0.0));
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="15">{title}</text>
"##,
        h = 2.0 * PANEL + 110.0,
        title = escape(title)
    );
    let mut panel = |top: f64, series: &[Series], left_label: &str, right_label: &str| {
        let bottom = top + PANEL;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{PANEL}" fill="none" stroke="#999"/>
<text x="8" y="{ly}" fill="#333">{left_label}</text><text x="{rx}" y="{ly}" fill="#333">{right_label}</text>"##,
            w = W - LEFT - RIGHT,
            ly = top - 6.0,
            rx = W - RIGHT + 4.0,
        );
        for (k, (name, colour, values, scale, right_axis)) in series.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    Some(format!("{:.1},{:.1}", x(i), bottom - PANEL * (*v)? / scale))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
                points.join(" ")
            );
            for p in &points {
                let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(
                    s,
                    r##"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"##
                );
            }
            let _ = writeln!(
                s,
                r##"<text x="{lx}" y="{ly}" fill="{colour}">{name} (max {scale:.0}{axis})</text>"##,
                lx = LEFT + 10.0 + 190.0 * k as f64,
                ly = top + 16.0,
                scale = scale / 1.1,
                axis = if *right_axis { ", right" } else { "" }
            );
        }
    };
    let rate = |f: &dyn Fn(&StepReport) -> Option<f64>| steps.iter().map(f).collect::<Vec<_>>();
    panel(
        50.0,
        &[
            (
                "accepted/s",
                "#1f77b4",
                rate(&|r| Some(r.achieved_rate)),
                rate_max,
                false,
            ),
            (
                "asked/s",
                "#aaaaaa",
                rate(&|r| r.target_rate),
                rate_max,
                false,
            ),
            (
                "p50 ms",
                "#2ca02c",
                rate(&|r| Some(r.latency_ms.p50)),
                lat_max,
                true,
            ),
            (
                "p99 ms",
                "#d62728",
                rate(&|r| Some(r.latency_ms.p99)),
                lat_max,
                true,
            ),
        ],
        "items/s",
        "ms",
    );
    panel(
        50.0 + PANEL + 40.0,
        &[
            (
                "target CPU %",
                "#9467bd",
                rate(&|r| r.target.as_ref()?.cpu_percent),
                cpu_max,
                false,
            ),
            (
                "target RSS MB",
                "#ff7f0e",
                rate(&|r| r.target.as_ref()?.rss_mb),
                rss_max,
                true,
            ),
        ],
        "CPU %",
        "MB",
    );
    for (i, r) in steps.iter().enumerate() {
        let label = r.target_rate.map_or_else(
            || format!("{:.0}/s", r.achieved_rate),
            |t| format!("{t:.0}/s"),
        );
        let colour = if r.passed == Some(false) {
            "#d62728"
        } else {
            "#333"
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{colour}">{label}</text>"##,
            x(i),
            2.0 * PANEL + 105.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
