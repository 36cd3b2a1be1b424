//! `overflow: spill`: an exporter's own log on disk for the batches its memory queue has no room for.
//! The stage workers write a batch there instead of waiting, so a slow or unreachable destination
//! never holds up the other exporters; a feeder thread puts spilled batches back into the queue, in
//! the order they were spilled, as the exporter catches up. While a backlog is on disk new batches
//! join it rather than overtake it. A batch is committed to the spill log before the intake records it
//! came from are let go, and its own record is released only once the exporter has delivered it, so a
//! crash or restart loses nothing: the next start feeds the exporter what is left.
//!
//! Layout: `<durable.dir>/spill/<exporter>/<signal>`, the same segments and checkpoint as the intake
//! log. The write path takes a lock: it is the overload path, and one commit covers one batch.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weir_config::{DurableConfig, Fsync};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::ticket::{Completion, Ticket};
use weir_pipeline::wal::{self, Checkpoint, Cursor, Next, Progress, Wal, Watermark};
use weir_pipeline::{Batch, SendError, Sender, Signal};

/// How often the feeder looks for new records when it has caught up.
const IDLE: Duration = Duration::from_millis(50);
/// Bound on a spilled batch once decompressed: a batch is at most one queue's worth, far below this.
const MAX_BATCH_BYTES: usize = 1 << 30;

pub struct Spill<S: Signal> {
    exporter: String,
    wal: Mutex<Wal>,
    watermark: Mutex<Watermark>,
    progress: Arc<Progress>,
    /// Every record below it is committed: the feeder reads up to here.
    committed: AtomicU64,
    /// The feeder's next record: a backlog waits on disk while it is below `committed`.
    fed: AtomicU64,
    /// Where the feeder starts: the stored checkpoint, taken by the feeder.
    resume: Mutex<Option<Checkpoint>>,
    max_bytes: u64,
    compress: bool,
    checkpoint_interval: Duration,
    /// No stage worker writes any more: the feeder ends once it has fed everything committed.
    closing: AtomicBool,
    /// The shutdown deadline passed: completions no longer count.
    abandoned: AtomicBool,
    bytes: Arc<AtomicU64>,
    spilled: Counter,
    fed_items: Counter,
    full: Counter,
    errors: Counter,
    _signal: PhantomData<S>,
}

impl<S: Signal> Spill<S> {
    /// Opens (and recovers) the exporter's spill log.
    pub fn open(
        cfg: &DurableConfig,
        exporter: &str,
        max_bytes: u64,
        registry: &Registry,
    ) -> anyhow::Result<Arc<Self>> {
        let signal = S::KIND.as_str();
        let dir = dir(cfg, exporter, signal);
        crate::durable::create_private_dir(&dir).map_err(|e| {
            anyhow::anyhow!(
                "exporters.{exporter}.queue: cannot create the spill log {}: {e}",
                dir.display()
            )
        })?;
        let opts = wal::Options {
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            sync: cfg.fsync != Fsync::Off,
        };
        let (log, recovered) = Wal::open(&dir, opts).map_err(|e| {
            anyhow::anyhow!(
                "exporters.{exporter}.queue: cannot open the spill log {}: {e}",
                dir.display()
            )
        })?;
        let labels = [("exporter", exporter), ("signal", signal)];
        let counter = |name, help| registry.counter(name, help, &labels);
        let spill = Arc::new(Spill {
            exporter: exporter.to_string(),
            progress: Arc::new(Progress::new(recovered.checkpoint.w)),
            watermark: Mutex::new(Watermark::resume(&recovered.checkpoint)),
            committed: AtomicU64::new(log.next_seq()),
            fed: AtomicU64::new(recovered.checkpoint.w),
            bytes: Arc::new(AtomicU64::new(log.bytes())),
            resume: Mutex::new(Some(recovered.checkpoint)),
            wal: Mutex::new(log),
            max_bytes,
            compress: cfg.compress,
            checkpoint_interval: cfg.checkpoint_interval.0,
            closing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
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
            _signal: PhantomData,
        });
        let bytes = spill.bytes.clone();
        registry.gauge_fn(
            "weir_spill_bytes",
            "Bytes an exporter's spill log holds on disk.",
            &labels,
            move || bytes.load(Ordering::Relaxed) as f64,
        );
        if recovered.records > 0 {
            tracing::warn!(
                exporter,
                signal,
                records = recovered.records,
                items = recovered.items,
                "spill log recovered: feeding the exporter what it had not delivered"
            );
        }
        Ok(spill)
    }

