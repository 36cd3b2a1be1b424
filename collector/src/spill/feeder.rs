//! The thread that reads a spill log back, in order, into the exporter's queue, each batch with a
//! ticket that completes its record once delivered. It blocks while the queue is full — that is the
//! exporter's pace — and checks for shutdown while it waits.

use super::SpillState;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_pipeline::ticket::{Completion, Ticket};
use weir_pipeline::wal::{self, Checkpoint, Cursor, Next, Passing};
use weir_pipeline::{Batch, SendError, Sender, Signal};

/// How often the feeder looks again when nothing woke it (shutdown, a record not readable yet).
pub const IDLE: Duration = Duration::from_millis(50);
/// Bound on a spilled batch once decompressed: a batch is at most one queue's worth, far below this.
const MAX_BATCH_BYTES: usize = 1 << 30;

pub struct Feeder<S: Signal> {
    shared: Arc<SpillState>,
    cursor: Cursor,
    next: u64,
    /// Ranges above the checkpoint delivered before the last stop: passed over, not fed again.
    delivered: Passing,
    exporter: String,
    _signal: PhantomData<S>,
}

impl<S: Signal> Feeder<S> {
    pub fn new(shared: Arc<SpillState>, dir: &Path, resume: Checkpoint, exporter: &str) -> Self {
        Feeder {
            shared,
            cursor: Cursor::new(dir.to_path_buf()),
            next: resume.w,
            delivered: Passing::new(resume),
            exporter: exporter.to_string(),
            _signal: PhantomData,
        }
    }

    pub fn run(mut self, queue: &Sender<Batch<S>>) {
        let shared = self.shared.clone();
        while !shared.abandoned.load(Ordering::Acquire) {
            // `closing` first: it is set once no worker writes any more, so `committed` is final.
            let closing = shared.closing.load(Ordering::Acquire);
            if self.next >= shared.committed.load(Ordering::Acquire) {
                if closing {
                    return;
                }
                let next = self.next;
                shared.wait_for_work(IDLE, || {
                    next < shared.committed.load(Ordering::Acquire)
                        || shared.closing.load(Ordering::Acquire)
                });
                continue;
            }
            let record = match self.cursor.next(self.next) {
                Ok(Next::Record(r)) => r,
                Ok(Next::NotYet) => {
                    std::thread::sleep(IDLE);
                    continue;
                }
                Err(e) => {
                    shared.errors.inc();
                    tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), error = %e, "spill log: cannot read");
                    std::thread::sleep(IDLE);
                    continue;
                }
            };
            let seq = record.seq;
            self.next = seq + 1;
            // Logged as handed out either way, so the checkpoint passes it.
            let fresh =
                shared.progress.hand_out(seq, record.ts_ms) && !self.delivered.delivered(seq);
            let batch = if fresh { self.decode(&record) } else { None };
            if let Some(batch) = batch {
                let items = batch.items() as u64;
                let sink: Arc<dyn Completion> = shared.progress.clone();
                if !feed(queue, batch.with_ticket(Ticket::new(seq, sink)), &shared) {
                    // Not fed: its record stays incomplete and is fed again next start.
                    return;
                }
                shared.fed_items.add(items);
            }
            shared.fed.store(self.next, Ordering::Release);
        }
    }

    /// The record's batch; a record that does not decode is skipped, complete at once.
    fn decode(&self, record: &wal::Record) -> Option<Batch<S>> {
        match wal::payload::decode::<S>(&record.payload, record.flags, MAX_BATCH_BYTES) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(exporter = %self.exporter, signal = S::KIND.as_str(), seq = record.seq, error = %e, "spill log: record skipped");
                self.shared.progress.complete(record.seq);
                None
            }
        }
    }
}

/// Waits for room in the queue; false if the queue closed or the shutdown deadline passed first.
fn feed<S: Signal>(queue: &Sender<Batch<S>>, mut batch: Batch<S>, shared: &SpillState) -> bool {
    loop {
        match queue.send_blocking_until(batch, Instant::now() + IDLE) {
            Ok(()) => return true,
            Err(SendError::Closed(_)) => return false,
            Err(SendError::Timeout(b)) => {
                if shared.abandoned.load(Ordering::Acquire) {
                    return false;
                }
                batch = b;
            }
        }
    }
}
