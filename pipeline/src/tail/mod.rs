//! Tail sampling for traces: a component of its own, not a stage, because it holds spans across
//! batches. Stage workers hand their batches to one thread through a bounded queue; that thread owns the
//! [`buffer::TailBuffer`] (no locks on the data path), decides traces when they fall due and hands kept
//! spans on as batches. The policy is a [`HotSwap`]: a reload changes the rules and bounds, while the
//! held spans, the decision cache and the budget buckets stay.
//!
//! Metrics: `weir_tail_traces_total{decision, policy, trigger}` per decided trace (decision `keep`,
//! `drop` when no policy matched, `over_budget` when only spent policies matched),
//! `weir_sampled_out_items_total{signal="traces", rule="tail"}` per dropped span (late ones included),
//! `weir_tail_late_spans_total{decision}`, and gauges of held traces, bytes and cached decisions.

pub mod buffer;
pub mod policy;

use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::{Counter, Registry};
use crate::queue::{Receiver, RecvError};
use crate::signal::Traces;
use buffer::{TailBuffer, Trigger};
use policy::{TailPolicy, Verdict};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct TailSampler {
    policy: HotSwap<TailPolicy>,
}

impl TailSampler {
    pub fn new(policy: TailPolicy) -> Arc<Self> {
        Arc::new(TailSampler {
            policy: HotSwap::new(policy),
        })
    }

    pub fn policy(&self) -> &HotSwap<TailPolicy> {
        &self.policy
    }

    /// Starts the sampler thread. It ends when `input` is closed and drained, after deciding every
    /// trace it still holds; `out` receives the kept spans.
    pub fn spawn(
        self: &Arc<Self>,
        input: Receiver<Batch<Traces>>,
        registry: &Arc<Registry>,
        mut out: impl FnMut(Batch<Traces>) + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let sampler = self.clone();
        let mut metrics = TailMetrics::new(registry);
        std::thread::Builder::new()
            .name("weir-tail".into())
            .spawn(move || {
                let mut buffer = TailBuffer::default();
                let mut seen = sampler.policy.version();
                loop {
                    let policy = sampler.policy.load_full();
                    if sampler.policy.version() != seen {
                        seen = sampler.policy.version();
                        buffer.retain_budgets(&policy);
                    }
                    let closed = match input.recv_blocking_until(buffer.next_deadline(&policy)) {
                        Ok(batch) => {
                            buffer.push(batch, &policy, Instant::now());
                            false
                        }
                        Err(RecvError::Timeout) => false,
                        Err(RecvError::Closed) => true,
                    };
                    if closed {
                        buffer.flush(&policy, Instant::now());
                    } else {
                        buffer.due(&policy, Instant::now());
                    }
                    if let Some(batch) = buffer.take_output() {
                        out(batch);
                    }
                    metrics.record(&mut buffer);
                    if closed {
                        return;
                    }
                }
            })
    }
}

struct TailMetrics {
    registry: Arc<Registry>,
    decisions: HashMap<(&'static str, Arc<str>, Trigger), Counter>,
    sampled_out: Counter,
    late_kept: Counter,
    late_dropped: Counter,
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
        let late = |decision| {
            registry.counter(
                "weir_tail_late_spans_total",
                "Spans that arrived after their trace was decided and followed that decision.",
                &[("decision", decision)],
            )
        };
        TailMetrics {
            decisions: HashMap::new(),
            sampled_out: registry.counter(
                "weir_sampled_out_items_total",
                "Items sampling decided not to keep, by signal and rule.",
                &[("signal", "traces"), ("rule", "tail")],
            ),
            late_kept: late("keep"),
            late_dropped: late("drop"),
            traces: gauge("weir_tail_traces", "Traces held by the tail sampler."),
            bytes: gauge(
                "weir_tail_bytes",
                "Bytes held by the tail sampler, as counted against max_bytes.",
            ),
            cached: gauge(
                "weir_tail_decision_cache_traces",
                "Decided trace ids remembered for late spans.",
            ),
            registry: registry.clone(),
        }
    }

    fn record(&mut self, buffer: &mut TailBuffer) {
        let report = std::mem::take(&mut buffer.report);
        for d in report.decided {
            let (decision, policy) = match d.verdict {
                Verdict::Keep(name) => ("keep", name),
                Verdict::NoMatch => ("drop", Arc::from("none")),
                Verdict::OverBudget(name) => ("over_budget", name),
            };
            if decision != "keep" {
                self.sampled_out.add(d.spans as u64);
            }
            let registry = &self.registry;
            self.decisions
                .entry((decision, policy.clone(), d.trigger))
                .or_insert_with(|| {
                    registry.counter(
                        "weir_tail_traces_total",
                        "Traces the tail sampler decided, by decision, policy and what triggered it.",
                        &[
                            ("decision", decision),
                            ("policy", &policy),
                            ("trigger", d.trigger.as_str()),
                        ],
                    )
                })
                .inc();
        }
        self.late_kept.add(report.late_kept);
        self.late_dropped.add(report.late_dropped);
        self.sampled_out.add(report.late_dropped);
        self.traces.store(buffer.traces() as u64, Ordering::Relaxed);
        self.bytes.store(buffer.bytes() as u64, Ordering::Relaxed);
        self.cached.store(buffer.cached() as u64, Ordering::Relaxed);
    }
}