    /// Whether batches are waiting on disk; new ones then join them instead of overtaking.
    pub fn backlog(&self) -> bool {
        self.fed.load(Ordering::Acquire) < self.committed.load(Ordering::Acquire)
    }

    /// Commits the batch to the log; false when the log is full or the disk failed (the caller then
    /// waits for room in the queue).
    pub fn write(&self, batch: &Batch<S>) -> bool {
        let (payload, flags) = wal::payload::encode(batch, self.compress);
        let len = Wal::record_len(0, payload.len());
        let mut log = self.lock_wal();
        if log.bytes() + len > self.max_bytes {
            drop(log);
            self.checkpoint();
            log = self.lock_wal();
            if log.bytes() + len > self.max_bytes {
                self.full.inc();
                return false;
            }
        }
        let items = u32::try_from(batch.items()).unwrap_or(u32::MAX);
        log.stage(crate::durable::now_ms(), items, flags, &[], &payload);
        if let Err(e) = log.commit() {
            self.failed("write", &e);
            self.full.inc();
            return false;
        }
        self.committed.store(log.next_seq(), Ordering::Release);
        if let Err(e) = log.maybe_roll() {
            self.failed("roll", &e);
        }
        self.bytes.store(log.bytes(), Ordering::Relaxed);
        self.spilled.add(batch.items() as u64);
        true
    }

    /// Starts the thread that feeds spilled batches into the exporter's queue.
    pub fn start_feeder(
        self: &Arc<Self>,
        queue: Sender<Batch<S>>,
        dir: PathBuf,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let spill = self.clone();
        std::thread::Builder::new()
            .name(format!("weir-spill-{}", S::KIND.as_str()))
            .spawn(move || spill.feed(&queue, Cursor::new(dir)))
    }

    fn feed(&self, queue: &Sender<Batch<S>>, mut cursor: Cursor) {
        let resume = self
            .resume
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        let mut delivered: std::collections::VecDeque<(u64, u64)> = resume.done.into();
        let mut next = resume.w;
        let mut last_checkpoint = Instant::now();
        while !self.abandoned.load(Ordering::Acquire) {
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint();
                last_checkpoint = Instant::now();
            }
            // `closing` first: it is set once no worker writes any more, so `committed` is final.
            let closing = self.closing.load(Ordering::Acquire);
            if next >= self.committed.load(Ordering::Acquire) {
                if closing {
                    return;
                }
                std::thread::sleep(IDLE);
                continue;
            }
            let record = match cursor.next(next) {
                Ok(Next::Record(r)) => r,
                Ok(Next::NotYet) => {
                    std::thread::sleep(IDLE);
                    continue;
                }
                Err(e) => {
                    self.failed("read", &e);
                    std::thread::sleep(IDLE);
                    continue;
                }
            };
            let (seq, ts) = (record.seq, record.ts_ms);
            next = seq + 1;
            while delivered.front().is_some_and(|&(_, end)| end <= seq) {
                delivered.pop_front();
            }
            let done_before = delivered.front().is_some_and(|&(start, _)| start <= seq);
            if !self.progress.hand_out(seq, ts) || done_before {
                self.fed.store(next, Ordering::Release);
                continue;
            }
            let batch = match wal::payload::decode::<S>(
                &record.payload,
                record.flags,
                MAX_BATCH_BYTES,
            ) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), seq, error = %e, "spill log: record skipped");
                    self.progress.complete(seq);
                    self.fed.store(next, Ordering::Release);
                    continue;
                }
            };
            let items = batch.items() as u64;
            let sink: Arc<dyn Completion> = self.progress.clone();
            let mut batch = batch.with_ticket(Ticket::new(seq, sink));
            loop {
                match queue.send_blocking_until(batch, Instant::now() + IDLE) {
                    Ok(()) => {
                        self.fed_items.add(items);
                        break;
                    }
                    // Dropping it leaves the record incomplete: it is fed again next start.
                    Err(SendError::Closed(_)) => return,
                    Err(SendError::Timeout(b)) => {
                        if self.abandoned.load(Ordering::Acquire) {
                            return;
                        }
                        batch = b;
                    }
                }
            }
            self.fed.store(next, Ordering::Release);
        }
    }

    /// Folds completions into the checkpoint and deletes delivered segments.
    fn checkpoint(&self) {
        let checkpoint = {
            let mut w = self.watermark.lock().unwrap_or_else(|e| e.into_inner());
            let (at, _) = self.progress.fold(&mut w);
            w.checkpoint(at)
        };
        let mut log = self.lock_wal();
        if let Err(e) = log.release(checkpoint) {
            self.failed("checkpoint", &e);
        }
        self.bytes.store(log.bytes(), Ordering::Relaxed);
    }

    /// The stage workers are gone: the feeder hands out what is on disk, then ends, and the exporter's
    /// queue closes behind it. If the shutdown deadline passes first, the rest stays for next start.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// The shutdown deadline passed: what is in flight was not delivered, whatever drops it.
    pub fn abandon(&self) {
        self.progress.freeze();
        self.abandoned.store(true, Ordering::Release);
    }

    /// The last checkpoint; call once the exporter's delivery loop has ended.
    pub fn finish(&self) {
        self.checkpoint();
    }

    fn lock_wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, op: &str, e: &std::io::Error) {
        self.errors.inc();
        tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), op, error = %e, "spill log: disk operation failed");
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
mod tests {
    use super::*;
    use weir_pipeline::queue::Limits;
    use weir_pipeline::{bounded, fixtures, Logs, Receiver};

