//! The thread that feeds the stage workers from the log, in sequence order, through a
//! [`wal::Follower`]: while it keeps up the owner hands it each committed batch in memory; a
//! sequence number it did not get that way (the hand-over queue was full, or the process restarted)
//! it reads back from disk. Blocking on a full intake queue is how a slow destination turns into
//! disk usage instead of memory.

use super::Hot;
use crate::wire::Wire;
use std::sync::Arc;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::ticket::{Completion, Ticket};
use weir_pipeline::wal::{self, Follower, Record, Step};
use weir_pipeline::{Batch, Receiver, Sender};

pub struct Reader<S: Wire> {
    follower: Follower<Batch<S>>,
    hot: Receiver<Hot<S>>,
    intake: Sender<Batch<S>>,
    max_request_bytes: usize,
    from_disk: Counter,
    undecodable: Counter,
    skipped_segments: Counter,
}

impl<S: Wire> Reader<S> {
    pub fn new(
        follower: Follower<Batch<S>>,
        hot: Receiver<Hot<S>>,
        intake: Sender<Batch<S>>,
        max_request_bytes: usize,
        registry: &Registry,
    ) -> Self {
        let counter = |name, help| registry.counter(name, help, &[("signal", S::KIND.as_str())]);
        Reader {
            follower,
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
            let hot = &self.hot;
            match self.follower.next(&mut || hot.try_recv()) {
                Step::Memory(h) => self.send(h.seq, h.item),
                Step::Disk(r) => {
                    self.skipped_segments
                        .add(self.follower.take_skipped_segments());
                    self.from_disk.inc();
                    let seq = r.seq;
                    match self.decode(r) {
                        Some(batch) => self.send(seq, batch),
                        None => {
                            self.undecodable.inc();
                            // Nothing to deliver: complete at once.
                            self.progress().complete(seq);
                        }
                    }
                }
                Step::ReadError(e) => {
                    tracing::error!(signal = S::KIND.as_str(), error = %e, "durable log: cannot read");
                }
                Step::End => break,
            }
        }
        self.intake.close();
    }

    fn progress(&self) -> &Arc<wal::Progress> {
        self.follower.state().progress()
    }

    fn decode(&self, r: Record) -> Option<Batch<S>> {
        let seq = r.seq;
        super::record::decode(r, self.max_request_bytes)
            .map_err(|e| tracing::error!(signal = S::KIND.as_str(), seq, error = %e, "durable log: record skipped"))
            .ok()
    }

    fn send(&self, seq: u64, batch: Batch<S>) {
        let sink: Arc<dyn Completion> = self.progress().clone();
        let batch = batch.with_ticket(Ticket::new(seq, sink));
        // Blocks while the pipeline is full; a closed queue (shutdown deadline) drops the batch, and
        // with it the ticket, which the frozen progress ignores: the record is replayed next start.
        let _ = self.intake.send_blocking(batch);
    }
}
