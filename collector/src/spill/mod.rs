//! `overflow: spill`: an exporter's own log on disk for the batches its memory queue has no room for.
//! The stage workers write a batch there instead of waiting, so a slow or unreachable destination
//! never holds up the other exporters; a feeder thread puts spilled batches back into the queue, in
//! the order they were spilled, as the exporter catches up. While a backlog is on disk new batches
//! join it rather than overtake it. A batch is committed to the spill log before the intake records it
//! came from are let go, and its own record is released only once the exporter has delivered it, so a
//! crash or restart loses nothing: the next start feeds the exporter what is left.
//!
//! Layout: `<durable.dir>/spill/<exporter>/<signal>`, the same segments and checkpoint as the intake
//! log, owned and followed by the same [`wal::Owner`] and [`wal::Follower`] as it.
//! - [`writer`]: what the owner thread does for a spill log: counts, and where refused batches go.
//! - [`feeder`]: the thread that reads the log back into the exporter's queue.

mod feeder;
mod writer;

use crate::share::MemoryShare;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use weir_config::{DurableConfig, Fsync};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::wal::{self, Checkpoint, Lifecycle, LogHandle, LogState, Msg, Wal};
use weir_pipeline::{Batch, Sender, Signal};

/// Batches on their way to the writer at most: bounds the memory they hold; workers wait beyond it.
const IN_FLIGHT: usize = 8;

type SpillInbox<S> = mpsc::SyncSender<Msg<writer::Spilled<S>>>;

pub struct Spill<S: Signal> {
    exporter: String,
    dir: PathBuf,
    log: LogHandle<writer::Spilled<S>, SpillInbox<S>>,
    counters: Arc<Counters>,
    compress: bool,
    /// Where the feeder starts: the stored checkpoint, taken when it starts.
    resume: Mutex<Option<Checkpoint>>,
}

/// What the owner thread, the feeder and the workers count, beyond the log's own state.
struct Counters {
    /// Batches sent to the owner and not yet committed (or handed back to the queue).
    pending: AtomicU64,
    spilled: Counter,
    fed_items: Counter,
    full: Counter,
    errors: Counter,
}

impl<S: Signal> Spill<S> {
    /// Opens (and recovers) the exporter's spill log and starts its owner thread, which hands a
    /// batch to `queue` itself when the log cannot take it.
    pub fn open(
        cfg: &DurableConfig,
        exporter: &str,
        max_bytes: u64,
        queue: Sender<Batch<S>>,
        registry: &Registry,
    ) -> anyhow::Result<Arc<Self>> {
        let signal = S::KIND.as_str();
        let dir = dir(cfg, exporter, signal);
        let context = |what: &str, e: std::io::Error| {
            anyhow::anyhow!(
                "exporters.{exporter}.queue: cannot {what} the spill log {}: {e}",
                dir.display()
            )
        };
        crate::durable::create_private_dir(&dir).map_err(|e| context("create", e))?;
        let opts = wal::Options {
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            sync: cfg.fsync != Fsync::Off,
        };
        let (log, recovered) = Wal::open(&dir, opts).map_err(|e| context("open", e))?;
        if recovered.records > 0 {
            tracing::warn!(
                exporter,
                signal,
                records = recovered.records,
                items = recovered.items,
                "spill log recovered: feeding the exporter what it had not delivered"
            );
        }
        let labels = [("exporter", exporter), ("signal", signal)];
        let counter = |name, help| registry.counter(name, help, &labels);
        let counters = Arc::new(Counters {
            pending: AtomicU64::new(0),
            spilled: counter(
                "weir_spill_written_items_total",
                "Items written to an exporter's spill log because its queue was full (overflow: spill).",
            ),
            fed_items: counter(
                "weir_spill_read_items_total",
                "Items read back from an exporter's spill log into its queue.",
            ),
            full: counter(
                "weir_spill_full_total",
                "Batches that found the spill log at spill_max_bytes (or the disk failing) and waited for room in the queue instead.",
            ),
            errors: counter(
                "weir_spill_errors_total",
                "Disk operations on a spill log that failed.",
            ),
        });
        let state = LogState::new(&recovered);
        {
            let s = state.clone();
            registry.gauge_fn(
                "weir_spill_bytes",
                "Bytes an exporter's spill log holds on disk.",
                &labels,
                move || s.gauges.bytes.load(Ordering::Relaxed) as f64,
            );
        }
        let cadence = wal::Cadence {
            // Whatever is waiting when the owner looks shares a commit; nobody waits for it.
            commit_interval: std::time::Duration::ZERO,
            commit_bytes: usize::try_from(cfg.commit_bytes.0).unwrap_or(usize::MAX),
            commit_each: false,
            checkpoint_interval: cfg.checkpoint_interval.0,
            completion_checkpoint: None,
            // Normally empty: once drained it should hold nothing on disk.
            truncate_drained: true,
            max_bytes,
            drop_oldest: false,
        };
        let hooks = writer::SpillHooks::new(queue, counters.clone(), exporter);
        let owner = wal::Owner::new(log, &recovered, state.clone(), cadence, hooks);
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let name = exporter.to_string();
        let thread = owner.spawn(format!("weir-spill-w-{signal}"), rx, move || {
            tracing::error!(exporter = %name, signal, "spill log writer thread panicked");
        })?;
        Ok(Arc::new(Spill {
            exporter: exporter.to_string(),
            dir,
            log: LogHandle::new(tx, state, vec![thread]),
            counters,
            compress: cfg.compress,
            resume: Mutex::new(Some(recovered.checkpoint)),
        }))
    }

