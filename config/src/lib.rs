//! What operators write: Weir's configuration.
//!
//! # Layout
//! - [`model`]: the plain serde structs, with the defaults that are product decisions.
//! - [`redact`]: the redaction stage's rules and detectors.
//! - [`span_metrics`]: request, error and duration metrics from every span, before sampling.
//! - [`units`]: byte sizes (`16MiB`) and durations (`200ms`) as they appear in YAML.
//! - [`env`]: `${VAR}` / `${VAR:-default}` substitution on the raw text, before parsing.
//! - [`load`]: parse + validate, with errors that name the file, line and key path.
//!
//! This crate knows nothing of tokio or of the pipeline: it only turns text into checked values.

pub mod env;
pub mod load;
pub mod model;
pub mod redact;
pub mod span_metrics;
pub mod units;

pub use load::{load_file, parse, ConfigError};
pub use model::*;
pub use span_metrics::SpanMetricsConfig;
pub use units::{ByteSize, Duration};

/// The configuration `weir` runs when started without `--config`; identical to `examples/default.yaml`.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../examples/default.yaml");
