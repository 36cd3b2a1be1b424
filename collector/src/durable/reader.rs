//! The thread that feeds the stage workers from the log, in sequence order. While it keeps up, the
//! writer hands it each committed batch in memory; a sequence number it did not get that way (the
//! hand-over queue was full, or the process restarted) it reads back from disk. Blocking on a full
//! intake queue is how a slow destination turns into disk usage instead of memory.

use super::{DurableState, Hot};
use crate::wire::Wire;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::ticket::{Completion, Ticket};
use weir_pipeline::wal::{Checkpoint, Cursor, Next, Passing, Record};
use weir_pipeline::{Batch, Receiver, RecvError, Sender};

/// How long the reader waits for a hand-over before looking at the disk again.
const IDLE: Duration = Duration::from_millis(50);

pub struct Reader<S: Wire> {
    cursor: Cursor,
    next: u64,
    /// Ranges above the checkpoint the last run delivered: passed over, never sent again.
    delivered: Passing,
    shared: Arc<DurableState>,
    hot: Receiver<Hot<S>>,
    intake: Sender<Batch<S>>,
    max_request_bytes: usize,
    from_disk: Counter,
    undecodable: Counter,
    skipped_segments: Counter,
}

impl<S: Wire> Reader<S> {
    pub fn new(
        dir: PathBuf,
        resume: Checkpoint,
        shared: Arc<DurableState>,
        hot: Receiver<Hot<S>>,
        intake: Sender<Batch<S>>,
        max_request_bytes: usize,
        registry: &Registry,
    ) -> Self {
        let counter = |name, help| registry.counter(name, help, &[("signal", S::KIND.as_str())]);
        Reader {
            cursor: Cursor::new(dir),
            next: resume.w,
            delivered: Passing::new(resume),
            shared,
            hot,
            intake,
            max_request_bytes,
            from_disk: counter(
                "weir_wal_replayed_records_total",
                "Requests read back from the durable log: replay after a restart, or a backlog the pipeline could not take in memory.",
            ),
            undecodable: counter(
                "weir_wal_undecodable_records_total",
                "Records whose checksum held but whose payload would not decode; skipped.",
            ),
            skipped_segments: counter(
                "weir_wal_skipped_segments_total",
                "Segments whose remainder was skipped because a record in them was damaged.",
            ),
        }
    }

    pub fn run(mut self) {
        loop {
            if self.shared.abandoned.load(Ordering::Acquire) {
                break;
            }
            // Moved on by the writer when a full disk made it delete what was not read yet.
            self.next = self.next.max(self.shared.progress.reader_next());
            if let Some(h) = self.hot.try_recv() {
                self.take_hot(h);
                continue;
            }
            // `closing` first: the writer sets it after its last commit, so `committed` is then final.
            let closing = self.shared.closing.load(Ordering::Acquire);
            let committed = self.shared.committed.load(Ordering::Acquire);
            if self.next < committed && self.read_disk() {
                continue;
            }
            if closing && self.next >= committed {
                break;
            }
            match self.hot.recv_blocking_until(Some(Instant::now() + IDLE)) {
                Ok(h) => self.take_hot(h),
                Err(RecvError::Timeout) => {}
                Err(RecvError::Closed) => {
                    // The writer is gone: hand out what is left on disk, then stop.
                    while self.next < self.shared.committed.load(Ordering::Acquire)
                        && !self.shared.abandoned.load(Ordering::Acquire)
                        && self.read_disk()
                    {}
                    break;
                }
            }
        }
        self.intake.close();
    }

    fn take_hot(&mut self, h: Hot<S>) {
        if h.seq < self.next {
            // Already read from disk while the hand-over waited in the queue.
            return;
        }
        while self.next < h.seq && !self.shared.abandoned.load(Ordering::Acquire) {
            if !self.read_disk() {
                break;
            }
        }
        // Records before it could not be read yet: handing it out would claim past them. It is on
        // disk, and will be read from there in order.
        if self.next == h.seq {
            self.hand_out(h.seq, h.ts_ms, h.batch);
        }
    }

    /// Reads the next record from disk and hands it out; false when the disk has nothing at or after
    /// `next` yet.
    fn read_disk(&mut self) -> bool {
        match self.cursor.next(self.next) {
            Ok(Next::Record(r)) => {
                let skipped = std::mem::take(&mut self.cursor.skipped_segments);
                self.skipped_segments.add(skipped);
                let (seq, ts) = (r.seq, r.ts_ms);
                if self.delivered.delivered(seq) {
                    // Logged as handed out so `W` passes it; the writer's watermark has it as done.
                    self.shared.progress.hand_out(seq, ts);
                    self.next = self.next.max(seq + 1);
                    return true;
                }
                self.from_disk.inc();
                match self.decode(r) {
                    Some(batch) => self.hand_out(seq, ts, batch),
                    None => {
                        self.undecodable.inc();
                        // Nothing to deliver: complete at once.
                        if self.shared.progress.hand_out(seq, ts) {
                            self.shared.progress.complete(seq);
                        }
                        self.next = self.next.max(seq + 1);
                    }
                }
                true
            }
            Ok(Next::NotYet) => false,
            Err(e) => {
                tracing::error!(signal = S::KIND.as_str(), error = %e, "durable log: cannot read");
                std::thread::sleep(IDLE);
                false
            }
        }
    }

    fn decode(&self, r: Record) -> Option<Batch<S>> {
        let seq = r.seq;
        super::record::decode(r, self.max_request_bytes)
            .map_err(|e| tracing::error!(signal = S::KIND.as_str(), seq, error = %e, "durable log: record skipped"))
            .ok()
    }

    fn hand_out(&mut self, seq: u64, ts_ms: u64, batch: Batch<S>) {
        let progress = &self.shared.progress;
        if !progress.hand_out(seq, ts_ms) {
            // Deleted to make room after it was read: counted as dropped by the writer.
            self.next = self.next.max(progress.reader_next());
            return;
        }
        self.next = seq + 1;
        self.shared.reader_ts_ms.store(ts_ms, Ordering::Relaxed);
        let sink: Arc<dyn Completion> = progress.clone();
        let batch = batch.with_ticket(Ticket::new(seq, sink));
        // Blocks while the pipeline is full; a closed queue (shutdown deadline) drops the batch, and
        // with it the ticket, which the frozen progress ignores: the record is replayed next start.
        let _ = self.intake.send_blocking(batch);
    }
}
