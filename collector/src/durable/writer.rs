//! The thread that owns the log. It takes appends in groups (everything queued, or what arrives within
//! `commit_interval`, up to `commit_bytes`), writes them with one `fdatasync`, hands the batches to the
//! reader in memory and only then acknowledges. Between groups it folds completions into the
//! checkpoint and deletes delivered segments; when the disk budget is spent it applies `when_full`.

use super::{now_ms, Append, DurableState, Hot, Msg};
use crate::receive::Refused;
use crate::wire::Wire;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use weir_config::{DurableConfig, Fsync, WhenFull};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::wal::{Checkpoint, Recovered, Wal, Watermark};
use weir_pipeline::Sender;

/// Values the metrics endpoint reads.
#[derive(Default)]
pub struct Gauges {
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
    pub undelivered: AtomicU64,
    pub oldest_age_ms: AtomicU64,
}

#[derive(Clone)]
pub struct WalMetrics {
    pub gauges: Arc<Gauges>,
    committed_records: Counter,
    committed_bytes: Counter,
    syncs: Counter,
    recovered_records: Counter,
    recovered_items: Counter,
    invalid_bytes: Counter,
    dropped_items: Counter,
    refused_full: Counter,
    errors_write: Counter,
    errors_roll: Counter,
    errors_checkpoint: Counter,
}

impl WalMetrics {
    pub fn new(registry: &Registry, signal: &str) -> Self {
        let l = [("signal", signal)];
        let error = |op| {
            registry.counter(
                "weir_wal_errors_total",
                "Disk operations of the durable log that failed, by operation.",
                &[("signal", signal), ("op", op)],
            )
        };
        WalMetrics {
            gauges: Arc::default(),
            committed_records: registry.counter(
                "weir_wal_committed_records_total",
                "Requests committed to the durable log.",
                &l,
            ),
            committed_bytes: registry.counter(
                "weir_wal_committed_bytes_total",
                "Bytes committed to the durable log (compressed, with record headers).",
                &l,
            ),
            syncs: registry.counter(
                "weir_wal_syncs_total",
                "Group commits that waited for the disk (fdatasync).",
                &l,
            ),
            recovered_records: registry.counter(
                "weir_wal_recovered_records_total",
                "Requests found undelivered in the log at start-up, replayed.",
                &l,
            ),
            recovered_items: registry.counter(
                "weir_wal_recovered_items_total",
                "Items in the requests replayed at start-up.",
                &l,
            ),
            invalid_bytes: registry.counter(
                "weir_wal_skipped_bytes_total",
                "Bytes found at start-up that were not whole, valid records (torn writes, corruption).",
                &l,
            ),
            dropped_items: registry.counter(
                "weir_wal_dropped_items_total",
                "Committed items deleted before delivery to make room (when_full: drop_oldest).",
                &[("signal", signal), ("reason", "disk_full")],
            ),
            refused_full: registry.counter(
                "weir_wal_refused_requests_total",
                "Requests refused because the log reached max_bytes (when_full: backpressure).",
                &l,
            ),
            errors_write: error("write"),
            errors_roll: error("roll"),
            errors_checkpoint: error("checkpoint"),
        }
    }

    pub fn recovered(&self, r: &Recovered) {
        self.recovered_records.add(r.records);
        self.recovered_items.add(r.items);
        self.invalid_bytes.add(r.invalid_bytes);
    }
}

/// How soon after a delivery its record's completion reaches the checkpoint file. A crash replays
/// what was delivered since the last checkpoint; at this pace that is about what was in flight.
const COMPLETION_CHECKPOINT: Duration = Duration::from_millis(5);

pub struct Writer<S: Wire> {
    log: Wal,
    shared: Arc<DurableState>,
    hot: Sender<Hot<S>>,
    metrics: WalMetrics,
    watermark: Watermark,
    /// `W` at the last checkpoint.
    watermark_w: u64,
    max_bytes: u64,
    fsync: Fsync,
    when_full: WhenFull,
    commit_interval: Duration,
    commit_bytes: usize,
    checkpoint_interval: Duration,
    /// Appends staged in the current group, in sequence order.
    staged: Vec<(u64, u64, Append<S>)>,
}

