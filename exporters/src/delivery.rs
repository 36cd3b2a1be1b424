//! The delivery loop every exporter shares: it owns batching (items, bytes, age), the in-flight limit,
//! retries with jittered backoff, and the exporter metrics. Exporters only encode and send once.
//!
//! The loop ends when its queue is closed and drained and every request in flight has finished, which is
//! how a clean shutdown flushes: close the queue, await the loop (under the caller's deadline).

use crate::backoff::Backoff;
use crate::exporter::{Encoded, Exporter, Retry};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use weir_config::ExporterConfig;
use weir_pipeline::memory::sending::Held;
use weir_pipeline::metrics::{Counter, Histogram, Registry, ITEM_BUCKETS, SECONDS_BUCKETS};
use weir_pipeline::{Batch, Receiver, RecvError, Signal};

#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    pub max_items: usize,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub max_in_flight: usize,
    pub timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
    /// Fed from a write-ahead log: records may be sent again after a crash.
    pub durable: bool,
}

impl DeliverySettings {
    /// `durable`: the pipeline feeding this exporter is backed by a write-ahead log.
    pub fn new(c: &ExporterConfig, durable: bool) -> Self {
        let batch = c.batch();
        DeliverySettings {
            max_items: batch.max_items,
            max_bytes: batch.max_bytes.as_usize(),
            max_age: batch.max_age.0,
            max_in_flight: c.max_in_flight,
            timeout: c.timeout.0,
            initial_backoff: c.retry.initial_backoff.0,
            max_backoff: c.retry.max_backoff.0,
            max_elapsed: c.retry.max_elapsed(durable).0,
            durable,
        }
    }
}

/// Metric handles for one exporter and signal.
#[derive(Clone)]
pub struct DeliveryMetrics {
    pub received_items: Counter,
    pub sent_items: Counter,
    pub sent_requests: Counter,
    pub retries: Counter,
    registry: Arc<Registry>,
    exporter: String,
    signal: &'static str,
    pub batch_items: Histogram,
    pub latency: Histogram,
}

