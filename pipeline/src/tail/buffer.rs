//! The tail sampler's state, owned by one thread: spans (and, with `logs: with_trace`, log records)
//! held by trace id, the two timelines that say when a trace is due, the decision cache, and the
//! output being assembled. Time is passed in, so tests drive it without sleeping.
//!
//! Memory is accounted per item as its encoded size plus the in-memory record that holds it, and per
//! trace as a fixed overhead; the bounds count exactly that. When a push crosses a bound the oldest
//! traces are decided at once (trigger `pressure`) until it holds again: nothing is evicted undecided.
//! A trace's spans and logs are one entry, so they always leave with one decision; items arriving
//! after it follow the decision cache.

use super::output::{Held, Holdable, Output};
use super::policy::{Budgets, TailPolicy, TraceView, Verdict};
use crate::batch::Batch;
use crate::signal::{Logs, Traces};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

type TraceId = [u8; 16];

/// Bytes a held trace costs beyond its items: map entry, bookkeeping, timeline entries.
pub const TRACE_OVERHEAD: usize = 160;
/// Bytes a held span costs beyond its encoded size: the decoded record and its slot.
pub const SPAN_OVERHEAD: usize = std::mem::size_of::<Held<Span>>();
/// The same for a held log record.
pub const LOG_OVERHEAD: usize = std::mem::size_of::<Held<LogRecord>>();

/// One trace being held.
pub struct Pending {
    seq: u64,
    first: Instant,
    root: Option<Instant>,
    spans: Vec<Held<Span>>,
    logs: Vec<Held<LogRecord>>,
    bytes: usize,
}

struct Trace<'a> {
    id: &'a TraceId,
    pending: &'a Pending,
}

impl TraceView for Trace<'_> {
    fn trace_id(&self) -> &[u8] {
        self.id
    }
    fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)> {
        let spans = self.pending.spans.iter();
        spans.map(|h| (&h.unit, h.meta.resource.as_ref()))
    }
    fn logs(&self) -> impl Iterator<Item = (&LogRecord, Option<&Resource>)> {
        let logs = self.pending.logs.iter();
        logs.map(|h| (&h.unit, h.meta.resource.as_ref()))
    }
    fn bytes(&self) -> usize {
        self.pending.bytes
    }
}

/// What caused a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `root_wait` after the root span arrived.
    Root,
    /// `decision_wait` after the first span or log record.
    Wait,
    /// A memory bound was reached.
    Pressure,
    /// Shutdown, or tail sampling switched off by a reload.
    Flush,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Root => "root",
            Trigger::Wait => "wait",
            Trigger::Pressure => "pressure",
            Trigger::Flush => "flush",
        }
    }
}

/// One decided trace, reported to the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub verdict: Verdict,
    pub trigger: Trigger,
    pub spans: usize,
    pub logs: usize,
}

/// Bounded FIFO of decided trace ids: `Some(policy)` kept, `None` dropped.
#[derive(Default)]
struct DecisionCache {
    map: HashMap<TraceId, Option<Arc<str>>>,
    order: VecDeque<TraceId>,
}

impl DecisionCache {
    fn insert(&mut self, id: TraceId, kept: Option<Arc<str>>, capacity: usize) {
        if capacity == 0 {
            return;
        }
        while self.order.len() >= capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        if self.map.insert(id, kept).is_none() {
            self.order.push_back(id);
        }
    }
}

/// Items that arrived after their trace was decided, by what the decision did with them.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct Late {
    pub kept: u64,
    pub dropped: u64,
}

/// Counts of what a call did, for metrics; the caller drains it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub decided: Vec<Decided>,
    pub late_spans: Late,
    pub late_logs: Late,
}

/// Where each signal's items live in the buffer.
pub trait Tailed: Holdable {
    fn held(p: &mut Pending) -> &mut Vec<Held<<Self as crate::signal::Signal>::Unit>>;
    fn out(b: &mut TailBuffer) -> &mut Output<Self>;
    fn late(r: &mut Tally) -> &mut Late;
    fn trace_id(unit: &<Self as crate::signal::Signal>::Unit) -> &[u8];
    /// Whether the item can start the root timer.
    fn is_root(unit: &<Self as crate::signal::Signal>::Unit) -> bool;
    const OVERHEAD: usize;
}