impl<S: Wire> Writer<S> {
    pub fn new(
        log: Wal,
        resume: &Checkpoint,
        cfg: &DurableConfig,
        shared: Arc<DurableState>,
        hot: Sender<Hot<S>>,
        metrics: WalMetrics,
    ) -> Self {
        Writer {
            log,
            shared,
            hot,
            metrics,
            watermark: Watermark::resume(resume),
            watermark_w: resume.w,
            max_bytes: cfg.max_bytes.0,
            fsync: cfg.fsync,
            when_full: cfg.when_full,
            commit_interval: cfg.commit_interval.0,
            commit_bytes: cfg.commit_bytes.as_usize(),
            checkpoint_interval: cfg.checkpoint_interval.0,
            staged: Vec::new(),
        }
    }

    pub fn run(mut self, rx: &mpsc::Receiver<Msg<S>>) {
        self.checkpoint(true);
        let mut last_checkpoint = Instant::now();
        let mut last_completion = Instant::now();
        let mut closing = false;
        loop {
            let mut wait = self
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            if self.in_flight() {
                // Records are out: look for their completions soon, so a crash replays little.
                wait = wait.min(COMPLETION_CHECKPOINT);
            }
            let finish = match rx.recv_timeout(wait) {
                Ok(Msg::Append(a)) if !closing => {
                    let finish = self.group(a, rx, &mut closing);
                    self.commit();
                    finish
                }
                Ok(Msg::Append(a)) => {
                    let _ = a.reply.send(Err(Refused::Closed));
                    false
                }
                Ok(Msg::Close) => {
                    closing = true;
                    false
                }
                Ok(Msg::Finish) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
                #[cfg(test)]
                Ok(Msg::Crash) => panic!("crash requested by a test"),
                Err(mpsc::RecvTimeoutError::Timeout) => false,
            };
            if closing || finish {
                // Everything acknowledged is committed: the reader may stop once it has read it.
                self.shared.closing.store(true, Ordering::Release);
            }
            if finish {
                self.checkpoint(true);
                return;
            }
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint(true);
                last_checkpoint = Instant::now();
            } else if last_completion.elapsed() >= COMPLETION_CHECKPOINT
                && self.shared.progress.has_completions()
            {
                // Unsynced: enough for a process crash, which is what replays come from.
                self.checkpoint(false);
                last_completion = Instant::now();
            }
        }
    }

    /// Whether records were handed out that may not be complete yet.
    fn in_flight(&self) -> bool {
        self.shared.progress.has_completions()
            || self.shared.progress.reader_next() > self.watermark_w
    }

    /// Stages `first` and whatever joins it before the group closes; true if `Finish` arrived.
    fn group(&mut self, first: Append<S>, rx: &mpsc::Receiver<Msg<S>>, closing: &mut bool) -> bool {
        let deadline = Instant::now() + self.commit_interval;
        self.stage(first);
        while self.log.staged_bytes() < self.commit_bytes {
            let next = match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Disconnected) => return true,
                Err(mpsc::TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(m) => m,
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                    }
                }
            };
            match next {
                Msg::Append(a) => self.stage(a),
                Msg::Close => {
                    *closing = true;
                    break;
                }
                Msg::Finish => return true,
                #[cfg(test)]
                Msg::Crash => panic!("crash requested by a test"),
            }
        }
        false
    }

    fn stage(&mut self, a: Append<S>) {
        if !Wal::fits(a.meta.len(), a.payload.len()) {
            tracing::error!(
                signal = S::KIND.as_str(),
                bytes = a.payload.len(),
                "request larger than one durable log record may be; refused"
            );
            let _ = a.reply.send(Err(Refused::TooLarge));
            return;
        }
        let need = Wal::record_len(a.meta.len(), a.payload.len());
        if !self.make_room(need) {
            self.metrics.refused_full.inc();
            let _ = a.reply.send(Err(Refused::Full));
            return;
        }
        let ts = now_ms();
        let items = u32::try_from(a.batch.items()).unwrap_or(u32::MAX);
        let seq = self.log.stage(ts, items, a.flags, &a.meta, &a.payload);
        self.staged.push((seq, ts, a));
        if self.fsync == Fsync::Always {
            self.commit();
        }
    }

    /// Whether `need` more bytes fit in `max_bytes`, after freeing delivered segments and, under
    /// `drop_oldest`, undelivered ones.
    fn make_room(&mut self, need: u64) -> bool {
        let used = |log: &Wal| log.bytes() + log.staged_bytes() as u64;
        if used(&self.log) + need <= self.max_bytes {
            return true;
        }
        self.checkpoint(true);
        while used(&self.log) + need > self.max_bytes {
            if self.when_full != WhenFull::DropOldest {
                return false;
            }
            let progress = &self.shared.progress;
            match self.log.drop_oldest(|until| progress.skip_to(until)) {
                Ok(Some(d)) => {
                    self.metrics.dropped_items.add(d.items);
                    tracing::warn!(
                        signal = S::KIND.as_str(),
                        records = d.records,
                        items = d.items,
                        bytes = d.bytes,
                        "durable log full: deleted its oldest segment before delivery (when_full: drop_oldest)"
                    );
                }
                Ok(None) => return false,
                Err(e) => {
                    self.disk_error("checkpoint", &e);
                    return false;
                }
            }
        }
        true
    }

    /// Commits the staged group, then hands each batch to the reader and acknowledges it.
    fn commit(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let bytes = self.log.staged_bytes() as u64;
        match self.log.commit() {
            Ok(()) => {
                self.shared.healthy.store(true, Ordering::Release);
                self.metrics.committed_records.add(self.staged.len() as u64);
                self.metrics.committed_bytes.add(bytes);
                if self.fsync != Fsync::Off {
                    self.metrics.syncs.inc();
                }
                let mut replies = Vec::with_capacity(self.staged.len());
                for (seq, ts_ms, a) in self.staged.drain(..) {
                    // A full hand-over queue is fine: the reader then takes it from disk.
                    let _ = self.hot.try_send(Hot {
                        seq,
                        ts_ms,
                        batch: a.batch,
                    });
                    replies.push(a.reply);
                }
                self.shared
                    .committed
                    .store(self.log.next_seq(), Ordering::Release);
                for r in replies {
                    let _ = r.send(Ok(()));
                }
                if let Err(e) = self.log.maybe_roll() {
                    self.disk_error("roll", &e);
                }
            }
            Err(e) => {
                self.disk_error("write", &e);
                for (_, _, a) in self.staged.drain(..) {
                    let _ = a.reply.send(Err(Refused::Unavailable));
                }
            }
        }
        self.publish_size();
    }

    /// Folds completions into the checkpoint, deletes delivered segments, updates the gauges.
    fn checkpoint(&mut self, sync: bool) {
        let (w, oldest_ts) = self.shared.progress.fold(&mut self.watermark);
        self.watermark_w = w;
        let checkpoint = self.watermark.checkpoint(w);
        let committed = self.shared.committed.load(Ordering::Acquire);
        let undelivered = committed
            .saturating_sub(w)
            .saturating_sub(checkpoint.done_records());
        if let Err(e) = self.log.release_with(checkpoint, sync) {
            self.disk_error("checkpoint", &e);
        }
        let g = &self.metrics.gauges;
        g.undelivered.store(undelivered, Ordering::Relaxed);
        let oldest = oldest_ts.or_else(|| {
            // Nothing handed out is pending, but the reader may be behind: its last record's age.
            (self.shared.progress.reader_next() < committed)
                .then(|| self.shared.reader_ts_ms.load(Ordering::Relaxed))
                .filter(|t| *t > 0)
        });
        g.oldest_age_ms.store(
            oldest.map_or(0, |t| now_ms().saturating_sub(t)),
            Ordering::Relaxed,
        );
        self.publish_size();
    }

    fn publish_size(&self) {
        let g = &self.metrics.gauges;
        g.bytes.store(self.log.bytes(), Ordering::Relaxed);
        g.segments
            .store(self.log.segments() as u64, Ordering::Relaxed);
    }

    fn disk_error(&self, op: &str, e: &std::io::Error) {
        self.shared.healthy.store(false, Ordering::Release);
        match op {
            "write" => self.metrics.errors_write.inc(),
            "roll" => self.metrics.errors_roll.inc(),
            _ => self.metrics.errors_checkpoint.inc(),
        }
        tracing::error!(signal = S::KIND.as_str(), op, error = %e, dir = %self.log.dir().display(), "durable log: disk operation failed");
    }
}
