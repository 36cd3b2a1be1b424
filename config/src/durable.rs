//! `durable`: the write-ahead log that lets Weir acknowledge a request only once it is on disk.

use crate::check::{invalid, positive, Invalid};
use crate::units::{ByteSize, Duration};
use serde::Deserialize;

/// Durable mode: each signal's accepted requests go to a write-ahead log in `<dir>/<signal>` and the
/// client is acknowledged only once its request is committed there. The stage workers read from the
/// log, so an outage of a destination fills the disk, not memory; after a crash, committed requests
/// not yet delivered are replayed (at least once).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableConfig {
    pub dir: String,
    /// Disk the log of one signal may use.
    #[serde(default = "wal_max_bytes")]
    pub max_bytes: ByteSize,
    /// Size at which a segment file is closed; delivered segments are deleted whole. Default: the
    /// smaller of 64 MiB and `max_bytes / 8`.
    pub segment_bytes: Option<ByteSize>,
    #[serde(default)]
    pub fsync: Fsync,
    /// Group commit: how long the first request of a group may wait for others before the `fsync`.
    /// Zero commits as soon as the writer has nothing more queued.
    #[serde(default)]
    pub commit_interval: Duration,
    /// Group commit: `fsync` as soon as this much is written, whatever the interval.
    #[serde(default = "commit_bytes")]
    pub commit_bytes: ByteSize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// Compress requests with zstd before writing (requests that arrived zstd- or gzip-compressed are
    /// stored as they came).
    #[serde(default = "crate::common::yes")]
    pub compress: bool,
    /// How often delivered records are checkpointed and their segments deleted.
    #[serde(default = "checkpoint_interval")]
    pub checkpoint_interval: Duration,
}

fn wal_max_bytes() -> ByteSize {
    ByteSize::gib(1)
}

fn commit_bytes() -> ByteSize {
    ByteSize::mib(4)
}

fn checkpoint_interval() -> Duration {
    Duration::secs(1)
}

impl DurableConfig {
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
            .map_or_else(|| (64 << 20).min(self.max_bytes.0 / 8), |b| b.0)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// One `fdatasync` per group commit.
    #[default]
    Batch,
    /// One `fdatasync` per request.
    Always,
    /// Never: survives the process crashing, not the machine.
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse new requests (retryable for clients) until delivery frees space.
    #[default]
    Backpressure,
    /// Delete the oldest undelivered segment, counting what it held as dropped.
    DropOldest,
}

/// A directory, segments big enough to be worth a file, and room for at least two of them (one
/// being written while the other is delivered).
pub(crate) fn check(d: &DurableConfig) -> Result<(), Invalid> {
    if d.dir.trim().is_empty() {
        return Err(invalid("durable.dir", "must name a directory"));
    }
    if d.segment_bytes.is_some_and(|s| s.0 < 64 * 1024) {
        return Err(invalid("durable.segment_bytes", "must be at least 64KiB"));
    }
    if d.max_bytes.0 < 2 * d.segment_bytes().max(64 * 1024) {
        return Err(invalid(
            "durable.max_bytes",
            "must hold at least two segments (segment_bytes defaults to max_bytes / 8)",
        ));
    }
    positive("durable.commit_bytes", d.commit_bytes.0)?;
    if d.checkpoint_interval.0.is_zero() {
        return Err(invalid(
            "durable.checkpoint_interval",
            "must be greater than 0",
        ));
    }
    Ok(())
}
