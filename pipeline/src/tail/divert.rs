//! Which log records go to the tail sampler: with `logs: with_trace`, those carrying a trace id leave
//! the logs pipeline after its stages and wait for their trace's decision; the rest go on to the
//! exporters. The split keeps each record under its own resource and scope, and both halves keep the
//! batch's durable tickets, so a record completes only when both have been delivered or dropped.

use crate::batch::Batch;
use crate::signal::{Logs, Signal};
use crate::stages::sample::traced;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

/// Takes the records that carry a trace id out of `batch`; `None` when there are none.
pub fn take_traced(batch: &mut Batch<Logs>) -> Option<Batch<Logs>> {
    let mut held = Vec::new();
    for rl in &mut batch.resources {
        let mut scopes = Vec::new();
        for sl in &mut rl.scope_logs {
            if !sl.log_records.iter().any(traced) {
                continue;
            }
            let (with, without) = std::mem::take(&mut sl.log_records)
                .into_iter()
                .partition(traced);
            sl.log_records = without;
            scopes.push(ScopeLogs {
                scope: sl.scope.clone(),
                log_records: with,
                schema_url: sl.schema_url.clone(),
            });
        }
        if !scopes.is_empty() {
            held.push(ResourceLogs {
                resource: rl.resource.clone(),
                scope_logs: scopes,
                schema_url: rl.schema_url.clone(),
            });
        }
    }
    if held.is_empty() {
        return None;
    }
    let moved: usize = held.iter().map(Logs::count).sum();
    let share = batch.bytes() as u128 * moved as u128 / batch.items().max(1) as u128;
    let mut out = Batch::<Logs>::new(held, share as usize);
    out.set_tickets(batch.tickets().to_vec());
    batch.recount();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ticket::{testing::Completed, Ticket};
    use std::sync::Arc;

    #[test]
    fn traced_records_leave_under_their_resource_and_both_halves_hold_the_ticket() {
        let sink = Arc::new(Completed::default());
        let mut batch = Batch::<Logs>::measured(fixtures::resource_logs(2, 10))
            .with_ticket(Ticket::new(7, sink.clone()));
        let (items, bytes) = (batch.items(), batch.bytes());
        let held = take_traced(&mut batch).unwrap();
        assert_eq!(held.items() + batch.items(), items);
        assert!(
            held.items() > 0 && batch.items() > 0,
            "fixtures mix both kinds"
        );
        let records = |b: &Batch<Logs>| -> Vec<bool> {
            b.resources
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
                .map(traced)
                .collect()
        };
        assert!(records(&held).iter().all(|t| *t));
        assert!(records(&batch).iter().all(|t| !*t));
        assert_eq!(
            held.resources.len(),
            2,
            "each resource keeps its own records"
        );
        assert_eq!(
            held.resources[1].resource,
            fixtures::resource_logs(2, 10)[1].resource
        );
        assert!(held.bytes() + batch.bytes() <= bytes && held.bytes() > 0);
        drop(batch);
        assert!(
            sink.seqs().is_empty(),
            "the held half still holds the record"
        );
        drop(held);
        assert_eq!(sink.seqs(), vec![7]);
        let mut none = Batch::<Logs>::measured(vec![]);
        assert!(take_traced(&mut none).is_none());
    }
}