impl Tailed for Traces {
    fn held(p: &mut Pending) -> &mut Vec<Held<Span>> {
        &mut p.spans
    }
    fn out(b: &mut TailBuffer) -> &mut Output<Self> {
        &mut b.spans_out
    }
    fn late(r: &mut Tally) -> &mut Late {
        &mut r.late_spans
    }
    fn trace_id(span: &Span) -> &[u8] {
        &span.trace_id
    }
    fn is_root(span: &Span) -> bool {
        span.parent_span_id.is_empty()
    }
    const OVERHEAD: usize = SPAN_OVERHEAD;
}

impl Tailed for Logs {
    fn held(p: &mut Pending) -> &mut Vec<Held<LogRecord>> {
        &mut p.logs
    }
    fn out(b: &mut TailBuffer) -> &mut Output<Self> {
        &mut b.logs_out
    }
    fn late(r: &mut Tally) -> &mut Late {
        &mut r.late_logs
    }
    fn trace_id(record: &LogRecord) -> &[u8] {
        &record.trace_id
    }
    fn is_root(_: &LogRecord) -> bool {
        false
    }
    const OVERHEAD: usize = LOG_OVERHEAD;
}

#[derive(Default)]
pub struct TailBuffer {
    pending: HashMap<TraceId, Pending>,
    /// (trace, seq) by first arrival; entries for decided traces are skipped when reached.
    by_first: VecDeque<(TraceId, u64)>,
    /// (trace, seq) by root arrival.
    by_root: VecDeque<(TraceId, u64)>,
    bytes: usize,
    seq: u64,
    cache: DecisionCache,
    budgets: Budgets,
    spans_out: Output<Traces>,
    logs_out: Output<Logs>,
    pub report: Tally,
}

