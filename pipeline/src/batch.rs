//! [`Batch`]: the unit that moves through queues. It carries OTLP resources as decoded, never re-encoded
//! between stages, with the counts that queues and metrics need so nobody walks the tree to ask.

use crate::policy::PolicySet;
use crate::queue::Weighted;
use crate::signal::Signal;
use crate::ticket::Ticket;
use std::sync::Arc;

pub struct Batch<S: Signal> {
    pub resources: Vec<S::Resource>,
    /// Spans, log records or data points.
    items: usize,
    /// The batch's weight in memory: measured by the counting allocator while it was decoded (see
    /// [`crate::memory`]), or its encoded size where nothing measured it. What queues charge.
    bytes: usize,
    /// Its size as protobuf on the wire, as received: what request limits (`batch.max_bytes`) count.
    encoded: usize,
    /// Durable records this batch was made from; empty unless the intake is durable.
    tickets: Vec<Ticket>,
    /// The policies the chain runs this batch under, loaded once for all its stages.
    policies: Option<Arc<PolicySet>>,
}

impl<S: Signal> Batch<S> {
    /// Builds a batch whose weight is known and stands for its encoded size too.
    pub fn new(resources: Vec<S::Resource>, bytes: usize) -> Self {
        Self::received(resources, bytes, bytes)
    }

    /// Builds a batch as decoded: `bytes` in memory (measured while decoding), `encoded` on the wire.
    pub fn received(resources: Vec<S::Resource>, bytes: usize, encoded: usize) -> Self {
        let items = resources.iter().map(S::count).sum();
        Batch {
            resources,
            items,
            bytes,
            encoded,
            tickets: Vec::new(),
            policies: None,
        }
    }

    /// Marks the batch as made from a durable record.
    pub fn with_ticket(mut self, ticket: Ticket) -> Self {
        self.tickets.push(ticket);
        self
    }

    /// Attaches tickets taken from other batches (the tail sampler regroups spans).
    pub fn set_tickets(&mut self, tickets: Vec<Ticket>) {
        self.tickets = tickets;
    }

    /// Takes the tickets out: the holder then decides when the records are complete.
    pub fn take_tickets(&mut self) -> Vec<Ticket> {
        std::mem::take(&mut self.tickets)
    }

    /// Puts the batch under one policy set for the rest of the chain.
    pub fn run_under(&mut self, policies: Arc<PolicySet>) {
        self.policies = Some(policies);
    }

    /// The policy set the chain chose for this batch; `None` outside a chain that has one (a stage
    /// then uses its own policy).
    pub fn policies(&self) -> Option<&Arc<PolicySet>> {
        self.policies.as_ref()
    }

    /// The reload version the batch ran under; 0 when it ran under no set.
    pub fn policy_version(&self) -> u64 {
        self.policies.as_ref().map_or(0, |p| p.version)
    }

    pub fn tickets(&self) -> &[Ticket] {
        &self.tickets
    }

    /// A copy for another exporter; the records complete when every copy is done.
    pub fn duplicate(&self) -> Self {
        Batch {
            resources: self.resources.clone(),
            items: self.items,
            bytes: self.bytes,
            encoded: self.encoded,
            tickets: self.tickets.clone(),
            policies: self.policies.clone(),
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

    /// Encoded protobuf size (as received, or as measured by a split); scaled like `bytes` when
    /// stages remove items.
    pub fn encoded_bytes(&self) -> usize {
        self.encoded
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
            let scale = |v: usize| (v as u128 * self.items as u128 / before as u128) as usize;
            (self.bytes, self.encoded) = (scale(self.bytes), scale(self.encoded));
        }
    }

    /// Moves `other`'s resources into this batch.
    pub fn append(&mut self, other: Batch<S>) {
        self.items += other.items;
        self.bytes += other.bytes;
        self.encoded += other.encoded;
        self.resources.extend(other.resources);
        for t in &other.tickets {
            crate::ticket::push_unique(&mut self.tickets, t);
        }
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
            encoded: 0,
            tickets: Vec::new(),
            policies: None,
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
            .field("encoded", &self.encoded)
            .field("tickets", &self.tickets.len())
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
    fn memory_weight_and_encoded_size_are_kept_apart() {
        let mut a: Batch<Logs> = Batch::received(fixtures::resource_logs(1, 10), 3000, 1000);
        let b: Batch<Logs> = Batch::received(fixtures::resource_logs(1, 10), 600, 200);
        a.append(b);
        assert_eq!((a.bytes(), a.encoded_bytes()), (3600, 1200));
        a.resources[0].scope_logs.clear();
        a.recount();
        assert_eq!((a.items(), a.bytes(), a.encoded_bytes()), (10, 1800, 600));
    }

    #[test]
    fn append_adds_counts() {
        let mut a: Batch<Logs> = Batch::measured(fixtures::resource_logs(1, 5));
        let b: Batch<Logs> = Batch::measured(fixtures::resource_logs(2, 5));
        let bytes = a.bytes() + b.bytes();
        a.append(b);
        assert_eq!((a.items(), a.bytes(), a.resources.len()), (15, bytes, 3));
    }

    #[test]
    fn tickets_follow_appends_and_duplicates() {
        use crate::ticket::{testing::Completed, Ticket};
        let sink = std::sync::Arc::new(Completed::default());
        let t1 = Ticket::new(1, sink.clone());
        let mut a: Batch<Logs> =
            Batch::measured(fixtures::resource_logs(1, 5)).with_ticket(t1.clone());
        a.append(Batch::measured(fixtures::resource_logs(1, 5)).with_ticket(t1));
        a.append(
            Batch::measured(fixtures::resource_logs(1, 5))
                .with_ticket(Ticket::new(2, sink.clone())),
        );
        assert_eq!(
            a.tickets().len(),
            2,
            "the same record's ticket is kept once"
        );
        let copy = a.duplicate();
        drop(a);
        assert!(sink.seqs().is_empty(), "a copy still holds both records");
        drop(copy);
        assert_eq!(sink.seqs(), vec![1, 2]);
    }
}