impl DeliveryMetrics {
    pub fn new(registry: &Arc<Registry>, exporter: &str, signal: &'static str) -> Self {
        let l: &[(&'static str, &str)] = &[("exporter", exporter), ("signal", signal)];
        DeliveryMetrics {
            received_items: registry.counter(
                "weir_exporter_received_items_total",
                "Items the exporter's delivery loop took from its queue. Each ends up sent, failed or \
                 dropped (by reason), or is still in weir_exporter_in_flight_items.",
                l,
            ),
            sent_items: registry.counter(
                "weir_exporter_sent_items_total",
                "Items the destination accepted.",
                l,
            ),
            sent_requests: registry.counter(
                "weir_exporter_sent_requests_total",
                "Requests the destination accepted.",
                l,
            ),
            retries: registry.counter(
                "weir_exporter_retries_total",
                "Send attempts that failed and were retried.",
                l,
            ),
            batch_items: registry.histogram(
                "weir_exporter_batch_items",
                "Items per request sent to the destination.",
                l,
                ITEM_BUCKETS,
            ),
            latency: registry.histogram(
                "weir_exporter_send_duration_seconds",
                "Time from the first attempt to the destination's acceptance, retries included.",
                l,
                SECONDS_BUCKETS,
            ),
            registry: registry.clone(),
            exporter: exporter.to_string(),
            signal,
        }
    }

    /// Items given up on, by reason (`retries_exhausted`, `rejected`, `encode`…).
    pub fn failed(&self, reason: &str) -> Counter {
        self.registry.counter(
            "weir_exporter_failed_items_total",
            "Items that could not be delivered and were given up on, by reason.",
            &[
                ("exporter", &self.exporter),
                ("signal", self.signal),
                ("reason", reason),
            ],
        )
    }
}

/// Runs until `queue` is closed and drained and all requests in flight have finished, or until `abort`
/// resolves (the shutdown deadline): then whatever is still pending, in flight or queued is counted as
/// failed with reason `shutdown_deadline` and logged, never dropped silently.
pub async fn deliver<S: Signal, E: Exporter<S>>(
    name: String,
    exporter: Arc<E>,
    queue: Receiver<Batch<S>>,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    abort: impl Future<Output = ()>,
) {
    let outstanding = Arc::new(AtomicUsize::new(0));
    let gauge = Arc::downgrade(&outstanding);
    metrics.registry.gauge_fn(
        "weir_exporter_in_flight_items",
        "Items the delivery loop holds: waiting to fill a request, in flight, or between retries.",
        &[("exporter", &metrics.exporter), ("signal", metrics.signal)],
        move || {
            gauge
                .upgrade()
                .map_or(0.0, |o| o.load(Ordering::Acquire) as f64)
        },
    );
    let mut d = DeliveryLoop {
        permits: Arc::new(Semaphore::new(settings.max_in_flight)),
        in_flight: JoinSet::new(),
        outstanding,
        pending: Batch::default(),
        name,
        exporter,
        settings,
        metrics,
    };
    let aborted = tokio::select! {
        () = d.run(&queue) => false,
        () = abort => true,
    };
    if aborted {
        d.abandon(&queue);
    }
    tracing::debug!(exporter = %d.name, signal = S::KIND.as_str(), aborted, "delivery loop finished");
}

struct DeliveryLoop<S: Signal, E> {
    name: String,
    exporter: Arc<E>,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    permits: Arc<Semaphore>,
    in_flight: JoinSet<()>,
    /// Items taken from the queue whose requests have not all finished (sent, failed or given up):
    /// pending ones included.
    outstanding: Arc<AtomicUsize>,
    /// Items received but not yet dispatched, waiting for the batch to fill or age.
    pending: Batch<S>,
}

impl<S: Signal, E: Exporter<S>> DeliveryLoop<S, E> {
    async fn run(&mut self, queue: &Receiver<Batch<S>>) {
        let mut oldest: Option<Instant> = None;
        loop {
            let next = match oldest {
                None => queue.recv().await.ok_or(RecvError::Closed),
                Some(t) => {
                    let left = self.settings.max_age.saturating_sub(t.elapsed());
                    queue.recv_timeout(left).await
                }
            };
            let closed = match next {
                Ok(mut batch) => {
                    weir_pipeline::tap::exporting(&self.name, &mut batch);
                    self.metrics.received_items.add(batch.items() as u64);
                    self.outstanding.fetch_add(batch.items(), Ordering::AcqRel);
                    // Sent before a batch would overfill it: a request filled past the limits
                    // has to be split, which measures every item's encoded size.
                    let alone = self.keeps_records_apart(&batch);
                    if !self.pending.is_empty() && (alone || !self.room_for(&batch)) {
                        oldest = None;
                        self.dispatch().await;
                    }
                    oldest.get_or_insert_with(Instant::now);
                    self.pending.append(batch);
                    if !alone
                        && self.pending.items() < self.settings.max_items
                        && self.pending.encoded_bytes() < self.settings.max_bytes
                    {
                        continue;
                    }
                    false
                }
                Err(RecvError::Timeout) => false,
                Err(RecvError::Closed) => true,
            };
            if !self.pending.is_empty() {
                oldest = None;
                self.dispatch().await;
            }
            while self.in_flight.try_join_next().is_some() {}
            if closed {
                break;
            }
        }
        while self.in_flight.join_next().await.is_some() {}
    }

    /// A durable record goes out on its own to a destination that deduplicates: merged with whatever
    /// else was waiting, its rows would form a different request after a replay, which the
    /// destination could not recognise. Its own requests are cut the same way every time.
    fn keeps_records_apart(&self, batch: &Batch<S>) -> bool {
        self.settings.durable && self.exporter.deduplicates() && !batch.tickets().is_empty()
    }

    fn room_for(&self, batch: &Batch<S>) -> bool {
        self.pending.items() + batch.items() <= self.settings.max_items
            && self.pending.encoded_bytes() + batch.encoded_bytes() <= self.settings.max_bytes
    }

    async fn dispatch(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        // Merged batches (and the tail sampler's) can exceed what one request may carry; the
        // destination would refuse an oversized request for good.
        for piece in batch.split_to_fit(self.settings.max_items, self.settings.max_bytes) {
            self.dispatch_one(piece).await;
        }
    }

    async fn dispatch_one(&mut self, mut batch: Batch<S>) {
        let items = batch.items();
        // Durable records complete when every request made from them has finished: sent, or given up
        // on and counted.
        let tickets = batch.take_tickets();
        let tickets = (!tickets.is_empty()).then(|| Arc::new(tickets));
        let encoded = self.exporter.encode(batch);
        // Encoding consumed the batch, and most exporters freed it doing so (the OTLP forwarder keeps
        // its resources until sent): let the decode arena reuse those chunks now rather than when this
        // thread next frees into another chunk, which may be long after if it idles.
        weir_pipeline::memory::arena::flush();
        let requests = match encoded {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(exporter = %self.name, error = %e, items, "cannot encode batch; dropping it");
                self.metrics.failed("encode").add(items as u64);
                self.outstanding.fetch_sub(items, Ordering::AcqRel);
                return;
            }
        };
        if requests.is_empty() {
            // Everything was dropped while encoding (and counted by the exporter).
            self.outstanding.fetch_sub(items, Ordering::AcqRel);
            return;
        }
        // The batch leaves the in-flight gauge when its last request finishes.
        let unfinished = Arc::new(AtomicUsize::new(requests.len()));
        // Charged from now, while waiting for a slot too: the receivers keep room for it.
        let requests: Vec<_> = requests
            .into_iter()
            .map(|e| (Held::new(e.bytes), e))
            .collect();
        for (held, encoded) in requests {
            // Waiting here is the backpressure: the queue fills while every slot is busy.
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return;
            };
            let exporter = self.exporter.clone();
            let metrics = self.metrics.clone();
            let settings = self.settings;
            let name = self.name.clone();
            let outstanding = self.outstanding.clone();
            let unfinished = unfinished.clone();
            let tickets = tickets.clone();
            self.in_flight.spawn(async move {
                let request_items = encoded.items;
                let attempt = send_with_retry(&name, &*exporter, encoded, &settings, &metrics);
                if let Err(panic) = AssertUnwindSafe(attempt).catch_unwind().await {
                    // A bug in an exporter must not take the process down, nor pass for delivery:
                    // the items are counted, and a durable record stays incomplete so the next start
                    // replays it.
                    tracing::error!(exporter = %name, kind = exporter.kind(), items = request_items, panic = panic_message(&panic), "exporter panicked while sending; the items were not delivered");
                    metrics.failed("panic").add(request_items as u64);
                    std::mem::forget(tickets);
                } else {
                    drop(tickets);
                }
                drop(held);
                if unfinished.fetch_sub(1, Ordering::AcqRel) == 1 {
                    outstanding.fetch_sub(items, Ordering::AcqRel);
                }
                drop(permit);
            });
        }
    }

