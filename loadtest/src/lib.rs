//! `weir-loadtest`: an OTLP load generator and capacity-planning harness that works against any OTLP
//! endpoint (Weir, the OpenTelemetry Collector, Vector, rotel), so numbers can be compared.
//!
//! # Layout
//! - [`workload`]: realistic traces and logs, pre-generated from a seed.
//! - [`transport`]: one request over OTLP/gRPC or OTLP/HTTP, optionally compressed, and its outcome.
//! - [`engine`]: open loop (fixed rate, latency from intended start), closed loop, sweep.
//! - [`observe`]: the target's CPU and RSS from /proc and its exported/dropped counters from /metrics.
//! - [`report`]: summary, JSON and SVG.
//! - [`compare`]: one workload against several endpoints in turn, side by side.

pub mod compare;
pub mod engine;
pub mod observe;
pub mod report;
pub mod transport;
pub mod workload;

use engine::{ProgressLine, Ramp, Slo};
use observe::{Observer, Watch};
use report::RunReport;
use std::sync::Arc;
use std::time::Duration;
use transport::{Connection, Target};
use workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
pub enum Mode {
    /// Each connection sends its next request when the last returns.
    Closed,
    /// A fixed rate, latency measured from each request's intended start.
    Open,
    /// Open-loop steps at rising rates until the target saturates.
    Sweep,
}

/// Every option of a run.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "weir-loadtest",
    about = "OTLP load generator and capacity-planning harness for any OTLP endpoint."
)]
pub struct Options {
    #[arg(long, value_enum, default_value = "closed")]
    pub mode: Mode,
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub workload: Workload,
    #[command(flatten)]
    pub watch: Watch,
    /// Connections (gRPC channels or HTTP clients).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Closed loop: requests outstanding per connection (HTTP/2 multiplexing, as SDKs and
    /// collectors send).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Seconds to run (closed and open loop).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Items per second (open loop).
    #[arg(long, default_value_t = 100_000.0)]
    pub rate: f64,
    /// Most requests in flight at once (open loop and sweep).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Sweep: first rate, items/s.
    #[arg(long, default_value_t = 20_000.0)]
    pub start_rate: f64,
    /// Sweep: each step's rate is the last one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// Sweep: most steps.
    #[arg(long, default_value_t = 12)]
    pub max_steps: usize,
    /// Sweep: seconds per step.
    #[arg(long, default_value_t = 5.0)]
    pub step_duration: f64,
    /// Sweep: seconds of rest between steps.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
    /// Sweep: a step fails when its p99 latency exceeds this (ms).
    #[arg(long, default_value_t = 250.0)]
    pub slo_p99_ms: f64,
    /// Sweep: a step fails when it accepts less than this share of its rate.
    #[arg(long, default_value_t = 0.95)]
    pub min_achieved: f64,
    /// Directory for report.json and report.svg.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs the load and returns the report (and writes its files when `out` is set).
pub async fn run(o: &Options) -> anyhow::Result<RunReport> {
    if o.connections == 0 || o.workload.batch == 0 {
        anyhow::bail!("--connections and --batch must be at least 1");
    }
    let mut clients = Vec::new();
    for _ in 0..o.connections {
        clients.push(Connection::connect(&o.target, o.workload.signal).await?);
    }
    let payloads = Arc::new(clients[0].prepare(o.workload.payloads())?);
    let request_bytes =
        payloads.iter().map(|p| p.body.len()).sum::<usize>() as f64 / payloads.len() as f64;
    let mut observer = Observer::new(
        (o.watch.pid.is_some() || o.watch.metrics_url.is_some()).then(|| o.watch.clone()),
    );
    let idle_rss_mb = observer.rss_mb();
    let progress = ProgressLine {
        label: format!("[{:?}]", o.mode).to_lowercase(),
        every: Duration::from_secs(1),
        quiet: o.quiet,
    };
    let duration = Duration::from_secs_f64(o.duration);
    let steps = match o.mode {
        Mode::Closed => {
            vec![
                engine::closed_loop(
                    &clients,
                    o.in_flight,
                    payloads,
                    duration,
                    &progress,
                    &mut observer,
                )
                .await,
            ]
        }
        Mode::Open => vec![
            engine::open_loop(
                &clients,
                payloads,
                o.rate,
                duration,
                o.max_in_flight,
                &progress,
                &mut observer,
            )
            .await,
        ],
        Mode::Sweep => {
            let ramp = Ramp {
                start: o.start_rate,
                factor: o.factor.max(1.01),
                max_steps: o.max_steps.max(1),
                step: Duration::from_secs_f64(o.step_duration),
                settle: Duration::from_secs_f64(o.settle),
            };
            let slo = Slo {
                p99_ms: o.slo_p99_ms,
                min_achieved: o.min_achieved,
            };
            engine::sweep(
                &clients,
                payloads,
                &ramp,
                &slo,
                o.max_in_flight,
                &progress,
                &mut observer,
            )
            .await
        }
    };
    let report = RunReport {
        mode: match o.mode {
            Mode::Closed => "closed",
            Mode::Open => "open",
            Mode::Sweep => "sweep",
        },
        endpoint: o.target.endpoint.clone(),
        protocol: o.target.protocol,
        compression: o.target.compression,
        workload: o.workload.clone(),
        connections: o.connections,
        in_flight: o.in_flight,
        max_in_flight: o.max_in_flight,
        request_bytes,
        idle_rss_mb,
        highest_sustainable_rate: (o.mode == Mode::Sweep)
            .then(|| {
                steps
                    .iter()
                    .filter(|s| s.passed == Some(true))
                    .filter_map(|s| s.target_rate)
                    .next_back()
            })
            .flatten(),
        saturation: steps
            .iter()
            .find(|s| s.passed == Some(false))
            .and_then(|s| s.verdict.clone()),
        steps,
    };
    if let Some(dir) = &o.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        std::fs::write(dir.join("report.svg"), report.svg())?;
    }
    Ok(report)
}
