//! Tail sampling for traces, and with `logs: with_trace` for the log records that carry a trace id: a
//! component of its own, not a stage, because it holds items across batches. Stage workers of both
//! signals hand their batches to one thread through one bounded queue; that thread owns the
//! [`buffer::TailBuffer`] (no locks on the data path), decides traces when they fall due and hands kept
//! spans and logs on as batches. Its policy is the `tail` of the [`PolicySet`] every chain runs under
//! (one [`HotSwap`]), loaded once per turn of its loop: a reload changes the rules and bounds with
//! the stage policies in one store, while the held items, the decision cache and the budget buckets
//! stay.
//!
//! Metrics: `weir_tail_traces_total{decision, policy, trigger, version}` per decided trace (`version`:
//! the policy version that decided; decision `keep`,
//! `drop` when no policy matched or a `drop` policy did (then named), `over_budget` when only spent
//! policies matched), `weir_sampled_out_items_total{signal, rule="tail"}` per dropped span or log
//! record (late ones included), `weir_tail_late_spans_total{decision}` and
//! `weir_tail_late_logs_total{decision}`, and gauges of held
//! traces, bytes and cached decisions.
//!
//! - [`buffer`]: what is held, the timelines and the decision cache (one thread's state).
//! - [`condition`] and [`policy`]: what a policy asks of a trace, and the first-match verdict.
//! - [`output`]: held items with their resource and scope, regrouped into batches when kept.
//! - [`divert`]: which log records the logs workers send here.

pub mod buffer;
pub mod condition;
pub mod divert;
pub mod output;
pub mod policy;

use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::{Counter, Registry};
use crate::policy::PolicySet;
use crate::queue::{Receiver, RecvError, Weighted};
use crate::signal::{Logs, Traces};
use crate::stages::sample::SampledOut;
use buffer::{Late, TailBuffer, Trigger};
use policy::{TailPolicy, Verdict};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct TailSampler {
    policies: Arc<HotSwap<PolicySet>>,
}

impl TailSampler {
    /// A sampler that decides under the `tail` of whatever set `policies` holds at the time.
    pub fn new(policies: Arc<HotSwap<PolicySet>>) -> Arc<Self> {
        Arc::new(TailSampler { policies })
    }

    /// The tail policy live now.
    pub fn policy(&self) -> Arc<TailPolicy> {
        self.policies.load().tail.clone()
    }

    /// Starts the sampler thread. It ends when `input` is closed and drained, after deciding every
    /// trace it still holds; `out` receives the kept spans and log records.
    pub fn spawn(
        self: &Arc<Self>,
        input: Receiver<TailInput>,
        registry: &Arc<Registry>,
        mut out: impl Outlets + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let sampler = self.clone();
        let mut metrics = TailMetrics::new(registry);
        std::thread::Builder::new()
            .name("weir-tail".into())
            .spawn(move || {
                let mut buffer = TailBuffer::default();
                let mut seen = sampler.policies.load().version;
                loop {
                    let set = sampler.policies.load_full();
                    let policy = &*set.tail;
                    if set.version != seen {
                        seen = set.version;
                        buffer.retain_budgets(policy);
                    }
                    let closed = match input.recv_blocking_until(buffer.next_deadline(policy)) {
                        Ok(TailInput::Spans(batch)) => {
                            buffer.push(batch, policy, Instant::now());
                            false
                        }
                        Ok(TailInput::Logs(batch)) => {
                            buffer.push(batch, policy, Instant::now());
                            false
                        }
                        Err(RecvError::Timeout) => false,
                        Err(RecvError::Closed) => true,
                    };
                    if closed {
                        buffer.flush(policy, Instant::now());
                    } else {
                        buffer.due(policy, Instant::now());
                    }
                    if let Some(batch) = buffer.take_output() {
                        out.spans(batch);
                    }
                    if let Some(batch) = buffer.take_logs() {
                        out.logs(batch);
                    }
                    metrics.record(&mut buffer, set.version);
                    if closed {
                        return;
                    }
                }
            })
    }
}

/// What the workers hand the tail sampler.
pub enum TailInput {
    Spans(Batch<Traces>),
    /// Log records that carry a trace id (`logs: with_trace`).
    Logs(Batch<Logs>),
}

