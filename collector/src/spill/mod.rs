//! `overflow: spill`: an exporter's own log on disk for the batches its memory queue has no room for.
//! The stage workers write a batch there instead of waiting, so a slow or unreachable destination
//! never holds up the other exporters; a feeder thread puts spilled batches back into the queue, in
//! the order they were spilled, as the exporter catches up. While a backlog is on disk new batches
//! join it rather than overtake it. A batch is committed to the spill log before the intake records it
//! came from are let go, and its own record is released only once the exporter has delivered it, so a
//! crash or restart loses nothing: the next start feeds the exporter what is left.
//!
//! Layout: `<durable.dir>/spill/<exporter>/<signal>`, the same segments and checkpoint as the intake
//! log.
//! - [`writer`]: the thread that owns the log: group commit, checkpoints.
//! - [`feeder`]: the thread that reads the log back into the exporter's queue.

mod feeder;
mod writer;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use weir_config::{DurableConfig, Fsync};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::wal::{self, Checkpoint, Progress, Wal};
use weir_pipeline::{Batch, Sender, Signal};

/// Batches on their way to the writer at most: bounds the memory they hold; workers wait beyond it.
const IN_FLIGHT: usize = 8;

pub struct Spill<S: Signal> {
    exporter: String,
    dir: PathBuf,
    writer: mpsc::SyncSender<writer::Msg<S>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<SpillState>,
    compress: bool,
    /// Where the feeder starts: the stored checkpoint, taken when it starts.
    resume: Mutex<Option<Checkpoint>>,
    _signal: PhantomData<S>,
}

/// What the writer, the feeder and the workers share.
struct SpillState {
    progress: Arc<Progress>,
    /// Every record below it is committed: the feeder reads up to here.
    committed: AtomicU64,
    /// The feeder's next record: a backlog waits on disk while it is below `committed`.
    fed: AtomicU64,
    /// Batches sent to the writer and not yet committed (or handed back to the queue).
    pending: AtomicU64,
    /// Set by the writer once no worker writes any more: the feeder ends once it has fed everything
    /// committed.
    closing: AtomicBool,
    /// The shutdown deadline passed: completions no longer count, the feeder stops.
    abandoned: AtomicBool,
    bytes: AtomicU64,
    /// Wakes the feeder when something is committed or the workers are gone.
    wake: (Mutex<()>, Condvar),
    spilled: Counter,
    fed_items: Counter,
    full: Counter,
    errors: Counter,
}

impl SpillState {
    /// Called after `committed` or `closing` changed. Under the lock, so a feeder between its check
    /// and its wait cannot miss it.
    fn wake_feeder(&self) {
        let _guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.1.notify_all();
    }

    /// Waits until woken, or `timeout` passes, unless there is work already.
    fn wait_for_work(&self, timeout: std::time::Duration, work: impl Fn() -> bool) {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        if !work() {
            let _ = self.wake.1.wait_timeout(guard, timeout);
        }
    }
}

impl<S: Signal> Spill<S> {
    /// Opens (and recovers) the exporter's spill log and starts its writer thread, which hands a
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
        let shared = Arc::new(SpillState {
            progress: Arc::new(Progress::new(recovered.checkpoint.w)),
            committed: AtomicU64::new(log.next_seq()),
            fed: AtomicU64::new(recovered.checkpoint.w),
            pending: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            bytes: AtomicU64::new(log.bytes()),
            wake: (Mutex::new(()), Condvar::new()),
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
        {
            let s = shared.clone();
            registry.gauge_fn(
                "weir_spill_bytes",
                "Bytes an exporter's spill log holds on disk.",
                &labels,
                move || s.bytes.load(Ordering::Relaxed) as f64,
            );
        }
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let writer = writer::Writer::new(
            log,
            &recovered.checkpoint,
            cfg,
            max_bytes,
            shared.clone(),
            queue,
            exporter,
        );
        let thread = std::thread::Builder::new()
            .name(format!("weir-spill-w-{signal}"))
            .spawn(move || writer.run(&rx))?;
        Ok(Arc::new(Spill {
            exporter: exporter.to_string(),
            dir,
            writer: tx,
            threads: Mutex::new(vec![thread]),
            shared,
            compress: cfg.compress,
            resume: Mutex::new(Some(recovered.checkpoint)),
            _signal: PhantomData,
        }))
    }

    /// Starts the thread that feeds spilled batches into the exporter's queue; it ends after
    /// [`close`](Self::close) once everything committed is fed, or at [`abandon`](Self::abandon).
    pub fn start_feeder(
        self: &Arc<Self>,
        queue: Sender<Batch<S>>,
    ) -> std::io::Result<JoinHandle<()>> {
        let resume = self
            .resume
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let feeder =
            feeder::Feeder::<S>::new(self.shared.clone(), &self.dir, resume, &self.exporter);
        std::thread::Builder::new()
            .name(format!("weir-spill-r-{}", S::KIND.as_str()))
            .spawn(move || feeder.run(&queue))
    }

    /// Whether batches are on their way to disk or waiting there; new ones then join them instead of
    /// overtaking.
    pub fn backlog(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire) > 0
            || self.shared.fed.load(Ordering::Acquire)
                < self.shared.committed.load(Ordering::Acquire)
    }

    /// Hands the batch to the writer, which commits it with whatever else is pending (one disk sync
    /// for all) and only then drops it, letting its intake records go. The caller does not wait for
    /// the disk, only for room among the batches in flight. `Err` gives the batch back if the writer
    /// is gone.
    pub fn write(&self, batch: Batch<S>) -> Result<(), Option<Batch<S>>> {
        let (payload, flags) = wal::payload::encode(&batch, self.compress);
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        let msg = writer::Msg::Write(writer::Write {
            payload,
            flags,
            batch,
        });
        self.writer.send(msg).map_err(|e| {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            e.0.into_batch()
        })
    }

    /// The stage workers are gone: the writer lets go of the exporter's queue, the feeder hands out
    /// what is on disk and ends, and the queue closes behind them. If the shutdown deadline passes
    /// first, the rest stays for next start.
    pub fn close(&self) {
        let _ = self.writer.send(writer::Msg::Close);
    }

    /// The shutdown deadline passed: what is in flight was not delivered, whatever drops it.
    pub fn abandon(&self) {
        self.shared.progress.freeze();
        self.shared.abandoned.store(true, Ordering::Release);
    }

    /// The last checkpoint, once the exporter's delivery loop has ended; waits for the threads.
    pub fn finish(&self) {
        let _ = self.writer.send(writer::Msg::Finish);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
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

/// What shutdown needs of a spill log, whatever its signal.
pub trait Control: Send + Sync {
    fn abandon(&self);
    fn finish(&self);
}

impl<S: Signal> Control for Spill<S> {
    fn abandon(&self) {
        Spill::abandon(self);
    }
    fn finish(&self) {
        Spill::finish(self);
    }
}

#[cfg(test)]
mod tests;
