//! `exporters.<name>`: one destination per exporter ([`file`], [`clickhouse`], [`loki`], [`otlp`],
//! or a blackhole) plus the delivery settings every destination shares: queue and overflow, batching,
//! retry, in-flight limit, timeout.

pub mod clickhouse;
pub mod file;
pub mod loki;
pub mod otlp;
pub mod transport;

use crate::check::{invalid, positive, Invalid};
use crate::common::{QueueLimits, SignalKind};
use crate::units::{ByteSize, Duration};
use clickhouse::ClickHouseExporter;
use file::FileExporter;
use loki::LokiExporter;
use otlp::OtlpExporter;
use serde::Deserialize;

/// One exporter: exactly one destination kind (`file`, `blackhole`) plus delivery settings shared by all.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterConfig {
    pub file: Option<FileExporter>,
    pub blackhole: Option<BlackholeExporter>,
    pub clickhouse: Option<ClickHouseExporter>,
    pub loki: Option<LokiExporter>,
    pub otlp: Option<OtlpExporter>,
    /// Signals this exporter receives; default: all it supports.
    pub signals: Option<Vec<SignalKind>>,
    #[serde(default)]
    pub queue: ExporterQueue,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Requests sent at once by this exporter, per signal.
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// Limit for one send attempt.
    #[serde(default = "send_timeout")]
    pub timeout: Duration,
    /// Allows credentials (a password, a token, headers) to go in clear over `http://` to a host
    /// beyond loopback; refused otherwise.
    #[serde(default)]
    pub insecure: bool,
}

fn max_in_flight() -> usize {
    4
}

fn send_timeout() -> Duration {
    Duration::secs(30)
}

/// Which destination an exporter writes to, once validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExporterKind<'a> {
    File(&'a FileExporter),
    Blackhole(&'a BlackholeExporter),
    ClickHouse(&'a ClickHouseExporter),
    Loki(&'a LokiExporter),
    Otlp(&'a OtlpExporter),
}

impl ExporterKind<'_> {
    /// The key that selects this destination.
    pub fn name(&self) -> &'static str {
        match self {
            ExporterKind::File(_) => "file",
            ExporterKind::Blackhole(_) => "blackhole",
            ExporterKind::ClickHouse(_) => "clickhouse",
            ExporterKind::Loki(_) => "loki",
            ExporterKind::Otlp(_) => "otlp",
        }
    }

    /// The signals this destination can take: validation refuses `signals` beyond them, and the
    /// collector builds the destination only for them (through [`ExporterConfig::receives`]).
    pub fn signals(&self) -> &'static [SignalKind] {
        match self {
            ExporterKind::Loki(_) => &[SignalKind::Logs],
            _ => &SignalKind::ALL,
        }
    }
}

impl ExporterConfig {
    /// The configured destination; `None` when zero or several are set (validation rejects that).
    pub fn kind(&self) -> Option<ExporterKind<'_>> {
        if self.destinations() != 1 {
            return None;
        }
        if let Some(f) = &self.file {
            Some(ExporterKind::File(f))
        } else if let Some(b) = &self.blackhole {
            Some(ExporterKind::Blackhole(b))
        } else if let Some(c) = &self.clickhouse {
            Some(ExporterKind::ClickHouse(c))
        } else if let Some(l) = &self.loki {
            Some(ExporterKind::Loki(l))
        } else {
            self.otlp.as_ref().map(ExporterKind::Otlp)
        }
    }

    /// How many destinations are set (validation wants exactly one).
    pub fn destinations(&self) -> usize {
        [
            self.file.is_some(),
            self.blackhole.is_some(),
            self.clickhouse.is_some(),
            self.loki.is_some(),
            self.otlp.is_some(),
        ]
        .iter()
        .filter(|d| **d)
        .count()
    }

    /// Batching with the destination's defaults for unset fields: ClickHouse wants few, large inserts
    /// (tens of thousands of rows, about one per second or slower per table); files and blackholes
    /// want low latency.
    pub fn batch(&self) -> Batching {
        let (items, bytes, age) = match self.kind() {
            Some(ExporterKind::ClickHouse(_)) => (50_000, ByteSize::mib(32), Duration::secs(5)),
            // Loki wants requests of about 1 MiB of lines; the exporter splits larger batches.
            Some(ExporterKind::Loki(_)) => (20_000, ByteSize::mib(4), Duration::secs(1)),
            _ => (batch_items(), batch_bytes(), batch_age()),
        };
        Batching {
            max_items: self.batch.max_items.unwrap_or(items),
            max_bytes: self.batch.max_bytes.unwrap_or(bytes),
            max_age: self.batch.max_age.unwrap_or(age),
        }
    }

    /// Signals the destination can take (all when none or several are set, which validation refuses).
    pub fn supports(&self, signal: SignalKind) -> bool {
        self.kind().is_none_or(|k| k.signals().contains(&signal))
    }

    pub fn receives(&self, signal: SignalKind) -> bool {
        self.supports(signal) && self.signals.as_ref().is_none_or(|s| s.contains(&signal))
    }
}