impl Weighted for TailInput {
    fn items(&self) -> usize {
        match self {
            TailInput::Spans(b) => b.items(),
            TailInput::Logs(b) => b.items(),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            TailInput::Spans(b) => b.bytes(),
            TailInput::Logs(b) => b.bytes(),
        }
    }
}

/// Where kept items go: the exporters of each signal.
pub trait Outlets {
    fn spans(&mut self, batch: Batch<Traces>);
    fn logs(&mut self, batch: Batch<Logs>);
}

/// Counters for one signal's side of the tail sampler.
struct SignalCounters {
    sampled_out: SampledOut,
    late_kept: Counter,
    late_dropped: Counter,
}

impl SignalCounters {
    fn new(registry: &Arc<Registry>, signal: &'static str) -> Self {
        let (name, help) = match signal {
            "logs" => (
                "weir_tail_late_logs_total",
                "Log records that arrived after their trace was decided and followed that decision.",
            ),
            _ => (
                "weir_tail_late_spans_total",
                "Spans that arrived after their trace was decided and followed that decision.",
            ),
        };
        let late = |decision| registry.counter(name, help, &[("decision", decision)]);
        SignalCounters {
            sampled_out: SampledOut::new(registry, signal, "tail"),
            late_kept: late("keep"),
            late_dropped: late("drop"),
        }
    }

    /// Late records follow their trace's earlier decision but are counted under `version`, the one
    /// live when they were dropped.
    fn record(&self, version: u64, dropped_in_decisions: u64, late: Late) {
        self.sampled_out
            .add(version, dropped_in_decisions + late.dropped);
        self.late_kept.add(late.kept);
        self.late_dropped.add(late.dropped);
    }
}

struct TailMetrics {
    registry: Arc<Registry>,
    decisions: HashMap<(&'static str, Arc<str>, Trigger, u64), Counter>,
    spans: SignalCounters,
    logs: SignalCounters,
    traces: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    cached: Arc<AtomicU64>,
}

impl TailMetrics {
    fn new(registry: &Arc<Registry>) -> Self {
        let gauge = |name, help| {
            let v = Arc::new(AtomicU64::new(0));
            let read = v.clone();
            registry.gauge_fn(name, help, &[], move || read.load(Ordering::Relaxed) as f64);
            v
        };
        TailMetrics {
            decisions: HashMap::new(),
            spans: SignalCounters::new(registry, "traces"),
            logs: SignalCounters::new(registry, "logs"),
            traces: gauge("weir_tail_traces", "Traces held by the tail sampler."),
            bytes: gauge(
                "weir_tail_bytes",
                "Bytes held by the tail sampler, as counted against max_bytes.",
            ),
            cached: gauge(
                "weir_tail_decision_cache_traces",
                "Decided trace ids remembered for late spans and logs.",
            ),
            registry: registry.clone(),
        }
    }

    /// `version`: the policy version the decisions in `buffer`'s report were made under.
    fn record(&mut self, buffer: &mut TailBuffer, version: u64) {
        let report = std::mem::take(&mut buffer.report);
        let (mut spans_out, mut logs_out) = (0, 0);
        for d in report.decided {
            let (decision, policy) = match d.verdict {
                Verdict::Keep(name) => ("keep", name),
                Verdict::NoMatch => ("drop", Arc::from("none")),
                Verdict::Dropped(name) => ("drop", name),
                Verdict::OverBudget(name) => ("over_budget", name),
            };
            if decision != "keep" {
                spans_out += d.spans as u64;
                logs_out += d.logs as u64;
            }
            let registry = &self.registry;
            self.decisions
                .entry((decision, policy.clone(), d.trigger, version))
                .or_insert_with(|| {
                    registry.counter(
                        "weir_tail_traces_total",
                        "Traces the tail sampler decided, by decision, policy, what triggered it and the policy version that decided.",
                        &[
                            ("decision", decision),
                            ("policy", &policy),
                            ("trigger", d.trigger.as_str()),
                            ("version", &version.to_string()),
                        ],
                    )
                })
                .inc();
        }
        self.spans.record(version, spans_out, report.late_spans);
        self.logs.record(version, logs_out, report.late_logs);
        self.traces.store(buffer.traces() as u64, Ordering::Relaxed);
        self.bytes.store(buffer.bytes() as u64, Ordering::Relaxed);
        self.cached.store(buffer.cached() as u64, Ordering::Relaxed);
    }
}
