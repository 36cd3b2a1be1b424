//! The root of the config tree: [`Config`], the sections too small for a file of their own (`reload`,
//! `log`, `memory_limit`, `shutdown_timeout`), and [`Config::validate`], which runs every section's
//! checks. Every struct rejects
//! unknown keys, and every default is a product decision: with no config at all Weir receives on
//! loopback, keeps everything, and bounds its memory.

use crate::admin::AdminConfig;
use crate::check::{invalid, Invalid};
use crate::common::SignalKind;
use crate::durable::DurableConfig;
use crate::exporters::{ExporterConfig, ExporterKind, Overflow};
use crate::pipeline::{tail::TailLogs, PipelineConfig};
use crate::receivers::Receivers;
use crate::units::{ByteSize, Duration};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub receivers: Receivers,
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Named exporters; every signal an exporter supports goes to it unless `signals` narrows it.
    pub exporters: BTreeMap<String, ExporterConfig>,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Durable mode: accepted requests are written to a write-ahead log before clients are told so.
    pub durable: Option<DurableConfig>,
    /// How long a SIGTERM/SIGINT shutdown may take to drain queues and flush exporters.
    #[serde(default = "shutdown_timeout")]
    pub shutdown_timeout: Duration,
    /// The most heap Weir may hold. Past it receivers push back (RESOURCE_EXHAUSTED / 429 with a
    /// retry delay) until exporters drain. Unset: 80 % of the cgroup's memory limit when there is one,
    /// otherwise [`Config::derived_memory_limit`].
    #[serde(default)]
    pub memory_limit: Option<ByteSize>,
}

fn shutdown_timeout() -> Duration {
    Duration::secs(30)
}

impl Config {
    /// The exporters that take `signal`, with their destination: what the collector builds for the
    /// signal's pipeline. An exporter without exactly one destination is not among them; validation
    /// refuses such a config.
    pub fn exporters_for(
        &self,
        signal: SignalKind,
    ) -> impl Iterator<Item = (&str, &ExporterConfig, ExporterKind<'_>)> {
        self.exporters.iter().filter_map(move |(name, e)| {
            let kind = e.kind().filter(|_| e.receives(signal))?;
            Some((name.as_str(), e, kind))
        })
    }

    /// Whether any exporter takes `signal`; a signal none takes gets no pipeline.
    pub fn takes(&self, signal: SignalKind) -> bool {
        self.exporters_for(signal).next().is_some()
    }

    /// What the queues may hold when every one is full, plus the tail buffer, plus room for requests
    /// being read and batches being sent: the memory this config asks for.
    pub fn derived_memory_limit(&self) -> u64 {
        const WORKING_SET: u64 = 64 << 20;
        let queues: u64 = SignalKind::ALL
            .iter()
            .map(|&s| {
                let exporters: Vec<_> = self.exporters_for(s).collect();
                if exporters.is_empty() {
                    return 0;
                }
                self.pipeline.intake_queue.max_bytes.0
                    + exporters
                        .iter()
                        .map(|(_, e, _)| e.queue.max_bytes.0)
                        .sum::<u64>()
            })
            .sum();
        let tail = self
            .pipeline
            .sample
            .tail
            .as_ref()
            .map_or(0, |t| t.max_bytes.0);
        queues + tail + WORKING_SET
    }
}

/// Stage policies reload on SIGHUP, `POST /admin/reload`, and — with `watch` — when the config file
/// changes (polled, so editors that replace the file and Kubernetes ConfigMap symlink swaps are seen).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadConfig {
    #[serde(default = "crate::common::yes")]
    pub watch: bool,
    #[serde(default = "watch_interval")]
    pub interval: Duration,
}

fn watch_interval() -> Duration {
    Duration::secs(2)
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval: watch_interval(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `weir=debug,tonic=warn`; `RUST_LOG` overrides it.
    #[serde(default = "log_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

fn log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: log_level(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Every check, section by section, then those that span sections; the first refusal wins.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        if self.memory_limit.is_some_and(|m| m.0 < 16 << 20) {
            return Err(invalid(
                "memory_limit",
                "must be at least 16MiB (the process itself needs about 10MiB)",
            ));
        }
        crate::receivers::check(&self.receivers)?;
        if self.reload.watch && self.reload.interval.0.is_zero() {
            return Err(invalid("reload.interval", "must be greater than 0"));
        }
        crate::admin::check(&self.admin)?;
        if let Some(d) = &self.durable {
            crate::durable::check(d)?;
        }
        crate::pipeline::check(&self.pipeline)?;
        crate::span_metrics::check(self.pipeline.span_metrics.as_ref(), |s| self.takes(s))?;
        if self.exporters.is_empty() {
            return Err(invalid("exporters", "at least one exporter is required"));
        }
        for (name, e) in &self.exporters {
            crate::exporters::check(&format!("exporters.{name}"), e)?;
            if e.queue.overflow == Overflow::Spill {
                crate::exporters::check_spill(name, e, self.durable.is_some())?;
            }
        }
        let with_trace = self
            .pipeline
            .sample
            .tail
            .as_ref()
            .is_some_and(|t| t.logs == TailLogs::WithTrace);
        if with_trace && !self.takes(SignalKind::Traces) {
            return Err(invalid(
                "pipeline.sample.tail.logs",
                "with_trace holds logs until their trace is decided, so an exporter must take traces",
            ));
        }
        Ok(())
    }
}
