//! What a spill log does at each step of its owner thread ([`wal::Owner`]): a batch keeps its intake
//! tickets until its commit, so the intake log lets go of its records only then, and the workers that
//! spilled it never wait for the disk. A batch the log cannot take (full, or the disk failing) goes to
//! the exporter's queue after the group's commit, waiting for room as `overflow: block` would.

use super::Counters;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use weir_pipeline::wal::{self, Parts, Refusal, Staged};
use weir_pipeline::{Batch, Sender, Signal};

/// A batch on its way to the spill log.
pub struct Spilled<S: Signal> {
    pub payload: Vec<u8>,
    pub flags: u16,
    pub batch: Batch<S>,
}

pub struct SpillHooks<S: Signal> {
    /// Until the log closes: where batches the log cannot take go.
    queue: Option<Sender<Batch<S>>>,
    /// Refused during the current group; they wait for its commit, so the others are not held up.
    refused: Vec<Batch<S>>,
    counters: Arc<Counters>,
    exporter: String,
}

impl<S: Signal> SpillHooks<S> {
    pub fn new(queue: Sender<Batch<S>>, counters: Arc<Counters>, exporter: &str) -> Self {
        SpillHooks {
            queue: Some(queue),
            refused: Vec::new(),
            counters,
            exporter: exporter.to_string(),
        }
    }

    /// A batch the log could not take waits for room in the exporter's queue, as with `block`.
    fn to_queue(&self, batch: Batch<S>) {
        if let Some(q) = &self.queue {
            // Closed only when the exporter stopped at the deadline: then the intake log is frozen
            // and the records come back next start.
            let _ = q.send_blocking(batch);
        }
        self.settled(1);
    }

    fn settled(&self, batches: usize) {
        self.counters
            .pending
            .fetch_sub(batches as u64, Ordering::AcqRel);
    }
}

impl<S: Signal> wal::Hooks for SpillHooks<S> {
    type Append = Spilled<S>;

    fn parts(s: &Spilled<S>) -> Parts<'_> {
        Parts {
            items: u32::try_from(s.batch.items()).unwrap_or(u32::MAX),
            flags: s.flags,
            meta: &[],
            payload: &s.payload,
        }
    }

    fn refuse(&mut self, s: Spilled<S>, why: Refusal) {
        match why {
            Refusal::Closed => self.to_queue(s.batch),
            Refusal::Full | Refusal::TooLarge => self.refused.push(s.batch),
        }
    }

    fn settle(&mut self, group: Vec<Staged<Spilled<S>>>, ok: bool) {
        if ok {
            let items: usize = group.iter().map(|s| s.append.batch.items()).sum();
            self.counters.spilled.add(items as u64);
            // Committed (and published, so `backlog` stays true): dropping the batches lets their
            // intake records go.
            self.settled(group.len());
            drop(group);
        } else {
            self.refused
                .extend(group.into_iter().map(|s| s.append.batch));
        }
        for batch in std::mem::take(&mut self.refused) {
            self.counters.full.inc();
            self.to_queue(batch);
        }
    }

    fn closed(&mut self) {
        self.queue = None;
    }

    fn disk_error(&mut self, op: &'static str, e: &std::io::Error) {
        self.counters.errors.inc();
        tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), op, error = %e, "spill log: disk operation failed");
    }
}
