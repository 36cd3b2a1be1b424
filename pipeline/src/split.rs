//! Splitting a batch so every request made from it fits the destination's limits: at most `max_items`
//! items and at most `max_bytes` of encoded protobuf. Batches merged in the delivery loop or regrouped
//! by the tail sampler can be far larger than one request may be, and a destination that refuses an
//! oversized request does so for good, so the request must never be built.
//!
//! Resources and scopes that do not fit are cut between items; each piece keeps a copy of its resource
//! and scope. The smallest unit is one item (a span, a log record, one metric with all its data
//! points): an item larger than `max_bytes` alone goes out alone.

use crate::batch::Batch;
use crate::signal::Signal;
use prost::Message;

/// Encoded size of a message as a length-delimited field of its parent (tag, length, body).
fn field_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

impl<S: Signal> Batch<S> {
    /// Splits into batches that each fit `max_items` and `max_bytes` (measured, not estimated); every
    /// piece carries all tickets, so a durable record completes only when every piece is done.
    pub fn split_to_fit(self, max_items: usize, max_bytes: usize) -> Vec<Batch<S>> {
        let (max_items, max_bytes) = (max_items.max(1), max_bytes.max(1));
        if self.items() <= max_items && self.encoded_bytes() <= max_bytes {
            return vec![self];
        }
        // Pieces are measured on the wire; their weight in memory keeps the batch's proportion.
        let in_memory = self.bytes() as f64 / self.encoded_bytes().max(1) as f64;
        let mut this = self;
        let tickets = this.take_tickets();
        let mut chunker = Chunker::<S>::new(max_items, max_bytes);
        for resource in std::mem::take(&mut this.resources) {
            chunker.add_resource(resource);
        }
        chunker
            .finish()
            .into_iter()
            .map(|(resources, bytes)| {
                let weight = (bytes as f64 * in_memory) as usize;
                let mut b = Batch::received(resources, weight, bytes);
                b.set_tickets(tickets.clone());
                b
            })
            .collect()
    }
}

/// Fills chunks in order; the last resource of the open chunk may be a piece still being filled.
struct Chunker<S: Signal> {
    max_items: usize,
    max_bytes: usize,
    done: Vec<(Vec<S::Resource>, usize)>,
    open: Vec<S::Resource>,
    items: usize,
    bytes: usize,
    /// The last resource in `open` is a piece of the resource being cut (so more items may join it),
    /// and its last scope is a piece of the scope being cut.
    piece_open: bool,
    scope_open: bool,
}

impl<S: Signal> Chunker<S> {
    fn new(max_items: usize, max_bytes: usize) -> Self {
        Chunker {
            max_items,
            max_bytes,
            done: Vec::new(),
            open: Vec::new(),
            items: 0,
            bytes: 0,
            piece_open: false,
            scope_open: false,
        }
    }

    fn fits(&self, items: usize, bytes: usize) -> bool {
        self.items + items <= self.max_items && self.bytes + bytes <= self.max_bytes
    }

    fn flush(&mut self) {
        if !self.open.is_empty() {
            self.done.push((
                std::mem::take(&mut self.open),
                std::mem::take(&mut self.bytes),
            ));
        }
        self.items = 0;
        self.bytes = 0;
        self.piece_open = false;
        self.scope_open = false;
    }

    fn add_resource(&mut self, mut resource: S::Resource) {
        let (items, bytes) = (S::count(&resource), field_len(resource.encoded_len()));
        if !self.fits(items, bytes) && items <= self.max_items && bytes <= self.max_bytes {
            self.flush();
        }
        if self.fits(items, bytes) {
            self.open.push(resource);
            self.items += items;
            self.bytes += bytes;
            return;
        }
        // Too large for any one chunk: cut it between items.
        let scopes = std::mem::take(S::groups(&mut resource));
        let shell = resource;
        for mut scope in scopes {
            let items = std::mem::take(S::units(&mut scope));
            self.scope_open = false;
            for item in items {
                self.add_item(&shell, &scope, item);
            }
        }
        self.piece_open = false;
        self.scope_open = false;
    }

