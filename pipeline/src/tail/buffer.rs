//! The tail sampler's state, owned by one thread: spans held by trace id, the two timelines that say
//! when a trace is due, the decision cache, and the output being assembled. Time is passed in, so tests
//! drive it without sleeping.
//!
//! Memory is accounted per span as its encoded size plus the in-memory record that holds it, and per
//! trace as a fixed overhead; the bounds count exactly that. When a push crosses a bound the oldest
//! traces are decided at once (trigger `pressure`) until it holds again: nothing is evicted undecided.

use super::policy::{Budgets, TailPolicy, TraceView, Verdict};
use crate::batch::Batch;
use crate::signal::Traces;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

type TraceId = [u8; 16];

/// Bytes a held trace costs beyond its spans: map entry, bookkeeping, timeline entries.
pub const TRACE_OVERHEAD: usize = 160;
/// Bytes a held span costs beyond its encoded size: the decoded record and its slot.
pub const SPAN_OVERHEAD: usize = std::mem::size_of::<Held>();

/// The resource and scope a span arrived under, shared by every span of that scope.
#[derive(Debug)]
struct Meta {
    resource: Option<Resource>,
    resource_schema_url: String,
    scope: Option<InstrumentationScope>,
    scope_schema_url: String,
    /// Durable records these spans came from: held spans keep them open until decided and delivered.
    tickets: Vec<crate::ticket::Ticket>,
}

struct Held {
    meta: Arc<Meta>,
    span: Span,
    bytes: usize,
}

struct Pending {
    seq: u64,
    first: Instant,
    root: Option<Instant>,
    spans: Vec<Held>,
    bytes: usize,
}

struct Trace<'a> {
    id: &'a TraceId,
    spans: &'a [Held],
}

impl TraceView for Trace<'_> {
    fn trace_id(&self) -> &[u8] {
        self.id
    }
    fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)> {
        self.spans
            .iter()
            .map(|h| (&h.span, h.meta.resource.as_ref()))
    }
}

/// What caused a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `root_wait` after the root span arrived.
    Root,
    /// `decision_wait` after the first span.
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

