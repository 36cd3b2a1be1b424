//! How much memory an exporter queue that may drop or spill (`overflow: drop_newest` or `spill`)
//! may hold while memory is short: the rule that keeps one stuck exporter from taking the memory
//! every other exporter needs. The stage workers' routes check it before enqueuing, and a spill
//! log's feeder before reading more back from disk.

use weir_config::{Config, Overflow, SignalKind};
use weir_pipeline::memory;
use weir_pipeline::{Batch, Sender, Signal};

#[derive(Clone, Copy)]
pub struct MemoryShare {
    bytes: usize,
    short: fn() -> bool,
}

impl MemoryShare {
    /// Never crowded: for queues that push back, and tests.
    pub fn unlimited() -> Self {
        MemoryShare {
            bytes: usize::MAX,
            short: || false,
        }
    }

    /// Each queue's share of `memory_limit`: together the queues that may drop or spill take a
    /// quarter of it, leaving the rest to queues that push back and to requests being decoded.
    pub fn of(config: &Config) -> Self {
        let queues: usize = config
            .exporters
            .values()
            .filter(|e| e.queue.overflow != Overflow::Block)
            .map(|e| SignalKind::ALL.iter().filter(|&&s| e.receives(s)).count())
            .sum();
        MemoryShare {
            bytes: memory::limit() / 4 / queues.max(1),
            short: memory_short,
        }
    }

    #[cfg(test)]
    pub fn for_test(bytes: usize, short: fn() -> bool) -> Self {
        MemoryShare { bytes, short }
    }

    /// Whether `queue` holds its share while memory is short: it then counts as full.
    pub fn crowded<S: Signal>(&self, queue: &Sender<Batch<S>>) -> bool {
        queue.bytes() >= self.bytes && (self.short)()
    }
}

/// Whether memory is short: resident memory near the limit, where the receivers are about to
/// refuse ([`crate::budget::under_pressure`]), with a quarter of the limit or more on the heap.
/// Full load alone is not short: a queue that keeps up but briefly holds a backlog then must not
/// be crowded out. RSS is what counts because it runs far above the heap (120 MiB over a 70 MiB
/// heap with a 128 MiB limit behind a stuck exporter): waiting for the heap to reach half the
/// limit let a stuck queue grow until the receivers refused everything.
fn memory_short() -> bool {
    crate::budget::under_pressure() && memory::heap_bytes() >= memory::limit() / 4
}