    fn add_item(&mut self, shell: &S::Resource, scope: &S::Group, item: S::Unit) {
        let weight = S::unit_weight(&item);
        // Growing a piece grows its length prefixes too; 5 bytes per level covers any varint growth.
        let mut need = field_len(item.encoded_len()) + 10;
        if !self.piece_open {
            need += field_len(shell.encoded_len());
        }
        if !self.scope_open {
            need += field_len(scope.encoded_len());
        }
        if !self.fits(weight, need) && self.items > 0 {
            self.flush();
            need = field_len(item.encoded_len())
                + 10
                + field_len(shell.encoded_len())
                + field_len(scope.encoded_len());
        }
        if !self.piece_open {
            self.open.push(shell.clone());
            self.piece_open = true;
        }
        let piece = self.open.last_mut().expect("a piece was just opened");
        if !self.scope_open {
            S::groups(piece).push(scope.clone());
            self.scope_open = true;
        }
        let scope_piece = S::groups(piece)
            .last_mut()
            .expect("a scope was just opened");
        S::units(scope_piece).push(item);
        self.items += weight;
        self.bytes += need;
    }

    fn finish(mut self) -> Vec<(Vec<S::Resource>, usize)> {
        self.flush();
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::signal::{Logs, Metrics, Traces};
    use crate::ticket::{testing::Completed, Ticket};
    use std::sync::Arc;

    fn encoded<S: Signal>(b: &Batch<S>) -> usize {
        S::to_request(b.resources.clone()).encoded_len()
    }

    #[test]
    fn a_batch_that_fits_is_left_alone() {
        let b: Batch<Logs> = Batch::measured(fixtures::resource_logs(2, 10));
        let parts = b.split_to_fit(100, usize::MAX);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].items(), 20);
    }

    #[test]
    fn one_huge_resource_is_cut_to_the_item_limit_keeping_order() {
        let b: Batch<Traces> = Batch::measured(fixtures::resource_spans(1, 1000));
        let names: Vec<String> = b.resources[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let parts = b.split_to_fit(300, usize::MAX);
        assert_eq!(
            parts.iter().map(Batch::items).collect::<Vec<_>>(),
            vec![300, 300, 300, 100]
        );
        let after: Vec<String> = parts
            .iter()
            .flat_map(|p| p.resources.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.iter())
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(after, names);
        for p in &parts {
            assert!(
                p.resources[0].resource.is_some(),
                "pieces keep their resource"
            );
        }
    }

    #[test]
    fn every_piece_is_within_the_byte_limit_as_encoded() {
        let b: Batch<Logs> = Batch::measured(fixtures::resource_logs(7, 300));
        let total = b.items();
        let limit = encoded(&b) / 9;
        let parts = b.split_to_fit(usize::MAX, limit);
        assert!(parts.len() >= 9);
        for p in &parts {
            let len = encoded(p);
            assert!(len <= limit, "{len} > {limit}");
            assert!(p.bytes() >= len, "the weight is not under-reported");
        }
        assert_eq!(parts.iter().map(Batch::items).sum::<usize>(), total);
    }

    #[test]
    fn metrics_are_split_between_whole_metrics() {
        let b: Batch<Metrics> = Batch::measured(fixtures::resource_metrics(3, 40));
        let total = b.items();
        let parts = b.split_to_fit(25, usize::MAX);
        assert_eq!(parts.iter().map(Batch::items).sum::<usize>(), total);
        assert!(parts.iter().all(|p| p.items() <= 25));
    }

    #[test]
    fn every_piece_holds_the_tickets() {
        let sink = Arc::new(Completed::default());
        let b: Batch<Logs> = Batch::measured(fixtures::resource_logs(1, 50))
            .with_ticket(Ticket::new(3, sink.clone()));
        let mut parts = b.split_to_fit(10, usize::MAX);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.tickets().len() == 1));
        parts.truncate(1);
        assert!(sink.seqs().is_empty(), "one piece still holds the record");
        drop(parts);
        assert_eq!(sink.seqs(), vec![3]);
    }
}
