//! What operators write: Weir's configuration.
//!
//! # Layout
//! One file per section of the YAML, each holding its structs, the defaults that are product
//! decisions (next to the field they belong to), and its validation:
//! - [`model`]: the root [`Config`], `reload`, `log`, `memory_limit`, and [`Config::validate`], which
//!   calls every section's checks.
//! - [`common`]: the words sections share: [`SignalKind`], [`QueueLimits`].
//! - [`receivers`]: gRPC and HTTP receivers, their TLS, ingest authentication.
//! - [`pipeline`]: intake queue and normalisation; [`pipeline::sample`] (head sampling, log rules,
//!   rate limits) and [`pipeline::tail`] (tail sampling).
//! - [`redact`]: the redaction stage's rules and detectors.
//! - [`span_metrics`]: request, error and duration metrics from every span, before sampling.
//! - [`exporters`]: delivery settings every exporter shares, and one module per destination.
//! - [`durable`]: the write-ahead log. [`admin`]: the admin endpoint.
//! - [`units`]: byte sizes (`16MiB`) and durations (`200ms`) as they appear in YAML.
//! - [`env`]: `${VAR}` / `${VAR:-default}` substitution on the raw text, before parsing.
//! - [`load`]: substitute, parse, validate, with errors that name the file, line and key path.
//!
//! This crate knows nothing of tokio or of the pipeline: it only turns text into checked values.

pub mod admin;
mod check;
pub mod common;
pub mod durable;
pub mod env;
pub mod exporters;
pub mod load;
pub mod model;
pub mod pipeline;
pub mod receivers;
pub mod redact;
pub mod span_metrics;
pub mod units;

pub use admin::AdminConfig;
pub use common::{QueueLimits, SignalKind};
pub use durable::{DurableConfig, Fsync, WhenFull};
pub use exporters::clickhouse::{ClickHouseCompression, ClickHouseExporter, ClickHouseLayout};
pub use exporters::file::FileExporter;
pub use exporters::loki::{LineFormat, LokiEncoding, LokiExporter, MetadataMode, OversizeLine};
pub use exporters::otlp::{OtlpCompression, OtlpExporter, OtlpProtocol, Routing};
pub use exporters::transport::TlsClient;
pub use exporters::{
    BatchConfig, Batching, BlackholeExporter, ExporterConfig, ExporterKind, ExporterQueue,
    Overflow, RetryConfig,
};
pub use load::{load_file, parse, ConfigError};
pub use model::{Config, LogConfig, LogFormat, ReloadConfig};
pub use pipeline::sample::{
    LogRuleConfig, LogSampling, RateLimitConfig, SampleConfig, Severity, TraceSampling,
};
pub use pipeline::tail::{
    AttributeMatch, BytesRange, CountRange, NumericMatch, StatusCodeName, TailLogs,
    TailPolicyConfig, TailSamplingConfig,
};
pub use pipeline::{InvalidSpans, NormalizeConfig, PipelineConfig};
pub use receivers::{AuthConfig, GrpcReceiver, HttpReceiver, Receivers, TlsServer, TokenConfig};
pub use span_metrics::SpanMetricsConfig;
pub use units::{ByteSize, Duration};

/// The configuration `weir` runs when started without `--config`; identical to `examples/default.yaml`.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../examples/default.yaml");