    fn config(dir: &Path) -> DurableConfig {
        serde_yaml_ng::from_str(&format!(
            "{{dir: \"{}\", checkpoint_interval: 10ms}}",
            dir.display()
        ))
        .unwrap()
    }

    fn batch() -> Batch<Logs> {
        Batch::measured(fixtures::resource_logs(1, 10))
    }

    fn started(
        dir: &Path,
        max_bytes: u64,
    ) -> (
        Arc<Spill<Logs>>,
        Receiver<Batch<Logs>>,
        std::thread::JoinHandle<()>,
    ) {
        let cfg = config(dir);
        let spill = Spill::<Logs>::open(&cfg, "slow", max_bytes, &Registry::new()).unwrap();
        let (tx, rx) = bounded(Limits {
            max_items: 1000,
            max_bytes: usize::MAX,
        });
        let feeder = spill
            .start_feeder(tx, super::dir(&cfg, "slow", "logs"))
            .unwrap();
        (spill, rx, feeder)
    }

    /// Up to `n` batches the feeder hands out, in order, waiting at most `wait`.
    fn take_within(rx: &Receiver<Batch<Logs>>, n: usize, wait: Duration) -> Vec<Batch<Logs>> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while got.len() < n && Instant::now() < deadline {
            if let Ok(b) = rx.recv_blocking_until(Some(Instant::now() + IDLE)) {
                got.push(b);
            }
        }
        got
    }

    fn take(rx: &Receiver<Batch<Logs>>, n: usize) -> Vec<Batch<Logs>> {
        take_within(rx, n, Duration::from_secs(5))
    }

    #[test]
    fn spilled_batches_come_back_in_order_and_survive_a_restart_until_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, rx, feeder) = started(dir.path(), 1 << 20);
        for _ in 0..3 {
            assert!(spill.write(&batch()));
        }
        let mut got = take(&rx, 3);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|b| b.items() == 10 && b.tickets().len() == 1));
        // The first is delivered; the other two are still out when the process stops.
        drop(got.remove(0));
        spill.close();
        feeder.join().unwrap();
        spill.finish();
        drop((spill, rx, got));

        let (spill, rx, feeder) = started(dir.path(), 1 << 20);
        let again = take(&rx, 2);
        assert_eq!(again.len(), 2, "the two undelivered batches are fed again");
        drop(again);
        spill.close();
        feeder.join().unwrap();
        spill.finish();
        drop((spill, rx));

        let (spill, rx, feeder) = started(dir.path(), 1 << 20);
        assert!(
            take_within(&rx, 1, Duration::from_millis(300)).is_empty(),
            "all delivered: nothing comes back"
        );
        assert!(!spill.backlog());
        spill.close();
        feeder.join().unwrap();
    }

    #[test]
    fn a_full_spill_log_refuses_until_delivery_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let (spill, rx, feeder) = started(dir.path(), 1 << 20);
        let big = Batch::<Logs>::measured(fixtures::resource_logs(1, 2000));
        let mut written = 0;
        while spill.write(&big) {
            written += 1;
            assert!(written < 1000, "the log never filled up");
        }
        assert!(written > 1, "{written}");
        let held = take(&rx, written);
        assert_eq!(held.len(), written);
        assert!(!spill.write(&big), "still full while the batches are out");
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !spill.write(&big) {
            assert!(Instant::now() < deadline, "delivery did not free the log");
            std::thread::sleep(IDLE);
        }
        spill.close();
        drop(take(&rx, 1));
        feeder.join().unwrap();
    }
}
