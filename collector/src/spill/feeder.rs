//! The thread that reads a spill log back, in order, into the exporter's queue, each batch with a
//! ticket that completes its record once delivered. It blocks while the queue is full — that is the
//! exporter's pace — or holds its memory share while memory is short, and checks for shutdown while
//! it waits.

use super::Counters;
use crate::share::MemoryShare;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;
use weir_pipeline::ticket::{Completion, Ticket};
pub use weir_pipeline::wal::follower::IDLE;
use weir_pipeline::wal::{self, Follower, LogState, Step};
use weir_pipeline::{Batch, SendError, Sender, Signal};

/// How often a feeder held back by its memory share looks again.
const CROWDED_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Bound on a spilled batch once decompressed: a batch is at most one queue's worth, far below this.
const MAX_BATCH_BYTES: usize = 1 << 30;

pub struct Feeder<S: Signal> {
    /// Nothing is handed over in memory: a spilled batch was spilled because the queue had no room.
    follower: Follower<Infallible>,
    state: Arc<LogState>,
    counters: Arc<Counters>,
    exporter: String,
    share: MemoryShare,
    _signal: std::marker::PhantomData<S>,
}

impl<S: Signal> Feeder<S> {
    pub fn new(
        follower: Follower<Infallible>,
        state: Arc<LogState>,
        counters: Arc<Counters>,
        exporter: &str,
        share: MemoryShare,
    ) -> Self {
        Feeder {
            follower,
            state,
            counters,
            exporter: exporter.to_string(),
            share,
            _signal: std::marker::PhantomData,
        }
    }

    pub fn run(mut self, queue: &Sender<Batch<S>>) {
        loop {
            let record = match self.follower.next(&mut || None) {
                Step::Disk(r) => r,
                Step::Memory(h) => match h.item {},
                Step::ReadError(e) => {
                    self.counters.errors.inc();
                    tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), error = %e, "spill log: cannot read");
                    continue;
                }
                Step::End => return,
            };
            let seq = record.seq;
            let Some(batch) = self.decode(&record) else {
                continue;
            };
            let items = batch.items() as u64;
            let sink: Arc<dyn Completion> = self.state.progress().clone();
            if !feed(
                queue,
                batch.with_ticket(Ticket::new(seq, sink)),
                &self.state,
                &self.share,
            ) {
                // Not fed: its record stays incomplete and is fed again next start.
                return;
            }
            self.counters.fed_items.add(items);
        }
    }

    /// The record's batch; a record that does not decode is skipped, complete at once.
    fn decode(&self, record: &wal::Record) -> Option<Batch<S>> {
        match wal::payload::decode::<S>(&record.payload, record.flags, MAX_BATCH_BYTES) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), seq = record.seq, error = %e, "spill log: record skipped");
                self.state.progress().complete(record.seq);
                None
            }
        }
    }
}

/// Waits for room in the queue (and, while memory is short, for the queue to hold less than its
/// share); false if the queue closed or the shutdown deadline passed first.
fn feed<S: Signal>(
    queue: &Sender<Batch<S>>,
    mut batch: Batch<S>,
    state: &LogState,
    share: &MemoryShare,
) -> bool {
    // The queue signals room, not memory: the share is polled, at the pace of a delivery.
    while share.crowded(queue) {
        if state.abandoned() || queue.is_closed() {
            return false;
        }
        std::thread::sleep(CROWDED_POLL);
    }
    loop {
        match queue.send_blocking_until(batch, Instant::now() + IDLE) {
            Ok(()) => return true,
            Err(SendError::Closed(_)) => return false,
            Err(SendError::Timeout(b)) => {
                if state.abandoned() {
                    return false;
                }
                batch = b;
            }
        }
    }
}
