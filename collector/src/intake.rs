//! The front door of a signal's pipeline, shared by the gRPC and HTTP receivers: drop malformed items
//! (reported in `partial_success`), then enqueue, waiting a bounded time for room. A request is
//! acknowledged only after its batch is in the intake queue — or, in durable mode, committed to the
//! write-ahead log that feeds that queue.

use crate::budget::{Admission, MemoryBudget};
use crate::durable::record::Raw;
use crate::durable::Durable;
use crate::receive::{Accepted, Refused, Transport};
use crate::tenant::Stamp;
use crate::wire::Wire;
use std::sync::Arc;
use std::time::Duration;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::wal::Lifecycle;
use weir_pipeline::{Batch, SendError, Sender};

struct TransportCounters {
    accepted: Counter,
    rejected_malformed: Counter,
    refused_full: Counter,
    refused_closed: Counter,
    refused_no_pipeline: Counter,
    refused_wal_full: Counter,
    refused_wal_error: Counter,
    refused_too_large: Counter,
    refused_memory: Counter,
    tenant_overridden: Counter,
}

impl TransportCounters {
    fn new(registry: &Registry, signal: &str, transport: Transport) -> Self {
        let t = transport.as_str();
        let refused = |reason| {
            registry.counter(
                "weir_receiver_refused_items_total",
                "Items not accepted by a receiver, by reason; the client was told (retryable or partial_success).",
                &[("signal", signal), ("transport", t), ("reason", reason)],
            )
        };
        TransportCounters {
            accepted: registry.counter(
                "weir_receiver_accepted_items_total",
                "Items acknowledged to clients: each is in the intake queue, or committed to the durable log.",
                &[("signal", signal), ("transport", t)],
            ),
            rejected_malformed: refused("malformed_id"),
            refused_full: refused("queue_full"),
            refused_closed: refused("shutting_down"),
            refused_no_pipeline: refused("no_exporter"),
            refused_wal_full: refused("wal_full"),
            refused_wal_error: refused("wal_error"),
            refused_too_large: refused("too_large"),
            refused_memory: registry.counter(
                "weir_receiver_refused_requests_total",
                "Requests refused before their body was read (so their items are unknown), by reason; the client was told to retry.",
                &[("signal", signal), ("transport", t), ("reason", "memory_limit")],
            ),
            tenant_overridden: registry.counter(
                "weir_receiver_tenant_overridden_total",
                "Resources whose client-sent tenant attribute was removed (no authentication) or replaced by the authenticated tenant.",
                &[("signal", signal), ("transport", t)],
            ),
        }
    }
}

pub struct SignalIntake<S: Wire> {
    /// `None` when no exporter takes this signal.
    queue: Option<Sender<Batch<S>>>,
    /// In durable mode the log stands in front of the queue (its reader feeds the queue).
    durable: Option<Durable<S>>,
    enqueue_timeout: Duration,
    grpc: TransportCounters,
    http: TransportCounters,
}

impl<S: Wire> SignalIntake<S> {
    pub fn new(
        queue: Option<Sender<Batch<S>>>,
        durable: Option<Durable<S>>,
        enqueue_timeout: Duration,
        registry: &Arc<Registry>,
    ) -> Self {
        let signal = S::KIND.as_str();
        SignalIntake {
            queue,
            durable,
            enqueue_timeout,
            grpc: TransportCounters::new(registry, signal, Transport::Grpc),
            http: TransportCounters::new(registry, signal, Transport::Http),
        }
    }

    /// Admits one request under the memory limit, or counts its refusal; the client must then be
    /// told to retry (RESOURCE_EXHAUSTED / 429). `hint` is the body's length when it is known.
    pub fn admit(
        &self,
        memory: &Arc<MemoryBudget>,
        transport: Transport,
        hint: Option<usize>,
    ) -> Option<Admission> {
        let admitted = memory.admit(hint);
        if admitted.is_none() {
            self.counters(transport).refused_memory.inc();
        }
        admitted
    }

    fn counters(&self, transport: Transport) -> &TransportCounters {
        match transport {
            Transport::Grpc => &self.grpc,
            Transport::Http => &self.http,
        }
    }