    /// Starts the thread that feeds spilled batches into the exporter's queue; it ends after
    /// [`close`](Lifecycle::close) once everything committed is fed, or at
    /// [`abandon`](Lifecycle::abandon). While memory is short it feeds no more than the queue's
    /// `share`: a stuck exporter's batches wait on disk, not in memory.
    pub fn start_feeder(
        self: &Arc<Self>,
        queue: Sender<Batch<S>>,
        share: MemoryShare,
    ) -> std::io::Result<JoinHandle<()>> {
        let resume = self
            .resume
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let state = self.log.state().clone();
        let follower = wal::Follower::new(state.clone(), self.dir.clone(), resume);
        let feeder = feeder::Feeder::<S>::new(
            follower,
            state,
            self.counters.clone(),
            &self.exporter,
            share,
        );
        std::thread::Builder::new()
            .name(format!("weir-spill-r-{}", S::KIND.as_str()))
            .spawn(move || feeder.run(&queue))
    }

    /// Whether batches are on their way to disk or waiting there; new ones then join them instead of
    /// overtaking.
    pub fn backlog(&self) -> bool {
        let state = self.log.state();
        self.counters.pending.load(Ordering::Acquire) > 0 || state.followed() < state.committed()
    }

    /// Hands the batch to the owner thread, which commits it with whatever else is pending (one disk
    /// sync for all) and only then drops it, letting its intake records go. The caller does not wait
    /// for the disk, only for room among the batches in flight. `Err` gives the batch back if the
    /// owner is gone.
    pub fn write(&self, batch: Batch<S>) -> Result<(), Option<Batch<S>>> {
        let (payload, flags) = wal::payload::encode(&batch, self.compress);
        self.counters.pending.fetch_add(1, Ordering::AcqRel);
        let msg = Msg::Append(writer::Spilled {
            payload,
            flags,
            batch,
        });
        self.log.send(msg).map_err(|e| {
            self.counters.pending.fetch_sub(1, Ordering::AcqRel);
            match e.0 {
                Msg::Append(s) => Some(s.batch),
                _ => None,
            }
        })
    }
}

/// Close: the stage workers are gone; the owner lets go of the exporter's queue, the feeder hands
/// out what is on disk and ends, and the queue closes behind them. Abandon: the shutdown deadline
/// passed, what is in flight was not delivered and stays for the next start. Finish: the last
/// checkpoint, once the exporter's delivery loop has ended.
impl<S: Signal> Lifecycle for Spill<S> {
    fn close(&self) {
        self.log.close();
    }
    fn abandon(&self) {
        self.log.abandon();
    }
    fn finish(&self) {
        self.log.finish();
    }
}

/// Where an exporter's spill log for one signal lives.
pub fn dir(cfg: &DurableConfig, exporter: &str, signal: &str) -> PathBuf {
    Path::new(&cfg.dir)
        .join("spill")
        .join(exporter)
        .join(signal)
}

/// Spill logs of exporters no longer configured are not fed to anyone: says so, once per start.
pub fn warn_orphans(cfg: &DurableConfig, signal: &str, configured: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(Path::new(&cfg.dir).join("spill")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path().join(signal);
        if configured(&name) || !dir.is_dir() {
            continue;
        }
        // Record bytes in segment files: an emptied log keeps its active segment's header only.
        let bytes: u64 = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len().saturating_sub(wal::segment::FILE_HEADER))
            .sum();
        if bytes == 0 {
            continue;
        }
        tracing::warn!(exporter = %name, signal, bytes, dir = %dir.display(), "spill log of an exporter that is no longer configured: what it holds is not delivered; configure the exporter again to deliver it, or delete the directory");
    }
}

#[cfg(test)]
mod tests;
