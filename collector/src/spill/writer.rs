//! The thread that owns a spill log. Every batch waiting when it looks shares one commit (one
//! `fdatasync`), and the workers that spilled them do not wait for the disk: a batch keeps its intake
//! tickets until its commit, so the intake log lets go of its records only then. Between commits it
//! folds the exporter's completions into the checkpoint and deletes delivered segments. A batch the
//! log cannot take (full, or the disk failing) goes to the exporter's queue, waiting for room as
//! `overflow: block` would.

use super::SpillState;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use weir_config::DurableConfig;
use weir_pipeline::wal::{Checkpoint, Wal, Watermark};
use weir_pipeline::{Batch, Sender, Signal};

pub enum Msg<S: Signal> {
    Write(Write<S>),
    /// No worker writes any more: the writer lets go of the exporter's queue.
    Close,
    /// The last checkpoint; the thread ends.
    Finish,
}

impl<S: Signal> Msg<S> {
    pub fn into_batch(self) -> Option<Batch<S>> {
        match self {
            Msg::Write(w) => Some(w.batch),
            _ => None,
        }
    }
}

pub struct Write<S: Signal> {
    pub payload: Vec<u8>,
    pub flags: u16,
    pub batch: Batch<S>,
}

pub struct Writer<S: Signal> {
    log: Wal,
    watermark: Watermark,
    shared: Arc<SpillState>,
    /// Until [`Msg::Close`]: where batches the log cannot take go.
    queue: Option<Sender<Batch<S>>>,
    max_bytes: u64,
    commit_bytes: usize,
    checkpoint_interval: Duration,
    exporter: String,
}

impl<S: Signal> Writer<S> {
    pub fn new(
        log: Wal,
        resume: &Checkpoint,
        cfg: &DurableConfig,
        max_bytes: u64,
        shared: Arc<SpillState>,
        queue: Sender<Batch<S>>,
        exporter: &str,
    ) -> Self {
        Writer {
            log,
            watermark: Watermark::resume(resume),
            shared,
            queue: Some(queue),
            max_bytes,
            commit_bytes: usize::try_from(cfg.commit_bytes.0).unwrap_or(usize::MAX),
            checkpoint_interval: cfg.checkpoint_interval.0,
            exporter: exporter.to_string(),
        }
    }

    pub fn run(mut self, rx: &mpsc::Receiver<Msg<S>>) {
        let mut last_checkpoint = Instant::now();
        let mut pending: Option<Msg<S>> = None;
        loop {
            let wait = self
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            let msg = match pending.take() {
                Some(m) => Ok(m),
                None => rx.recv_timeout(wait),
            };
            match msg {
                Ok(Msg::Write(w)) => {
                    let mut group = vec![w];
                    let mut bytes = group[0].payload.len();
                    while bytes < self.commit_bytes {
                        match rx.try_recv() {
                            Ok(Msg::Write(w)) => {
                                bytes += w.payload.len();
                                group.push(w);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(group);
                }
                Ok(Msg::Close) => {
                    self.queue = None;
                    self.shared.closing.store(true, Ordering::Release);
                    self.shared.wake_feeder();
                }
                Ok(Msg::Finish) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if last_checkpoint.elapsed() >= self.checkpoint_interval {
                self.checkpoint();
                last_checkpoint = Instant::now();
            }
        }
        self.checkpoint();
    }

    fn commit(&mut self, group: Vec<Write<S>>) {
        let mut staged = Vec::with_capacity(group.len());
        let mut refused = Vec::new();
        for w in group {
            let len = Wal::record_len(0, w.payload.len());
            let max = self.max_bytes;
            let fits = |log: &Wal| log.bytes() + log.staged_bytes() as u64 + len <= max;
            if !fits(&self.log) {
                self.checkpoint();
            }
            if !fits(&self.log) {
                refused.push(w.batch);
                continue;
            }
            let items = u32::try_from(w.batch.items()).unwrap_or(u32::MAX);
            self.log
                .stage(crate::durable::now_ms(), items, w.flags, &[], &w.payload);
            staged.push(w.batch);
        }
        match self.log.commit() {
            Ok(()) => {
                self.shared
                    .committed
                    .store(self.log.next_seq(), Ordering::Release);
                self.shared.wake_feeder();
                let items: usize = staged.iter().map(Batch::items).sum();
                self.shared.spilled.add(items as u64);
                // Committed: dropping the batches lets their intake records go.
                self.settle(staged.len());
                drop(staged);
            }
            Err(e) => {
                self.failed("write", &e);
                refused.extend(staged);
            }
        }
        if let Err(e) = self.log.maybe_roll() {
            self.failed("roll", &e);
        }
        self.publish_size();
        for batch in refused {
            self.shared.full.inc();
            self.to_queue(batch);
        }
    }

    /// A batch the log could not take waits for room in the exporter's queue, as with `block`.
    fn to_queue(&self, batch: Batch<S>) {
        if let Some(q) = &self.queue {
            // Closed only when the exporter stopped at the deadline: then the intake log is frozen
            // and the records come back next start.
            let _ = q.send_blocking(batch);
        }
        self.settle(1);
    }

    fn settle(&self, batches: usize) {
        self.shared
            .pending
            .fetch_sub(batches as u64, Ordering::AcqRel);
    }

    /// Folds completions into the checkpoint and deletes delivered segments.
    fn checkpoint(&mut self) {
        let (w, _) = self.shared.progress.fold(&mut self.watermark);
        let checkpoint = self.watermark.checkpoint(w);
        if let Err(e) = self
            .log
            .release(checkpoint)
            .and_then(|_| self.log.truncate_if_drained())
        {
            self.failed("checkpoint", &e);
        }
        self.publish_size();
    }

    fn publish_size(&self) {
        self.shared.bytes.store(self.log.bytes(), Ordering::Relaxed);
    }

    fn failed(&self, op: &str, e: &std::io::Error) {
        self.shared.errors.inc();
        tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), op, error = %e, "spill log: disk operation failed");
    }
}
