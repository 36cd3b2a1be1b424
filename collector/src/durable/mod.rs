//! Durable mode for one signal: accepted requests go through a write-ahead log on local disk before
//! clients are acknowledged, and the stage workers are fed from that log.
//!
//! Why at intake rather than in front of each exporter: the request is written once however many
//! exporters take it; the client's acknowledgement waits only for the local commit, not for stages;
//! and an outage of any destination fills the disk instead of memory, because the stage workers read
//! from the log at the pace the exporters allow. Sampling is consistent by trace id, so replayed
//! spans get the decisions they would have got. The price: the log holds requests before redaction
//! (the directory is created `0700`).
//!
//! # Layout
//! - this file: the handle receivers use ([`Durable::append`]), start-up (recovery) and shutdown.
//! - [`writer`]: what the log's owner thread ([`wal::Owner`]) does for the intake: capacity,
//!   answering the receiver after the commit, handing the batch to the reader in memory.
//! - [`reader`]: the thread that feeds the intake queue through a [`wal::Follower`], from memory
//!   when it keeps up and from disk when it does not (and on replay after a restart).
//!
//! Records complete through [`Ticket`](weir_pipeline::ticket::Ticket)s on the batches made from them;
//! the owner folds completions into the checkpoint and deletes delivered segments.

mod reader;
pub mod record;
#[cfg(test)]
mod tests;
mod writer;

use crate::receive::Refused;
use crate::wire::Wire;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use weir_config::DurableConfig;
use weir_pipeline::metrics::Registry;
use weir_pipeline::queue::Limits;
use weir_pipeline::wal::{self, Handed, Lifecycle, LogHandle, LogState, Msg, Wal};
use weir_pipeline::{bounded, Batch, Sender};

/// A committed batch handed from the owner thread to the reader in memory.
type Hot<S> = Handed<Batch<S>>;

pub(crate) struct Append<S: Wire> {
    /// Holds this append's share of the owner's inbox until the owner is done with it.
    _room: tokio::sync::OwnedSemaphorePermit,
    payload: bytes::Bytes,
    flags: u16,
    meta: Vec<u8>,
    /// Taken when it is handed to the reader.
    batch: Option<Batch<S>>,
    reply: tokio::sync::oneshot::Sender<Result<(), Refused>>,
}

impl<S: Wire> Append<S> {
    /// Gives the inbox share back first: an appender told the outcome finds its room free.
    fn answer(self, result: Result<(), Refused>) {
        let Append { _room, reply, .. } = self;
        drop(_room);
        let _ = reply.send(result);
    }
}

/// The durable front of one signal's pipeline.
pub struct Durable<S: Wire> {
    /// The log's owner thread, through its (unbounded) inbox; the byte bound is `inbox`.
    tx: LogHandle<Append<S>, mpsc::Sender<Msg<Append<S>>>>,
    /// Bytes of appends sent to the owner and not yet committed or refused: the inbox is bounded so
    /// a slow disk (or clients that cancel and resend) cannot queue bodies without limit; appenders
    /// wait for room, and the wait ends with them if the client goes away.
    inbox: Arc<tokio::sync::Semaphore>,
    inbox_bytes: u32,
    compress: bool,
}

impl<S: Wire> Durable<S> {
    /// Opens (and recovers) the log in `<dir>/<signal>` and starts its threads; the reader feeds
    /// `intake` and closes it once shutdown has read everything committed.
    pub fn start(
        cfg: &DurableConfig,
        intake: Sender<Batch<S>>,
        hot_limits: Limits,
        max_request_bytes: usize,
        registry: &Arc<Registry>,
    ) -> anyhow::Result<Self> {
        let signal = S::KIND.as_str();
        let dir = PathBuf::from(&cfg.dir).join(signal);
        create_private_dir(&dir)
            .map_err(|e| anyhow::anyhow!("durable.dir: cannot create {}: {e}", dir.display()))?;
        let opts = wal::Options {
            segment_bytes: cfg.segment_bytes(),
            sync: cfg.fsync != weir_config::Fsync::Off,
        };
        let (log, recovered) = Wal::open(&dir, opts).map_err(|e| {
            anyhow::anyhow!("durable.dir: cannot open the log in {}: {e}", dir.display())
        })?;
        let metrics = writer::WalMetrics::new(registry, signal);
        metrics.recovered(&recovered);
        if recovered.records > 0 || recovered.invalid_bytes > 0 || recovered.checkpoint_lost {
            tracing::warn!(
                signal,
                records = recovered.records,
                items = recovered.items,
                invalid_bytes = recovered.invalid_bytes,
                delivered_out_of_order = recovered.checkpoint.done_records(),
                checkpoint_lost = recovered.checkpoint_lost,
                "durable log recovered: replaying what was not delivered before the last stop"
            );
        }
        let state = LogState::new(&recovered);
        register_gauges(registry, signal, &state);
        let (hot_tx, hot_rx) = bounded::<Hot<S>>(hot_limits);
        let (tx, rx) = mpsc::channel();
        let follower = wal::Follower::new(state.clone(), dir.clone(), recovered.checkpoint.clone());
        let hooks = writer::IntakeHooks::new(cfg, hot_tx, metrics, dir);
        let owner = wal::Owner::new(log, &recovered, state.clone(), cadence(cfg), hooks);
        let r = reader::Reader::new(follower, hot_rx, intake, max_request_bytes, registry);
        let threads = vec![
            // If it panics appends fail (the inbox is gone) and readiness says why; what was
            // committed stays on disk for the next start.
            owner.spawn(format!("weir-wal-{signal}"), rx, move || {
                tracing::error!(
                    signal,
                    "durable log writer thread panicked; refusing requests until restart"
                );
            })?,
            std::thread::Builder::new()
                .name(format!("weir-replay-{signal}"))
                .spawn(move || r.run())?,
        ];
        let inbox_bytes = inbox_bytes(cfg);
        Ok(Durable {
            tx: LogHandle::new(tx, state, threads),
            inbox: Arc::new(tokio::sync::Semaphore::new(inbox_bytes as usize)),
            inbox_bytes,
            compress: cfg.compress,
        })
    }