    /// Takes one decoded export request weighing `bytes` in memory (as measured while decoding) and
    /// `encoded` on the wire; `tenant`
    /// says what becomes of its resources' tenant attribute.
    /// In durable mode `raw`, the body as received, is what the log stores.
    pub async fn accept(
        &self,
        request: S::Request,
        bytes: usize,
        encoded: usize,
        transport: Transport,
        tenant: Stamp<'_>,
        raw: Option<Raw>,
    ) -> Result<Accepted, Refused> {
        let counters = self.counters(transport);
        let mut resources = S::into_resources(request);
        let (rejected, message) = S::drop_malformed(&mut resources);
        let overridden = tenant.apply::<S>(&mut resources);
        if overridden > 0 {
            counters.tenant_overridden.add(overridden as u64);
        }
        let accepted = Accepted {
            rejected,
            message: message.unwrap_or_default(),
        };
        let batch = Batch::<S>::received(resources, bytes, encoded);
        if batch.is_empty() {
            counters.rejected_malformed.add(rejected as u64);
            return Ok(accepted);
        }
        let items = batch.items() as u64;
        if let Some(durable) = &self.durable {
            let committed = durable.append(batch, raw, tenant).await;
            match committed {
                Ok(()) => {
                    counters.accepted.add(items);
                    counters.rejected_malformed.add(rejected as u64);
                }
                Err(Refused::Full) => counters.refused_wal_full.add(items),
                Err(Refused::Unavailable) => counters.refused_wal_error.add(items),
                Err(Refused::TooLarge) => counters.refused_too_large.add(items),
                Err(_) => counters.refused_closed.add(items),
            }
            return committed.map(|()| accepted);
        }
        let Some(queue) = &self.queue else {
            counters.refused_no_pipeline.add(items);
            return Err(Refused::NoPipeline);
        };
        let sent = if self.enqueue_timeout.is_zero() {
            queue.try_send(batch).map_err(|e| match e {
                weir_pipeline::TrySendError::Full(b) => SendError::Timeout(b),
                weir_pipeline::TrySendError::Closed(b) => SendError::Closed(b),
            })
        } else {
            queue.send(batch, Some(self.enqueue_timeout)).await
        };
        match sent {
            Ok(()) => {
                counters.accepted.add(items);
                // Counted only now: a refused request is retried whole, and would count twice.
                counters.rejected_malformed.add(rejected as u64);
                Ok(accepted)
            }
            Err(SendError::Timeout(_)) => {
                counters.refused_full.add(items);
                Err(Refused::Full)
            }
            Err(SendError::Closed(_)) => {
                counters.refused_closed.add(items);
                Err(Refused::Closed)
            }
        }
    }

    /// Stops accepting: later requests are refused as shutting down, queued batches still drain.
    pub fn close(&self) {
        if let Some(d) = &self.durable {
            d.close();
        } else if let Some(q) = &self.queue {
            q.close();
        }
    }

    pub fn durable(&self) -> Option<&Durable<S>> {
        self.durable.as_ref()
    }

    /// The pipeline's intake queue itself, for a producer inside Weir (span metrics), which
    /// skips the durable log: what it sends is derived, and recomputed after a restart.
    pub fn queue(&self) -> Option<&Sender<Batch<S>>> {
        self.queue.as_ref()
    }
}

/// One intake per signal.
pub struct Intake {
    /// Requests being read or decoded at once, across both receivers; bounds request memory.
    pub request_slots: tokio::sync::Semaphore,
    /// `memory_limit`: requests are admitted only while the process is under it.
    pub memory: Arc<crate::budget::MemoryBudget>,
    pub traces: SignalIntake<weir_pipeline::Traces>,
    pub logs: SignalIntake<weir_pipeline::Logs>,
    pub metrics: SignalIntake<weir_pipeline::Metrics>,
}

impl Intake {
    pub fn close(&self) {
        self.request_slots.close();
        self.traces.close();
        self.logs.close();
        self.metrics.close();
    }

    /// Like [`Intake::close`], but the metrics intake stays open for the span-metrics flusher, which
    /// closes it after its final flush, once the traces pipeline has drained.
    pub fn close_all_but_metrics(&self) {
        self.request_slots.close();
        self.traces.close();
        self.logs.close();
    }

    /// The shutdown deadline passed: durable logs stop handing out and keep what is in flight for
    /// the next start.
    pub fn abandon(&self) {
        self.traces.durable().map(Durable::abandon);
        self.logs.durable().map(Durable::abandon);
        self.metrics.durable().map(Durable::abandon);
    }

    /// Writes the durable logs' last checkpoints; call once the pipelines have drained or given up.
    pub fn finish(&self) {
        self.traces.durable().map(Durable::finish);
        self.logs.durable().map(Durable::finish);
        self.metrics.durable().map(Durable::finish);
    }

    /// Whether accepted requests go through durable logs.
    pub fn durable(&self) -> bool {
        self.traces.durable().is_some()
            || self.logs.durable().is_some()
            || self.metrics.durable().is_some()
    }

    /// Why the process is not ready, if a durable log cannot write.
    pub fn unhealthy(&self) -> Option<&'static str> {
        let bad = [
            self.traces.durable().is_some_and(|d| !d.healthy()),
            self.logs.durable().is_some_and(|d| !d.healthy()),
            self.metrics.durable().is_some_and(|d| !d.healthy()),
        ];
        let dead = [
            self.traces.durable().is_some_and(|d| d.writer_dead()),
            self.logs.durable().is_some_and(|d| d.writer_dead()),
            self.metrics.durable().is_some_and(|d| d.writer_dead()),
        ];
        if dead.contains(&true) {
            return Some("durable log writer thread died (see the log); nothing can be committed");
        }
        bad.contains(&true)
            .then_some("durable log cannot write to disk")
    }
}

/// Lets generic receiver code pick the intake of its signal.
pub trait IntakeFor<S: Wire> {
    fn get(&self) -> &SignalIntake<S>;
}

impl IntakeFor<weir_pipeline::Traces> for Intake {
    fn get(&self) -> &SignalIntake<weir_pipeline::Traces> {
        &self.traces
    }
}
impl IntakeFor<weir_pipeline::Logs> for Intake {
    fn get(&self) -> &SignalIntake<weir_pipeline::Logs> {
        &self.logs
    }
}
impl IntakeFor<weir_pipeline::Metrics> for Intake {
    fn get(&self) -> &SignalIntake<weir_pipeline::Metrics> {
        &self.metrics
    }
}