/// Counts of what a call did, for metrics; the caller drains it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub decided: Vec<Decided>,
    pub late_kept: u64,
    pub late_dropped: u64,
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
    out: Output,
    pub report: Report,
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

    /// Takes a batch in: spans of decided traces follow their decision, the rest are held. Then holds
    /// the bounds by deciding the oldest traces.
    pub fn push(&mut self, mut batch: Batch<Traces>, policy: &TailPolicy, now: Instant) {
        if !policy.enabled {
            self.flush(policy, now);
            self.out.append_batch(batch);
            return;
        }
        let per_span = batch.bytes() / batch.items().max(1);
        let tickets = batch.take_tickets();
        for rs in std::mem::take(&mut batch.resources) {
            let resource = rs.resource;
            for ss in rs.scope_spans {
                let meta = Arc::new(Meta {
                    resource: resource.clone(),
                    resource_schema_url: rs.schema_url.clone(),
                    scope: ss.scope,
                    scope_schema_url: ss.schema_url,
                    tickets: tickets.clone(),
                });
                for span in ss.spans {
                    self.hold(meta.clone(), span, per_span, policy, now);
                }
            }
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

    fn hold(
        &mut self,
        meta: Arc<Meta>,
        span: Span,
        encoded: usize,
        policy: &TailPolicy,
        now: Instant,
    ) {
        let id = match <TraceId>::try_from(span.trace_id.as_slice()) {
            Ok(id) if id != [0; 16] => id,
            // An all-zero id (kept and flagged by normalize) names no trace; a malformed one cannot
            // reach here past intake. Nothing to group by: such spans pass through.
            _ => {
                self.out.push(meta, span, encoded, None);
                return;
            }
        };
        if let Some(kept) = self.cache.map.get(&id) {
            match kept {
                Some(name) => {
                    self.report.late_kept += 1;
                    let name = policy
                        .attribute
                        .as_ref()
                        .map(|a| (a.as_str(), name.clone()));
                    self.out.push(meta, span, encoded, name);
                }
                None => self.report.late_dropped += 1,
            }
            return;
        }
        let is_root = span.parent_span_id.is_empty();
        let bytes = encoded + SPAN_OVERHEAD;
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
                    bytes: TRACE_OVERHEAD,
                })
            }
        };
        if is_root && pending.root.is_none() {
            pending.root = Some(now);
            self.by_root.push_back((id, pending.seq));
        }
        pending.spans.push(Held {
            meta,
            span,
            bytes: encoded,
        });
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
        self.out.take()
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
            policy.decide(
                &Trace {
                    id: &id,
                    spans: &pending.spans,
                },
                &mut self.budgets,
                now,
            )
        } else {
            Verdict::Keep("".into())
        };
        let spans = pending.spans.len();
        let kept = match &verdict {
            Verdict::Keep(name) => {
                let attribute = policy.attribute.as_deref().filter(|_| policy.enabled);
                for held in pending.spans {
                    let tag = attribute.map(|a| (a, name.clone()));
                    self.out.push(held.meta, held.span, held.bytes, tag);
                }
                Some(name.clone())
            }
            Verdict::NoMatch | Verdict::OverBudget(_) => None,
        };
        if policy.enabled {
            self.cache.insert(id, kept, policy.cache_size);
        }
        self.report.decided.push(Decided {
            verdict,
            trigger,
            spans,
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

/// Kept spans regrouped under their resource and scope.
#[derive(Default)]
struct Output {
    resources: Vec<ResourceSpans>,
    /// Index into `resources` by the address of the `Meta` it was built from; `metas` keeps those
    /// alive, so an address cannot be reused while the map lives.
    index: HashMap<usize, usize>,
    metas: Vec<Arc<Meta>>,
    bytes: usize,
    tickets: Vec<crate::ticket::Ticket>,
}

impl Output {
    fn push(
        &mut self,
        meta: Arc<Meta>,
        mut span: Span,
        bytes: usize,
        tag: Option<(&str, Arc<str>)>,
    ) {
        if let Some((key, name)) = tag {
            crate::attrs::set_string(&mut span.attributes, key, &name);
        }
        let i = *self
            .index
            .entry(Arc::as_ptr(&meta) as usize)
            .or_insert_with(|| {
                self.resources.push(ResourceSpans {
                    resource: meta.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: meta.scope.clone(),
                        spans: Vec::new(),
                        schema_url: meta.scope_schema_url.clone(),
                    }],
                    schema_url: meta.resource_schema_url.clone(),
                });
                for t in &meta.tickets {
                    crate::ticket::push_unique(&mut self.tickets, t);
                }
                self.metas.push(meta.clone());
                self.resources.len() - 1
            });
        self.resources[i].scope_spans[0].spans.push(span);
        self.bytes += bytes;
    }

    fn append_batch(&mut self, mut batch: Batch<Traces>) {
        for t in &batch.take_tickets() {
            crate::ticket::push_unique(&mut self.tickets, t);
        }
        self.bytes += batch.bytes();
        self.resources.extend(batch.resources);
    }

    fn take(&mut self) -> Option<Batch<Traces>> {
        if self.resources.is_empty() {
            return None;
        }
        self.index.clear();
        self.metas.clear();
        let bytes = std::mem::take(&mut self.bytes);
        let mut batch = Batch::new(std::mem::take(&mut self.resources), bytes);
        batch.set_tickets(std::mem::take(&mut self.tickets));
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::tail::policy::{Condition, TailRule};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};
    use std::time::Duration;

    fn policy(rules: Vec<(&str, Condition)>) -> TailPolicy {
        TailPolicy {
            enabled: true,
            rules: rules
                .into_iter()
                .map(|(name, condition)| TailRule {
                    name: name.into(),
                    condition,
                    budget: None,
                })
                .collect(),
            decision_wait: Duration::from_secs(10),
            root_wait: Duration::from_secs(1),
            max_traces: 10_000,
            max_bytes: 64 << 20,
            cache_size: 10_000,
            attribute: Some("weir.sampling.policy".into()),
        }
    }

    fn errors_and_slow() -> TailPolicy {
        policy(vec![
            ("errors", Condition::Error),
            ("slow", Condition::Latency(1_000_000_000)),
        ])
    }

    /// Span `n` of trace `t`; span 0 is the root.
    fn span(t: u64, n: u64) -> Span {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(t + 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&(t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).to_be_bytes());
        Span {
            trace_id: trace_id.to_vec(),
            span_id: (n + 1).to_be_bytes().to_vec(),
            parent_span_id: if n == 0 {
                vec![]
            } else {
                1u64.to_be_bytes().to_vec()
            },
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            ..Span::default()
        }
    }

    fn batch(spans: Vec<Span>) -> Batch<Traces> {
        let mut rs = fixtures::resource_spans(1, 0);
        rs[0].scope_spans[0].spans = spans;
        Batch::measured(rs)
    }

    fn spans_of(b: &Batch<Traces>) -> Vec<&Span> {
        b.resources
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect()
    }

    fn error(mut s: Span) -> Span {
        s.status = Some(Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        });
        s
    }

    #[test]
    fn root_and_wait_triggers_keep_matching_traces_whole() {
        let p = errors_and_slow();
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        // Trace 1 errs in a child, trace 2 is slow, trace 3 is neither; children arrive before roots.
        let mut slow = span(2, 1);
        slow.end_time_unix_nano = 5_000_000_000;
        buf.push(
            batch(vec![error(span(1, 1)), slow, span(3, 1), span(1, 2)]),
            &p,
            t0,
        );
        buf.push(
            batch(vec![span(1, 0), span(2, 0), span(3, 0)]),
            &p,
            t0 + Duration::from_millis(100),
        );
        assert_eq!(buf.traces(), 3);
        buf.due(&p, t0 + Duration::from_millis(1099));
        assert!(buf.take_output().is_none(), "root_wait not over yet");
        assert_eq!(
            buf.next_deadline(&p),
            Some(t0 + Duration::from_millis(1100))
        );
        buf.due(&p, t0 + Duration::from_millis(1100));
        let out = buf.take_output().unwrap();
        let kept = spans_of(&out);
        assert_eq!(kept.len(), 5, "3 spans of trace 1, 2 of trace 2");
        assert!(kept.iter().all(|s| s.trace_id != span(3, 0).trace_id));
        assert_eq!(out.items(), 5);
        let tag = |s: &Span| match &s.attributes.last().unwrap().value.as_ref().unwrap().value {
            Some(Value::StringValue(v)) => v.clone(),
            _ => panic!(),
        };
        assert!(kept
            .iter()
            .filter(|s| s.trace_id == span(1, 0).trace_id)
            .all(|s| tag(s) == "errors"));
        assert!(kept
            .iter()
            .filter(|s| s.trace_id == span(2, 0).trace_id)
            .all(|s| tag(s) == "slow"));
        assert_eq!(
            out.resources[0].resource,
            fixtures::resource_spans(1, 0)[0].resource
        );
        let verdicts: Vec<_> = buf
            .report
            .decided
            .iter()
            .map(|d| (d.verdict.clone(), d.trigger, d.spans))
            .collect();
        assert_eq!(
            verdicts,
            [
                (Verdict::Keep("errors".into()), Trigger::Root, 3),
                (Verdict::Keep("slow".into()), Trigger::Root, 2),
                (Verdict::NoMatch, Trigger::Root, 2),
            ]
        );
        assert_eq!((buf.traces(), buf.bytes()), (0, 0));

        // No root ever: decided at decision_wait.
        buf.push(batch(vec![error(span(4, 3))]), &p, t0);
        assert_eq!(buf.next_deadline(&p), Some(t0 + Duration::from_secs(10)));
        buf.due(&p, t0 + Duration::from_secs(10));
        assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 1);
        assert_eq!(buf.report.decided.last().unwrap().trigger, Trigger::Wait);
    }

    #[test]
    fn late_spans_follow_the_decision() {
        let p = errors_and_slow();
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        buf.push(batch(vec![error(span(1, 0)), span(2, 0)]), &p, t0);
        buf.due(&p, t0 + Duration::from_secs(2));
        assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 1);
        buf.push(
            batch(vec![span(1, 5), span(2, 5), span(2, 6)]),
            &p,
            t0 + Duration::from_secs(3),
        );
        let late = buf.take_output().unwrap();
        assert_eq!(
            spans_of(&late).len(),
            1,
            "trace 1 was kept, so its late span is too"
        );
        assert_eq!(spans_of(&late)[0].span_id, span(1, 5).span_id);
        assert_eq!((buf.report.late_kept, buf.report.late_dropped), (1, 2));
        assert_eq!(buf.traces(), 0, "late spans are not held again");
    }

    #[test]
    fn held_spans_keep_their_records_open_until_decided_and_delivered() {
        use crate::ticket::{testing::Completed, Ticket};
        let p = errors_and_slow();
        let sink = Arc::new(Completed::default());
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        buf.push(
            batch(vec![error(span(1, 0)), span(2, 0)]).with_ticket(Ticket::new(1, sink.clone())),
            &p,
            t0,
        );
        buf.push(
            batch(vec![span(2, 1)]).with_ticket(Ticket::new(2, sink.clone())),
            &p,
            t0,
        );
        assert!(buf.take_output().is_none());
        assert!(sink.seqs().is_empty(), "held spans keep both records open");
        buf.due(&p, t0 + Duration::from_secs(2));
        assert_eq!(sink.seqs(), vec![2], "record 2 only fed a dropped trace");
        let out = buf.take_output().unwrap();
        assert_eq!(
            out.tickets().iter().map(Ticket::seq).collect::<Vec<_>>(),
            vec![1]
        );
        drop(out);
        assert_eq!(
            sink.seqs(),
            vec![1, 2],
            "delivered output completes record 1"
        );
    }

    #[test]
    fn a_million_open_traces_stay_within_the_bounds_and_every_span_is_accounted() {
        let mut p = errors_and_slow();
        p.max_traces = 20_000;
        p.max_bytes = 8 << 20;
        p.cache_size = 50_000;
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        let (mut kept, mut decided, mut peak_traces, mut peak_bytes) = (0, 0, 0, 0);
        for chunk in 0..1000u64 {
            // Child spans only: no trace ever reaches its root trigger; every 100th errs.
            let spans = (0..1000)
                .map(|i| {
                    let t = chunk * 1000 + i;
                    if t % 100 == 0 {
                        error(span(t, 1))
                    } else {
                        span(t, 1)
                    }
                })
                .collect();
            buf.push(batch(spans), &p, t0);
            peak_traces = peak_traces.max(buf.traces());
            peak_bytes = peak_bytes.max(buf.bytes());
            if let Some(b) = buf.take_output() {
                kept += b.items();
            }
            decided += std::mem::take(&mut buf.report.decided).len();
        }
        assert!(peak_traces <= 20_000, "{peak_traces} traces held");
        assert!(peak_bytes <= 8 << 20, "{peak_bytes} bytes held");
        buf.flush(&p, t0);
        kept += buf.take_output().map_or(0, |b| b.items());
        decided += buf.report.decided.len();
        assert_eq!(
            decided, 1_000_000,
            "every trace decided, none evicted unseen"
        );
        assert_eq!(kept, 10_000, "exactly the erring traces kept");
        assert!(buf.cached() <= 50_000);
        assert!(buf.by_first.len() <= 2 * buf.traces() + 1024);
    }

    #[test]
    fn flush_decides_everything_and_disabled_passes_through() {
        let p = errors_and_slow();
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        buf.push(batch(vec![error(span(1, 1)), span(2, 1)]), &p, t0);
        // A reload switches tail sampling off: what is held goes out kept, new spans pass straight.
        let off = TailPolicy::disabled();
        buf.push(batch(vec![span(3, 1)]), &off, t0);
        let out = buf.take_output().unwrap();
        assert_eq!(spans_of(&out).len(), 3);
        assert!(
            spans_of(&out).iter().all(|s| s.attributes.is_empty()),
            "no policy to name"
        );
        assert_eq!(buf.traces(), 0);
    }

    #[test]
    fn spans_without_a_trace_pass_through() {
        let p = errors_and_slow();
        let mut buf = TailBuffer::default();
        let mut zero = span(1, 0);
        zero.trace_id = vec![0; 16];
        buf.push(batch(vec![zero.clone(), zero]), &p, Instant::now());
        assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 2);
        assert_eq!(buf.traces(), 0);
    }

    #[test]
    fn a_reload_keeps_held_spans_and_decides_them_under_the_new_rules() {
        let p = errors_and_slow();
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        buf.push(batch(vec![span(1, 0), span(1, 1)]), &p, t0);
        let everything = policy(vec![("all", Condition::Any)]);
        buf.due(&everything, t0 + Duration::from_secs(1));
        assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 2);
    }
}
