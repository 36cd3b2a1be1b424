//! The stage that counts: it reads each batch and changes nothing, so it can stand anywhere before
//! sampling without the tap or later stages noticing.

use super::key::KeyRef;
use super::{lock, shard, SpanMetrics};
use crate::attrs;
use crate::batch::Batch;
use crate::signal::Traces;
use crate::stage::Stage;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct SpanMetricsStage {
    metrics: Arc<SpanMetrics>,
}

impl SpanMetrics {
    /// The stage for the traces chain. When the last one is dropped (the workers holding the chain
    /// have ended), the flusher makes its final flush.
    pub fn stage(self: &Arc<Self>) -> SpanMetricsStage {
        self.stages.fetch_add(1, Ordering::AcqRel);
        SpanMetricsStage {
            metrics: self.clone(),
        }
    }

    /// Counts every span of `resources` into this thread's shard.
    pub fn record(&self, resources: &[ResourceSpans]) {
        let dims = &self.dimensions;
        // Per batch, and only with dimensions configured: the per-span key borrows from these.
        let mut resource_dims: Vec<Option<&Value>> = Vec::with_capacity(dims.len());
        let mut span_dims: Vec<Option<&Value>> = Vec::with_capacity(dims.len());
        let mut overflowed = 0u64;
        let mut shard = lock(&self.shards[shard::index(self.shards.len())]);
        for rs in resources {
            let resource = rs.resource.as_ref();
            let service = attrs::service_name(resource);
            resource_dims.clear();
            resource_dims.extend(dims.iter().map(|d| value(attrs::of(resource), d)));
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                span_dims.clear();
                span_dims.extend(
                    dims.iter()
                        .zip(&resource_dims)
                        .map(|(d, r)| value(&span.attributes, d).or(*r)),
                );
                let status = span.status.as_ref().map_or(0, |s| s.code);
                let key = KeyRef {
                    service,
                    name: &span.name,
                    // Out-of-range numbers would make series that print the same as `unspecified`.
                    kind: if (0..=5).contains(&span.kind) {
                        span.kind
                    } else {
                        0
                    },
                    status: if (0..=2).contains(&status) { status } else { 0 },
                    dims: &span_dims,
                };
                let ns = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano);
                overflowed += u64::from(shard.record(&key, ns, &self.bounds_ns, &self.table));
            }
        }
        drop(shard);
        if overflowed > 0 {
            self.overflowed.add(overflowed);
        }
    }

    /// Marks the inputs finished once no stage is left.
    fn stage_dropped(&self) {
        if self.stages.fetch_sub(1, Ordering::AcqRel) == 1 {
            *lock(&self.inputs_done.0) = true;
            self.inputs_done.1.notify_all();
        }
    }
}

/// An attribute's value; an attribute set to nothing counts as absent.
fn value<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

impl Stage<Traces> for SpanMetricsStage {
    fn name(&self) -> &'static str {
        "span_metrics"
    }

    fn apply(&self, batch: &mut Batch<Traces>) {
        self.metrics.record(&batch.resources);
    }
}

impl Drop for SpanMetricsStage {
    fn drop(&mut self) {
        self.metrics.stage_dropped();
    }
}
