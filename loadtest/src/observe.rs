//! Watching the target during a step: CPU and RSS from `/proc/<pid>` when given a pid, and exported
//! and dropped item counts from its Prometheus `/metrics` when given the URL. Metric names are options,
//! so any collector that exports counters can be observed (Weir's names are the defaults).

use serde::Serialize;

#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Watch {
    /// Target process id, to sample its CPU and RSS from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The target's Prometheus endpoint, e.g. http://127.0.0.1:8888/metrics.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Counters that sum to items exported (repeatable).
    #[arg(
        long = "exported-metric",
        default_value = "weir_exporter_sent_items_total"
    )]
    pub exported: Vec<String>,
    /// Counters that sum to items dropped or failed (repeatable).
    #[arg(
        long = "dropped-metric",
        default_values = ["weir_exporter_dropped_items_total", "weir_exporter_failed_items_total"]
    )]
    pub dropped: Vec<String>,
}

/// What the target did during one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Share of one core, averaged over the step (200 = two cores busy).
    pub cpu_percent: Option<f64>,
    pub rss_mb: Option<f64>,
    pub exported_items: Option<f64>,
    pub dropped_items: Option<f64>,
}

pub struct Observer {
    watch: Option<Watch>,
    ticks_per_second: f64,
    before: Snapshot,
}

#[derive(Default, Clone, Copy)]
struct Snapshot {
    cpu_seconds: Option<f64>,
    exported: Option<f64>,
    dropped: Option<f64>,
}

impl Observer {
    pub fn new(watch: Option<Watch>) -> Self {
        Observer {
            watch,
            ticks_per_second: clock_ticks(),
            before: Snapshot::default(),
        }
    }

    pub fn none() -> Self {
        Observer::new(None)
    }

    async fn snapshot(&self) -> Snapshot {
        let Some(w) = &self.watch else {
            return Snapshot::default();
        };
        let cpu_seconds = w.pid.and_then(cpu_ticks).map(|t| t / self.ticks_per_second);
        let (exported, dropped) = match &w.metrics_url {
            Some(url) => match scrape(url).await {
                Some(text) => (Some(sum(&text, &w.exported)), Some(sum(&text, &w.dropped))),
                None => (None, None),
            },
            None => (None, None),
        };
        Snapshot {
            cpu_seconds,
            exported,
            dropped,
        }
    }

    pub async fn begin(&mut self) {
        self.before = self.snapshot().await;
    }

    /// What changed since `begin`; `None` when nothing is watched.
    pub async fn end(&mut self, seconds: f64) -> Option<Sample> {
        let w = self.watch.as_ref()?;
        let after = self.snapshot().await;
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        Some(Sample {
            cpu_percent: delta(after.cpu_seconds, self.before.cpu_seconds)
                .map(|c| 100.0 * c / seconds.max(1e-9)),
            rss_mb: w
                .pid
                .and_then(rss_bytes)
                .map(|b| b as f64 / (1 << 20) as f64),
            exported_items: delta(after.exported, self.before.exported),
            dropped_items: delta(after.dropped, self.before.dropped),
        })
    }

    /// The target's RSS now, for the idle figure before a run.
    pub fn rss_mb(&self) -> Option<f64> {
        let pid = self.watch.as_ref()?.pid?;
        rss_bytes(pid).map(|b| b as f64 / (1 << 20) as f64)
    }
}

/// utime + stime of every thread of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `getconf CLK_TCK` (100 on every Linux we know of, asked rather than assumed).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn scrape(url: &str) -> Option<String> {
    use http_body_util::BodyExt;
    let uri: hyper::Uri = url.parse().ok()?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = tokio::time::timeout(std::time::Duration::from_secs(5), client.get(uri))
        .await
        .ok()?
        .ok()?;
    let body = response.into_body().collect().await.ok()?.to_bytes();
    String::from_utf8(body.to_vec()).ok()
}

/// The sum of every series of the named metrics in Prometheus text.
pub fn sum(text: &str, names: &[String]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            names.iter().any(|n| {
                l.starts_with(n.as_str()) && matches!(l.as_bytes().get(n.len()), Some(b'{' | b' '))
            })
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_series_of_the_named_metrics_only() {
        let text = "# HELP x\nweir_exporter_sent_items_total{exporter=\"a\"} 10\nweir_exporter_sent_items_total{exporter=\"b\"} 5\nweir_exporter_sent_items_totally 99\nother 1\n";
        assert_eq!(sum(text, &["weir_exporter_sent_items_total".into()]), 15.0);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(rss_bytes(pid).unwrap() > 1 << 20);
    }
}
