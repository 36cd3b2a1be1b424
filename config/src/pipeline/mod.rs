//! `pipeline`: what the stage workers run: the intake queue in front of them, normalisation, and the
//! sampling ([`sample`], [`tail`]), redaction and span-metrics sections.

pub mod sample;
pub mod tail;

use crate::check::Invalid;
use crate::common::QueueLimits;
use crate::units::{ByteSize, Duration};
use sample::SampleConfig;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Stage worker threads per signal; 0 means one per core.
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "intake_queue")]
    pub intake_queue: QueueLimits,
    /// How long a request may wait for room in a full intake queue before the client is told to retry.
    #[serde(default = "enqueue_timeout")]
    pub enqueue_timeout: Duration,
    #[serde(default)]
    pub normalize: NormalizeConfig,
    #[serde(default)]
    pub sample: SampleConfig,
    /// Secrets and personal data out of attributes, bodies and (optionally) span names.
    #[serde(default)]
    pub redact: crate::redact::RedactConfig,
    /// Request, error and duration metrics from every span, before sampling; off unless set.
    #[serde(default)]
    pub span_metrics: Option<crate::span_metrics::SpanMetricsConfig>,
}

fn intake_queue() -> QueueLimits {
    QueueLimits {
        max_items: 100_000,
        max_bytes: ByteSize::mib(32),
    }
}

fn enqueue_timeout() -> Duration {
    Duration::millis(200)
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: 0,
            intake_queue: intake_queue(),
            enqueue_timeout: enqueue_timeout(),
            normalize: NormalizeConfig::default(),
            sample: SampleConfig::default(),
            redact: crate::redact::RedactConfig::default(),
            span_metrics: None,
        }
    }
}

/// What becomes of a span whose trace or span id is all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InvalidSpans {
    /// Keep it, marked `weir.trace_context.invalid = true`, so nothing disappears by default.
    #[default]
    Flag,
    /// Drop it (counted).
    Drop,
}

/// W3C trace-context normalisation, on by default.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    #[serde(default = "crate::common::yes")]
    pub enabled: bool,
    #[serde(default)]
    pub invalid_spans: InvalidSpans,
    /// Remove `traceparent`, `b3`, … attributes from log records once their context is filled in.
    #[serde(default)]
    pub remove_source_attributes: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            enabled: true,
            invalid_spans: InvalidSpans::Flag,
            remove_source_attributes: false,
        }
    }
}

/// The sections the stage workers run; span metrics are checked with the whole config, since they
/// need exporters for traces and metrics.
pub(crate) fn check(p: &PipelineConfig) -> Result<(), Invalid> {
    p.intake_queue.check("pipeline.intake_queue")?;
    sample::check(&p.sample)?;
    crate::redact::check(&p.redact)
}
