//! Delivery tickets: how a durable source learns that everything made from one of its records has been
//! dealt with. A ticket rides on every [`Batch`](crate::Batch) built from the record, is cloned when a
//! batch is copied to several exporters, moved when batches merge, and parked with held spans in the
//! tail sampler; when the last clone is dropped the record is complete — delivered, or given up on and
//! counted. Batches without a durable source carry no tickets and pay nothing.

use std::sync::Arc;

/// Told when every clone of a ticket is gone. Called from whichever thread dropped the last one.
pub trait Completion: Send + Sync + 'static {
    fn complete(&self, seq: u64);
}

#[derive(Clone)]
pub struct Ticket(#[allow(dead_code)] Arc<Inner>);

struct Inner {
    seq: u64,
    sink: Arc<dyn Completion>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.sink.complete(self.seq);
    }
}

impl Ticket {
    pub fn new(seq: u64, sink: Arc<dyn Completion>) -> Self {
        Ticket(Arc::new(Inner { seq, sink }))
    }

    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// Whether both are clones of one ticket.
    pub fn same(&self, other: &Ticket) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ticket({})", self.0.seq)
    }
}

/// Adds `ticket` unless it is already the last one: batches are mostly built from one record at a time.
pub fn push_unique(into: &mut Vec<Ticket>, ticket: &Ticket) {
    if !into.last().is_some_and(|last| last.same(ticket)) {
        into.push(ticket.clone());
    }
}

#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use super::*;
    use std::sync::Mutex;

    /// Records completed sequence numbers, for tests.
    #[derive(Default)]
    pub struct Completed(pub Mutex<Vec<u64>>);

    impl Completion for Completed {
        fn complete(&self, seq: u64) {
            self.0.lock().unwrap().push(seq);
        }
    }

    impl Completed {
        pub fn seqs(&self) -> Vec<u64> {
            let mut v = self.0.lock().unwrap().clone();
            v.sort_unstable();
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Completed;
    use super::*;

    #[test]
    fn completes_once_when_the_last_clone_goes() {
        let sink = Arc::new(Completed::default());
        let t = Ticket::new(7, sink.clone());
        let copies = vec![t.clone(), t.clone()];
        drop(t);
        assert!(sink.seqs().is_empty());
        drop(copies);
        assert_eq!(sink.seqs(), vec![7]);
    }
}