fn batch_items() -> usize {
    8192
}

fn batch_bytes() -> ByteSize {
    ByteSize::mib(8)
}

fn batch_age() -> Duration {
    Duration::millis(200)
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeExporter {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Wait for room: backpressure reaches the stage workers, then the intake queue, then clients.
    Block,
    /// Drop the incoming batch and count it, so a slow exporter never slows the others.
    DropNewest,
    /// Write the batch to this exporter's own log on disk (needs `durable:`) and deliver it from
    /// there once the exporter catches up: a slow exporter never slows the others and loses nothing.
    /// When the log reaches `spill_max_bytes`, wait for room as `block` does.
    Spill,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterQueue {
    #[serde(default = "exporter_queue_items")]
    pub max_items: usize,
    #[serde(default = "exporter_queue_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default = "overflow")]
    pub overflow: Overflow,
    /// Most bytes the spill log (`overflow: spill`) holds on disk.
    #[serde(default = "spill_max_bytes")]
    pub spill_max_bytes: ByteSize,
}

fn exporter_queue_items() -> usize {
    100_000
}

fn exporter_queue_bytes() -> ByteSize {
    ByteSize::mib(64)
}

fn overflow() -> Overflow {
    Overflow::Block
}

fn spill_max_bytes() -> ByteSize {
    ByteSize(1 << 30)
}

impl Default for ExporterQueue {
    fn default() -> Self {
        ExporterQueue {
            max_items: exporter_queue_items(),
            max_bytes: exporter_queue_bytes(),
            overflow: overflow(),
            spill_max_bytes: spill_max_bytes(),
        }
    }
}

impl ExporterQueue {
    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_items: self.max_items,
            max_bytes: self.max_bytes,
        }
    }
}

/// Batching as written; unset fields take the destination's defaults (see [`ExporterConfig::batch`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    pub max_items: Option<usize>,
    pub max_bytes: Option<ByteSize>,
    /// A partial batch is sent once its oldest item has waited this long.
    pub max_age: Option<Duration>,
}

/// Batching with every field decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_items: usize,
    pub max_bytes: ByteSize,
    pub max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "initial_backoff")]
    pub initial_backoff: Duration,
    #[serde(default = "max_backoff")]
    pub max_backoff: Duration,
    /// Give up on a request after retrying this long (counted as failed, reason `retries_exhausted`).
    /// Default 5 minutes; in durable mode, never: the disk holds the backlog, bounded by its own limit.
    pub max_elapsed: Option<Duration>,
}

fn initial_backoff() -> Duration {
    Duration::millis(100)
}

fn max_backoff() -> Duration {
    Duration::secs(30)
}