    /// Counts and logs everything this loop still held when the shutdown deadline passed.
    fn abandon(&mut self, queue: &Receiver<Batch<S>>) {
        self.in_flight.abort_all();
        let held = self.outstanding.load(Ordering::Acquire);
        abandon_queue(&self.name, queue, &self.metrics, held);
    }
}

/// Counts and logs `held` items plus what `queue` still has as not delivered by the shutdown deadline.
fn abandon_queue<S: Signal>(
    name: &str,
    queue: &Receiver<Batch<S>>,
    metrics: &DeliveryMetrics,
    held: usize,
) {
    let mut lost = held;
    while let Some(batch) = queue.try_recv() {
        lost += batch.items();
    }
    if lost > 0 {
        metrics.failed("shutdown_deadline").add(lost as u64);
        tracing::error!(
            exporter = %name,
            signal = S::KIND.as_str(),
            items = lost,
            "shutdown deadline passed: these items were not delivered"
        );
    }
}

/// [`deliver`] for an exporter still being set up (its destination was unreachable at start):
/// the queue holds what arrives meanwhile, pushing back when full, and delivery starts once `ready`
/// yields the exporter. If `abort` comes first, what the queue holds is counted as not delivered;
/// if the queue closes empty (shutdown with nothing for this exporter), there is nothing to wait for.
pub async fn deliver_once_ready<S: Signal, E: Exporter<S>>(
    name: String,
    ready: impl Future<Output = Arc<E>>,
    queue: Receiver<Batch<S>>,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    abort: impl Future<Output = ()>,
) {
    let mut abort = std::pin::pin!(abort);
    let drained = async {
        // The queue wakes receivers for items, not for closing while empty: polled, only while
        // the destination is unreachable.
        while !queue.is_drained() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let exporter = tokio::select! {
        exporter = ready => exporter,
        () = &mut abort => {
            abandon_queue(&name, &queue, &metrics, 0);
            return;
        }
        () = drained => return,
    };
    deliver(name, exporter, queue, settings, metrics, abort).await;
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

async fn send_with_retry<S: Signal, E: Exporter<S>>(
    name: &str,
    exporter: &E,
    encoded: Encoded<E::Request>,
    settings: &DeliverySettings,
    metrics: &DeliveryMetrics,
) {
    let start = Instant::now();
    let mut backoff = Backoff::new(settings.initial_backoff, settings.max_backoff);
    let items = encoded.items as u64;
    loop {
        let outcome =
            match tokio::time::timeout(settings.timeout, exporter.send(&encoded.request)).await {
                Ok(r) => r,
                Err(_) => Err(crate::ExportError::retryable(
                    "timeout",
                    format!("no answer within {:?}", settings.timeout),
                )),
            };
        let err = match outcome {
            Ok(()) => {
                metrics.sent_items.add(items);
                metrics.sent_requests.inc();
                metrics.batch_items.observe(items as f64);
                metrics.latency.observe(start.elapsed().as_secs_f64());
                return;
            }
            Err(e) => e,
        };
        // Part of a request may have been delivered (an exporter that splits requests says so).
        let failed = err.items.map_or(items, |n| (n as u64).min(items));
        let floor = match err.retry {
            Retry::Never => {
                tracing::error!(exporter = %name, kind = exporter.kind(), error = %err, items = failed, "destination refused the request; not retrying");
                metrics.failed(err.reason).add(failed);
                metrics.sent_items.add(items - failed);
                return;
            }
            Retry::After(floor) => floor,
        };
        let delay = backoff.next_delay(floor);
        if start.elapsed().saturating_add(delay) > settings.max_elapsed {
            tracing::error!(exporter = %name, kind = exporter.kind(), error = %err, items = failed, waited = ?start.elapsed(), "giving up after retrying");
            metrics.failed("retries_exhausted").add(failed);
            metrics.sent_items.add(items - failed);
            return;
        }
        tracing::warn!(exporter = %name, kind = exporter.kind(), error = %err, retry_in = ?delay, "send failed; will retry");
        metrics.retries.inc();
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests;
