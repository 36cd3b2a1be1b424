//! Wiring for `pipeline.span_metrics` (the computation is `weir_pipeline::spanmetrics`): its stage
//! joins the traces chain before sampling, and its flusher feeds the metrics pipeline, which is built
//! after the traces one, so the two halves meet through [`Policies`].
//!
//! Shutdown order matters: the metrics intake stays open after the others close, until the traces
//! workers have ended (their chain, and with it the stage, is dropped) and the flusher has sent its
//! final totals; then the flusher closes it. So a clean shutdown loses no counted span.

use crate::intake::Intake;
use crate::reload::Policies;
use std::sync::Arc;
use weir_config::Config;
use weir_pipeline::metrics::Registry;
use weir_pipeline::spanmetrics::{SpanMetrics, SpanMetricsStage};

/// The counting stage, when `pipeline.span_metrics` is set; made once per process.
pub fn stage(
    config: &Config,
    registry: &Registry,
    policies: &Policies,
) -> Option<SpanMetricsStage> {
    let settings = config.pipeline.span_metrics.as_ref()?;
    // One shard per stage worker, so no two workers share a lock.
    let workers = match config.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let metrics = policies
        .span_metrics
        .get_or_init(|| SpanMetrics::new(settings, registry, workers));
    Some(metrics.stage())
}

/// Starts the flusher once the metrics pipeline exists; `None` without span metrics. The caller joins
/// its thread at shutdown with the pipelines' workers.
pub fn start(
    policies: &Policies,
    intake: &Arc<Intake>,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    let Some(metrics) = policies.span_metrics.get() else {
        return Ok(None);
    };
    let Some(queue) = intake.metrics.queue().cloned() else {
        // Validation refuses this; kept for configs built without it.
        anyhow::bail!("pipeline.span_metrics: no exporter takes metrics, so they would go nowhere");
    };
    let closer = intake.clone();
    let flusher = metrics.spawn_flusher(queue, move || closer.metrics.close())?;
    tracing::info!(
        interval = ?metrics.interval(),
        "span metrics: counting every span before sampling"
    );
    Ok(Some(flusher))
}