impl RetryConfig {
    pub fn max_elapsed(&self, durable: bool) -> Duration {
        match (self.max_elapsed, durable) {
            (Some(d), _) => d,
            (None, false) => max_elapsed(),
            (None, true) => Duration(std::time::Duration::MAX),
        }
    }
}

fn max_elapsed() -> Duration {
    Duration::secs(300)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: initial_backoff(),
            max_backoff: max_backoff(),
            max_elapsed: None,
        }
    }
}

/// Exactly one destination, checked by its own module; signals it can take; delivery settings
/// that let something through.
pub(crate) fn check(path: &str, e: &ExporterConfig) -> Result<(), Invalid> {
    let kind = match (e.kind(), e.destinations()) {
        (Some(kind), _) => kind,
        (None, 0) => {
            return Err(invalid(
                path,
                "no destination: set exactly one of `file: {path: …}`, `clickhouse: {endpoint: …}`, `loki: {endpoint: …}`, `otlp: {endpoints: […]}` or `blackhole: {}`",
            ))
        }
        (None, _) => {
            return Err(invalid(
                path,
                "set exactly one destination (file, clickhouse, loki, otlp or blackhole), not several",
            ))
        }
    };
    match kind {
        ExporterKind::Otlp(o) => otlp::check(path, o, e.insecure)?,
        ExporterKind::ClickHouse(c) => clickhouse::check(path, c, e.insecure)?,
        ExporterKind::Loki(l) => loki::check(path, l, e.insecure)?,
        ExporterKind::File(f) => file::check(path, f)?,
        ExporterKind::Blackhole(_) => {}
    }
    if let Some(signals) = &e.signals {
        let takes = kind.signals();
        if signals.iter().any(|s| !takes.contains(s)) {
            let takes: Vec<_> = takes.iter().map(|s| s.as_str()).collect();
            return Err(invalid(
                format!("{path}.signals"),
                format!(
                    "the {} exporter takes only {}",
                    kind.name(),
                    takes.join(", ")
                ),
            ));
        }
        if signals.is_empty() {
            return Err(invalid(
                format!("{path}.signals"),
                "must list at least one signal",
            ));
        }
    }
    e.queue.limits().check(&format!("{path}.queue"))?;
    let batch = e.batch();
    positive(&format!("{path}.batch.max_items"), batch.max_items as u64)?;
    positive(&format!("{path}.batch.max_bytes"), batch.max_bytes.0)?;
    positive(&format!("{path}.max_in_flight"), e.max_in_flight as u64)?;
    if e.retry.initial_backoff.0.is_zero() || e.retry.max_backoff < e.retry.initial_backoff {
        return Err(invalid(
            format!("{path}.retry"),
            "initial_backoff must be > 0 and ≤ max_backoff",
        ));
    }
    if e.timeout.0.is_zero() {
        return Err(invalid(format!("{path}.timeout"), "must be > 0"));
    }
    Ok(())
}

/// The spill log lives in `<durable.dir>/spill/<exporter>/<signal>`.
pub(crate) fn check_spill(name: &str, e: &ExporterConfig, durable: bool) -> Result<(), Invalid> {
    let path = format!("exporters.{name}.queue");
    if !durable {
        return Err(invalid(
            format!("{path}.overflow"),
            "`spill` writes to disk under durable.dir: configure `durable:` too",
        ));
    }
    let safe = |ch: char| ch.is_ascii_alphanumeric() || "-_.".contains(ch);
    if !name.chars().all(safe) || name.starts_with('.') {
        return Err(invalid(
            format!("{path}.overflow"),
            "with `spill` the exporter's name names a directory: use letters, digits, `-`, `_` and `.`",
        ));
    }
    if e.queue.spill_max_bytes.0 < 1 << 20 {
        return Err(invalid(
            format!("{path}.spill_max_bytes"),
            "must be at least 1MiB",
        ));
    }
    Ok(())
}
