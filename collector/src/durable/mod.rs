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
//! - [`writer`]: the thread that owns the log: group commit, capacity, checkpoints.
//! - [`reader`]: the thread that feeds the intake queue, from memory when it keeps up and from disk
//!   when it does not (and on replay after a restart).
//!
//! Records complete through [`Ticket`](weir_pipeline::ticket::Ticket)s on the batches made from them;
//! the writer folds completions into the checkpoint and deletes delivered segments.

mod reader;
pub mod record;
#[cfg(test)]
mod tests;
mod writer;

use crate::receive::Refused;
use crate::wire::Wire;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use weir_config::DurableConfig;
use weir_pipeline::metrics::Registry;
use weir_pipeline::queue::{Limits, Weighted};
use weir_pipeline::wal::{self, Progress, Wal};
use weir_pipeline::{bounded, Batch, Sender};

/// A committed batch handed from the writer to the reader in memory, so the common case never reads
/// back what it just wrote.
struct Hot<S: Wire> {
    seq: u64,
    ts_ms: u64,
    batch: Batch<S>,
}

impl<S: Wire> Weighted for Hot<S> {
    fn items(&self) -> usize {
        self.batch.items()
    }
    fn bytes(&self) -> usize {
        self.batch.bytes()
    }
}

enum Msg<S: Wire> {
    Append(Append<S>),
    /// Stop taking appends; keep checkpointing.
    Close,
    /// Write the last checkpoint and end.
    Finish,
    /// Makes the writer thread panic, to test what its death does.
    #[cfg(test)]
    Crash,
}

struct Append<S: Wire> {
    /// Holds this append's share of the writer's inbox until the writer is done with it.
    _room: tokio::sync::OwnedSemaphorePermit,
    payload: bytes::Bytes,
    flags: u16,
    meta: Vec<u8>,
    batch: Batch<S>,
    reply: tokio::sync::oneshot::Sender<Result<(), Refused>>,
}

/// State the writer, the reader and the receivers share.
struct DurableState {
    progress: Arc<Progress>,
    /// Every sequence number below this is committed.
    committed: AtomicU64,
    /// Write time of the last record the reader handed out; tells the backlog's age while it reads.
    reader_ts_ms: AtomicU64,
    healthy: AtomicBool,
    /// The writer thread panicked: nothing will be committed again.
    writer_dead: AtomicBool,
    /// Set by the writer once it has committed its last group: `committed` is final.
    closing: AtomicBool,
    abandoned: AtomicBool,
}

/// The durable front of one signal's pipeline.
pub struct Durable<S: Wire> {
    tx: mpsc::Sender<Msg<S>>,
    /// Bytes of appends sent to the writer and not yet committed or refused: the inbox is bounded so
    /// a slow disk (or clients that cancel and resend) cannot queue bodies without limit; appenders
    /// wait for room, and the wait ends with them if the client goes away.
    inbox: Arc<tokio::sync::Semaphore>,
    inbox_bytes: u32,
    shared: Arc<DurableState>,
    compress: bool,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
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
        let progress = Arc::new(Progress::new(recovered.checkpoint.w));
        let shared = Arc::new(DurableState {
            progress: progress.clone(),
            committed: AtomicU64::new(recovered.next_seq),
            reader_ts_ms: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            writer_dead: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        });
        register_gauges(registry, signal, &shared, &metrics);
        let (hot_tx, hot_rx) = bounded::<Hot<S>>(hot_limits);
        let (tx, rx) = mpsc::channel();
        let w = writer::Writer::new(
            log,
            &recovered.checkpoint,
            cfg,
            shared.clone(),
            hot_tx,
            metrics.clone(),
        );
        let r = reader::Reader::new(
            dir,
            recovered.checkpoint,
            shared.clone(),
            hot_rx,
            intake,
            max_request_bytes,
            registry,
        );
        let writer_shared = shared.clone();
        let threads = vec![
            std::thread::Builder::new()
                .name(format!("weir-wal-{signal}"))
                .spawn(move || {
                    let run = std::panic::AssertUnwindSafe(move || w.run(&rx));
                    if std::panic::catch_unwind(run).is_err() {
                        // Appends now fail (the inbox is gone) and readiness says why; what was
                        // committed stays on disk for the next start.
                        writer_shared.writer_dead.store(true, Ordering::Release);
                        writer_shared.healthy.store(false, Ordering::Release);
                        writer_shared.closing.store(true, Ordering::Release);
                        tracing::error!(
                            signal,
                            "durable log writer thread panicked; refusing requests until restart"
                        );
                    }
                })?,
            std::thread::Builder::new()
                .name(format!("weir-replay-{signal}"))
                .spawn(move || r.run())?,
        ];
        let inbox_bytes = inbox_bytes(cfg);
        Ok(Durable {
            tx,
            inbox: Arc::new(tokio::sync::Semaphore::new(inbox_bytes as usize)),
            inbox_bytes,
            shared,
            compress: cfg.compress,
            closed: AtomicBool::new(false),
            threads: Mutex::new(threads),
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
        if self.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let (payload, flags, meta) = match raw {
            Some(raw) => record::encode_raw(raw, tenant, self.compress),
            None => {
                let (payload, flags) = wal::payload::encode(&batch, self.compress);
                (payload.into(), flags, Vec::new())
            }
        };
        // A record too large for the log is refused by the writer, which owns the log's limits.
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
            batch,
            reply,
        });
        if self.tx.send(msg).is_err() {
            return Err(Refused::Closed);
        }
        answer.await.unwrap_or(Err(Refused::Closed))
    }

    /// Whether the writer thread died (a bug): readiness fails and requests are refused.
    pub fn writer_dead(&self) -> bool {
        self.shared.writer_dead.load(Ordering::Acquire)
    }

    /// Whether the last disk operation succeeded.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// Stops taking requests; the reader hands out what is committed, then closes the intake queue.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) && self.tx.send(Msg::Close).is_err() {
            // The writer is gone: nothing more will be committed.
            self.shared.closing.store(true, Ordering::Release);
        }
    }

    /// The shutdown deadline passed: what is still in flight is not complete, whatever drops it, and
    /// will be replayed on the next start. The reader stops at once.
    pub fn abandon(&self) {
        self.shared.progress.freeze();
        self.shared.abandoned.store(true, Ordering::Release);
    }

    /// Writes the final checkpoint and waits for the threads.
    pub fn finish(&self) {
        self.close();
        let _ = self.tx.send(Msg::Finish);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

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
    fn(&writer::Gauges) -> &AtomicU64,
    f64,
);

fn register_gauges(
    registry: &Registry,
    signal: &str,
    shared: &Arc<DurableState>,
    m: &writer::WalMetrics,
) {
    let labels = [("signal", signal)];
    let s = shared.clone();
    registry.gauge_fn(
        "weir_wal_healthy",
        "1 while the durable log's last disk operation succeeded; readiness fails otherwise.",
        &labels,
        move || f64::from(u8::from(s.healthy.load(Ordering::Acquire))),
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
        let g = m.gauges.clone();
        registry.gauge_fn(name, help, &labels, move || {
            pick(&g).load(Ordering::Relaxed) as f64 * scale
        });
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
