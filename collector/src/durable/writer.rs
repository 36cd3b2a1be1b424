//! What the intake log's owner thread ([`wal::Owner`]) does for the receivers: a record too large or
//! past the disk budget is refused with its reason, a committed batch goes to the reader in memory
//! first and only then is the receiver answered, and every disk operation is counted.

use super::{Append, Hot};
use crate::receive::Refused;
use crate::wire::Wire;
use std::path::PathBuf;
use weir_config::{DurableConfig, Fsync};
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::wal::{self, Dropped, Parts, Recovered, Refusal, Staged};
use weir_pipeline::Sender;

pub struct WalMetrics {
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

pub(crate) struct IntakeHooks<S: Wire> {
    hot: Sender<Hot<S>>,
    metrics: WalMetrics,
    fsync: Fsync,
    dir: PathBuf,
}

impl<S: Wire> IntakeHooks<S> {
    pub fn new(
        cfg: &DurableConfig,
        hot: Sender<Hot<S>>,
        metrics: WalMetrics,
        dir: PathBuf,
    ) -> Self {
        IntakeHooks {
            hot,
            metrics,
            fsync: cfg.fsync,
            dir,
        }
    }
}

impl<S: Wire> wal::Hooks for IntakeHooks<S> {
    type Append = Append<S>;

    fn parts(a: &Append<S>) -> Parts<'_> {
        let items = a.batch.as_ref().map_or(0, weir_pipeline::Batch::items);
        Parts {
            items: u32::try_from(items).unwrap_or(u32::MAX),
            flags: a.flags,
            meta: &a.meta,
            payload: &a.payload,
        }
    }

    fn refuse(&mut self, a: Append<S>, why: Refusal) {
        let refused = match why {
            Refusal::TooLarge => {
                tracing::error!(
                    signal = S::KIND.as_str(),
                    bytes = a.payload.len(),
                    "request larger than one durable log record may be; refused"
                );
                Refused::TooLarge
            }
            Refusal::Full => {
                self.metrics.refused_full.inc();
                Refused::Full
            }
            Refusal::Closed => Refused::Closed,
        };
        a.answer(Err(refused));
    }

    fn committed(&mut self, group: &mut [Staged<Append<S>>], bytes: u64) {
        self.metrics.committed_records.add(group.len() as u64);
        self.metrics.committed_bytes.add(bytes);
        if self.fsync != Fsync::Off {
            self.metrics.syncs.inc();
        }
        for s in group {
            if let Some(batch) = s.append.batch.take() {
                // A full hand-over queue is fine: the reader then takes it from disk.
                let _ = self.hot.try_send(wal::Handed {
                    seq: s.seq,
                    ts_ms: s.ts_ms,
                    item: batch,
                });
            }
        }
    }

    fn settle(&mut self, group: Vec<Staged<Append<S>>>, ok: bool) {
        for s in group {
            s.append.answer(if ok {
                Ok(())
            } else {
                Err(Refused::Unavailable)
            });
        }
    }

    fn dropped(&mut self, d: &Dropped) {
        self.metrics.dropped_items.add(d.items);
        tracing::warn!(
            signal = S::KIND.as_str(),
            records = d.records,
            items = d.items,
            bytes = d.bytes,
            "durable log full: deleted its oldest segment before delivery (when_full: drop_oldest)"
        );
    }

    fn disk_error(&mut self, op: &'static str, e: &std::io::Error) {
        match op {
            "write" => self.metrics.errors_write.inc(),
            "roll" => self.metrics.errors_roll.inc(),
            _ => self.metrics.errors_checkpoint.inc(),
        }
        tracing::error!(signal = S::KIND.as_str(), op, error = %e, dir = %self.dir.display(), "durable log: disk operation failed");
    }
}