impl TailBuffer {
    pub fn traces(&self) -> usize {
        self.pending.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn cached(&self) -> usize {
        self.cache.map.len()
    }

    /// Takes a batch in: items of decided traces follow their decision, the rest are held. Then
    /// holds the bounds by deciding the oldest traces.
    pub fn push<S: Tailed>(&mut self, mut batch: Batch<S>, policy: &TailPolicy, now: Instant) {
        if !policy.enabled {
            self.flush(policy, now);
            S::out(self).append_batch(batch);
            return;
        }
        let per_item = batch.bytes() / batch.items().max(1);
        let tickets = batch.take_tickets();
        for resource in std::mem::take(&mut batch.resources) {
            S::scatter(resource, &tickets, |meta, units| {
                for unit in units {
                    let held = Held {
                        meta: meta.clone(),
                        unit,
                        bytes: per_item,
                    };
                    self.hold::<S>(held, policy, now);
                }
            });
        }
        while self.pending.len() > policy.max_traces || self.bytes > policy.max_bytes {
            let Some((id, seq)) = self.by_first.pop_front() else {
                break;
            };
            if self.pending.get(&id).is_some_and(|p| p.seq == seq) {
                self.decide(id, Trigger::Pressure, policy, now);
            }
        }
    }

    fn hold<S: Tailed>(
        &mut self,
        held: Held<<S as crate::signal::Signal>::Unit>,
        policy: &TailPolicy,
        now: Instant,
    ) {
        let id = match <TraceId>::try_from(S::trace_id(&held.unit)) {
            Ok(id) if id != [0; 16] => id,
            // An all-zero id (kept and flagged by normalize) names no trace; a malformed one cannot
            // reach here past intake. Nothing to group by: such items pass through.
            _ => return S::out(self).push(held, None),
        };
        if let Some(kept) = self.cache.map.get(&id) {
            let late = S::late(&mut self.report);
            match kept.clone() {
                Some(name) => {
                    late.kept += 1;
                    let tag = policy.attribute.as_deref().map(|a| (a, name));
                    S::out(self).push(held, tag);
                }
                None => late.dropped += 1,
            }
            return;
        }
        let is_root = S::is_root(&held.unit);
        let bytes = held.bytes + S::OVERHEAD;
        let pending = match self.pending.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                self.seq += 1;
                self.by_first.push_back((id, self.seq));
                self.bytes += TRACE_OVERHEAD;
                e.insert(Pending {
                    seq: self.seq,
                    first: now,
                    root: None,
                    spans: Vec::new(),
                    logs: Vec::new(),
                    bytes: TRACE_OVERHEAD,
                })
            }
        };
        if is_root && pending.root.is_none() {
            pending.root = Some(now);
            self.by_root.push_back((id, pending.seq));
        }
        S::held(pending).push(held);
        pending.bytes += bytes;
        self.bytes += bytes;
    }

    /// Decides every trace whose time has come.
    pub fn due(&mut self, policy: &TailPolicy, now: Instant) {
        while let Some(&(id, seq)) = self.by_root.front() {
            match self.pending.get(&id) {
                Some(p) if p.seq == seq => {
                    if p.root.is_some_and(|r| r + policy.root_wait > now) {
                        break;
                    }
                    self.by_root.pop_front();
                    self.decide(id, Trigger::Root, policy, now);
                }
                _ => {
                    self.by_root.pop_front();
                }
            }
        }
        while let Some(&(id, seq)) = self.by_first.front() {
            match self.pending.get(&id) {
                Some(p) if p.seq == seq => {
                    if p.first + policy.decision_wait > now {
                        break;
                    }
                    self.by_first.pop_front();
                    self.decide(id, Trigger::Wait, policy, now);
                }
                _ => {
                    self.by_first.pop_front();
                }
            }
        }
        self.compact();
    }

    /// When the next trace falls due, if any is held.
    pub fn next_deadline(&self, policy: &TailPolicy) -> Option<Instant> {
        let first = self
            .by_first
            .iter()
            .find_map(|(id, seq)| self.live(id, *seq))
            .map(|p| p.first + policy.decision_wait);
        let root = self
            .by_root
            .iter()
            .find_map(|(id, seq)| self.live(id, *seq))
            .and_then(|p| p.root)
            .map(|r| r + policy.root_wait);
        match (first, root) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn live(&self, id: &TraceId, seq: u64) -> Option<&Pending> {
        self.pending.get(id).filter(|p| p.seq == seq)
    }

    /// Decides everything held: at shutdown, or when a reload switched tail sampling off.
    pub fn flush(&mut self, policy: &TailPolicy, now: Instant) {
        while let Some((id, seq)) = self.by_first.pop_front() {
            if self.live(&id, seq).is_some() {
                self.decide(id, Trigger::Flush, policy, now);
            }
        }
        self.by_root.clear();
    }

    /// The kept spans assembled so far, as one batch.
    pub fn take_output(&mut self) -> Option<Batch<Traces>> {
        self.spans_out.take()
    }

    /// The kept log records assembled so far, as one batch.
    pub fn take_logs(&mut self) -> Option<Batch<Logs>> {
        self.logs_out.take()
    }

    /// Forgets budget buckets of rules a reload removed.
    pub fn retain_budgets(&mut self, policy: &TailPolicy) {
        self.budgets.retain(&policy.rules);
    }

    fn decide(&mut self, id: TraceId, trigger: Trigger, policy: &TailPolicy, now: Instant) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        self.bytes -= pending.bytes;
        let verdict = if policy.enabled {
            let trace = Trace {
                id: &id,
                pending: &pending,
            };
            policy.decide(&trace, &mut self.budgets, now)
        } else {
            Verdict::Keep("".into())
        };
        let (spans, logs) = (pending.spans.len(), pending.logs.len());
        let kept = match &verdict {
            Verdict::Keep(name) => {
                let attribute = policy.attribute.as_deref().filter(|_| policy.enabled);
                let tag = || attribute.map(|a| (a, name.clone()));
                for held in pending.spans {
                    self.spans_out.push(held, tag());
                }
                for held in pending.logs {
                    self.logs_out.push(held, tag());
                }
                Some(name.clone())
            }
            Verdict::NoMatch | Verdict::OverBudget(_) | Verdict::Dropped(_) => None,
        };
        if policy.enabled {
            self.cache.insert(id, kept, policy.cache_size);
        }
        self.report.decided.push(Decided {
            verdict,
            trigger,
            spans,
            logs,
        });
    }

    /// Timeline entries of traces decided by another route pile up until their time comes; drop
    /// them in one pass when they outnumber the live ones, so the timelines stay proportional to what
    /// is held.
    fn compact(&mut self) {
        let live = self.pending.len();
        for timeline in [&mut self.by_first, &mut self.by_root] {
            if timeline.len() > 2 * live + 1024 {
                let pending = &self.pending;
                timeline.retain(|(id, seq)| pending.get(id).is_some_and(|p| p.seq == *seq));
            }
        }
    }
}

#[cfg(test)]
mod tests;
