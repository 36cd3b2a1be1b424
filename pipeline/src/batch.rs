//! [`Batch`]: the unit that moves through queues. It carries OTLP resources as decoded, never re-encoded
//! between stages, with the counts that queues and metrics need so nobody walks the tree to ask.

use crate::queue::Weighted;
use crate::signal::Signal;

pub struct Batch<S: Signal> {
    pub resources: Vec<S::Resource>,
    /// Spans, log records or data points.
    items: usize,
    /// Encoded protobuf size when received; an estimate of the batch's weight in memory.
    bytes: usize,
}

impl<S: Signal> Batch<S> {
    /// Builds a batch from resources whose encoded size is already known (the received body length).
    pub fn new(resources: Vec<S::Resource>, encoded_bytes: usize) -> Self {
        let items = resources.iter().map(S::count).sum();
        Batch {
            resources,
            items,
            bytes: encoded_bytes,
        }
    }

    /// Builds a batch, measuring its encoded size; for code that did not receive bytes (tests, fixtures).
    pub fn measured(resources: Vec<S::Resource>) -> Self {
        let bytes = resources.iter().map(prost::Message::encoded_len).sum();
        Self::new(resources, bytes)
    }

    pub fn items(&self) -> usize {
        self.items
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Re-counts items after stages removed some; the byte weight shrinks in proportion rather than
    /// re-measuring, which would walk every field.
    pub fn recount(&mut self) {
        let before = self.items;
        self.resources.retain(|r| S::count(r) > 0);
        self.items = self.resources.iter().map(S::count).sum();
        if before > 0 && self.items != before {
            self.bytes = (self.bytes as u128 * self.items as u128 / before as u128) as usize;
        }
    }

    /// Moves `other`'s resources into this batch.
    pub fn append(&mut self, other: Batch<S>) {
        self.items += other.items;
        self.bytes += other.bytes;
        self.resources.extend(other.resources);
    }

    pub fn into_request(self) -> S::Request {
        S::to_request(self.resources)
    }
}

impl<S: Signal> Default for Batch<S> {
    fn default() -> Self {
        Batch {
            resources: Vec::new(),
            items: 0,
            bytes: 0,
        }
    }
}

impl<S: Signal> Weighted for Batch<S> {
    fn items(&self) -> usize {
        self.items
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
}

impl<S: Signal> std::fmt::Debug for Batch<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("signal", &S::KIND)
            .field("resources", &self.resources.len())
            .field("items", &self.items)
            .field("bytes", &self.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::signal::{Logs, Traces};

    #[test]
    fn counts_items_and_recounts_after_removal() {
        let mut b: Batch<Traces> = Batch::measured(fixtures::resource_spans(3, 10));
        assert_eq!(b.items(), 30);
        let full = b.bytes();
        b.resources[0].scope_spans.clear();
        b.recount();
        assert_eq!(b.items(), 20);
        assert_eq!(b.resources.len(), 2);
        assert_eq!(b.bytes(), full * 20 / 30);
    }

    #[test]
    fn append_adds_counts() {
        let mut a: Batch<Logs> = Batch::measured(fixtures::resource_logs(1, 5));
        let b: Batch<Logs> = Batch::measured(fixtures::resource_logs(2, 5));
        let bytes = a.bytes() + b.bytes();
        a.append(b);
        assert_eq!((a.items(), a.bytes(), a.resources.len()), (15, bytes, 3));
    }
}