    /// Writes the request to the log — as received when `raw` is given, else the accepted batch
    /// re-encoded — and answers `Ok` once it is committed (and so safe to acknowledge). `batch` is what
    /// the intake made of it, handed to the stage workers in memory.
    pub async fn append(
        &self,
        batch: Batch<S>,
        raw: Option<record::Raw>,
        tenant: crate::tenant::Stamp<'_>,
    ) -> Result<(), Refused> {
        if self.tx.is_closed() {
            return Err(Refused::Closed);
        }
        let (payload, flags, meta) = match raw {
            Some(raw) => record::encode_raw(raw, tenant, self.compress),
            None => {
                let (payload, flags) = wal::payload::encode(&batch, self.compress);
                (payload.into(), flags, Vec::new())
            }
        };
        // A record too large for the log is refused by the owner, which owns the log's limits.
        // A body larger than the whole inbox waits for all of it.
        let share = u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .clamp(1, self.inbox_bytes);
        let Ok(room) = self.inbox.clone().acquire_many_owned(share).await else {
            return Err(Refused::Closed);
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let msg = Msg::Append(Append {
            _room: room,
            payload,
            flags,
            meta,
            batch: Some(batch),
            reply,
        });
        if self.tx.send(msg).is_err() {
            return Err(Refused::Closed);
        }
        answer.await.unwrap_or(Err(Refused::Closed))
    }

    /// Whether the writer thread died (a bug): readiness fails and requests are refused.
    pub fn writer_dead(&self) -> bool {
        self.tx.state().dead()
    }

    /// Whether the last disk operation succeeded.
    pub fn healthy(&self) -> bool {
        self.tx.state().healthy()
    }
}

/// Close: stop taking requests; the reader hands out what is committed, then closes the intake
/// queue. Abandon: the shutdown deadline passed; what is still in flight is replayed on the next
/// start, and the reader stops at once. Finish: the final checkpoint, then the threads end.
impl<S: Wire> Lifecycle for Durable<S> {
    fn close(&self) {
        self.tx.close();
    }
    fn abandon(&self) {
        self.tx.abandon();
    }
    fn finish(&self) {
        self.tx.finish();
    }
}

fn cadence(cfg: &DurableConfig) -> wal::Cadence {
    wal::Cadence {
        commit_interval: cfg.commit_interval.0,
        commit_bytes: cfg.commit_bytes.as_usize(),
        commit_each: cfg.fsync == weir_config::Fsync::Always,
        checkpoint_interval: cfg.checkpoint_interval.0,
        completion_checkpoint: Some(COMPLETION_CHECKPOINT),
        truncate_drained: false,
        max_bytes: cfg.max_bytes.0,
        drop_oldest: cfg.when_full == weir_config::WhenFull::DropOldest,
    }
}

/// How soon after a delivery its record's completion reaches the checkpoint file. A crash replays
/// what was delivered since the last checkpoint; at this pace that is about what was in flight.
const COMPLETION_CHECKPOINT: std::time::Duration = std::time::Duration::from_millis(5);

/// Room in the writer's inbox: two groups' worth, so one group fills while the other commits.
fn inbox_bytes(cfg: &DurableConfig) -> u32 {
    u32::try_from(cfg.commit_bytes.as_usize().saturating_mul(2))
        .unwrap_or(u32::MAX)
        .max(1 << 20)
}

pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Name, help, the value it reads, and the factor to its unit.
type GaugeDef = (
    &'static str,
    &'static str,
    fn(&wal::Gauges) -> &AtomicU64,
    f64,
);

fn register_gauges(registry: &Registry, signal: &str, state: &Arc<LogState>) {
    let labels = [("signal", signal)];
    let s = state.clone();
    registry.gauge_fn(
        "weir_wal_healthy",
        "1 while the durable log's last disk operation succeeded; readiness fails otherwise.",
        &labels,
        move || f64::from(u8::from(s.healthy())),
    );
    let gauges: [GaugeDef; 4] = [
        (
            "weir_wal_bytes",
            "Bytes the durable log holds on disk.",
            |g| &g.bytes,
            1.0,
        ),
        (
            "weir_wal_segments",
            "Segment files of the durable log.",
            |g| &g.segments,
            1.0,
        ),
        (
            "weir_wal_undelivered_records",
            "Committed requests not yet fully delivered (the backlog, in requests).",
            |g| &g.undelivered,
            1.0,
        ),
        (
            "weir_wal_oldest_undelivered_age_seconds",
            "Age of the oldest committed request not yet delivered; 0 when none.",
            |g| &g.oldest_age_ms,
            1e-3,
        ),
    ];
    for (name, help, pick, scale) in gauges {
        let s = state.clone();
        registry.gauge_fn(name, help, &labels, move || {
            pick(&s.gauges).load(Ordering::Relaxed) as f64 * scale
        });
    }
}
