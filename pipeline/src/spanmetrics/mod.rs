//! Span metrics (`pipeline.span_metrics`): calls, errors and a duration histogram per service, span
//! name, kind, status code and configured dimensions, counted from every span **before** head or tail
//! sampling drops any, and emitted as cumulative OTLP metrics into the metrics pipeline. Sampling
//! then only decides which spans are stored; request rates, error rates and latency percentiles stay
//! exact however much is sampled away.
//!
//! Why it is built this way:
//! - **A stage, not a tap on the exporters**: it sits in the traces chain after normalisation (so ids
//!   and kinds are canonical) and before sampling, and sees each batch in place without copying it.
//! - **Shards** ([`shard`]): each stage worker counts into its own shard under a lock only it takes,
//!   once per batch; the flusher sums the shards every `interval`. A span of a series the shard knows
//!   is one hash lookup by borrowed key ([`key`]) and three additions, no allocation.
//! - **Cumulative, with a fixed start time**: a flush carries totals, not deltas, so a flush dropped
//!   because the metrics queue was full (`weir_span_metrics_dropped_flushes_total`) loses nothing for
//!   good: the next one carries the same counts and more.
//! - **Bounded**: at most `max_series` series exist; spans of any further series fold into one
//!   overflow series labelled `otel.metric.overflow=true`, counted in
//!   `weir_span_metrics_overflow_total`. Memory is about `(buckets + 4) × 8` bytes per series per
//!   shard, plus each series' key once.
//!
//! Settings take effect at start; a reload does not change them.

mod emit;
mod flush;
pub mod key;
mod shard;
mod stage;
#[cfg(test)]
mod tests;

pub use emit::{Snapshot, OVERFLOW_ATTRIBUTE};
pub use shard::Cell;
pub use stage::SpanMetricsStage;

use crate::metrics::{Counter, Registry};
use shard::{Shard, Table};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weir_config::SpanMetricsConfig;

/// Most shards: past this, workers share them (still one lock per batch, rarely contended), and
/// memory per series stops growing with the core count.
pub const MAX_SHARDS: usize = 16;

pub struct SpanMetrics {
    interval: Duration,
    dimensions: Vec<String>,
    bounds_ns: Box<[u64]>,
    bounds_ms: Box<[f64]>,
    calls_name: String,
    duration_name: String,
    start_unix_nano: u64,
    table: Table,
    shards: Box<[Mutex<Shard>]>,
    overflowed: Counter,
    dropped_flushes: Counter,
    /// Live stages; when the last is dropped the traces pipeline has drained and the flusher makes
    /// its final flush.
    stages: AtomicUsize,
    inputs_done: (Mutex<bool>, Condvar),
}

impl SpanMetrics {
    /// `shards` is usually the number of stage workers.
    pub fn new(config: &SpanMetricsConfig, registry: &Registry, shards: usize) -> Arc<Self> {
        let bounds_ns: Box<[u64]> = config
            .buckets
            .iter()
            .map(|d| u64::try_from(d.0.as_nanos()).unwrap_or(u64::MAX))
            .collect();
        let bounds_ms = bounds_ns.iter().map(|ns| *ns as f64 / 1e6).collect();
        let shards = shards.clamp(1, MAX_SHARDS);
        let metrics = Arc::new(SpanMetrics {
            interval: config.interval.0,
            dimensions: config.dimensions.clone(),
            shards: (0..shards)
                .map(|_| Mutex::new(Shard::new(bounds_ns.len())))
                .collect(),
            bounds_ns,
            bounds_ms,
            calls_name: format!("{}.calls", config.namespace),
            duration_name: format!("{}.duration", config.namespace),
            start_unix_nano: unix_nano(SystemTime::now()),
            table: Table::new(config.max_series),
            overflowed: registry.counter(
                "weir_span_metrics_overflow_total",
                "Spans counted in the span-metrics overflow series because max_series series already existed.",
                &[],
            ),
            dropped_flushes: registry.counter(
                "weir_span_metrics_dropped_flushes_total",
                "Span-metrics flushes the metrics intake queue had no room for; totals are cumulative, so the next flush carries them.",
                &[],
            ),
            stages: AtomicUsize::new(0),
            inputs_done: (Mutex::new(false), Condvar::new()),
        });
        let m = Arc::downgrade(&metrics);
        registry.gauge_fn(
            "weir_span_metrics_series",
            "Distinct span-metrics series (max_series at most; the overflow series not counted).",
            &[],
            move || m.upgrade().map_or(0.0, |m| m.series() as f64),
        );
        metrics
    }

    /// Distinct series so far, the overflow series not counted.
    pub fn series(&self) -> usize {
        self.table.len()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Every series' totals now, summed over the shards.
    pub fn snapshot(&self) -> Snapshot {
        let mut totals = Vec::new();
        let mut overflow = Cell::new(self.bounds_ns.len());
        for shard in self.shards.iter() {
            lock(shard).sum_into(&mut totals, &mut overflow);
        }
        let keys = self.table.keys(totals.len());
        let series = keys
            .into_iter()
            .zip(totals)
            .filter_map(|(k, c)| Some((k, c?)))
            .collect();
        Snapshot {
            series,
            overflow: (overflow.calls > 0).then_some(overflow),
        }
    }

    /// The snapshot as OTLP, stamped `now`; empty until a span has been counted.
    pub fn resource_metrics(
        &self,
        now: SystemTime,
    ) -> Vec<opentelemetry_proto::tonic::metrics::v1::ResourceMetrics> {
        let layout = emit::Names {
            calls: &self.calls_name,
            duration: &self.duration_name,
            dimensions: &self.dimensions,
            bounds_ms: &self.bounds_ms,
            start_unix_nano: self.start_unix_nano,
        };
        layout.resource_metrics(self.snapshot(), unix_nano(now))
    }
}

fn unix_nano(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
