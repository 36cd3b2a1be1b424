//! Where batches go when they leave the pipeline.
//!
//! # Layout
//! - [`exporter`]: the [`Exporter`] trait: pure `encode` (benchable) and one `send` attempt, with errors
//!   that carry their retry class.
//! - [`delivery`]: the one delivery loop every exporter shares: batching by items, bytes and age,
//!   in-flight limit, retries with jittered backoff, metrics.
//! - [`backoff`]: jittered exponential backoff.
//! - [`file`]: OTLP/JSON lines on local disk with size-based rotation.
//! - [`blackhole`]: accepts and discards, for benchmarks and capacity tests.
//! - [`clickhouse`], [`loki`]: the database and log-store destinations; [`http`] is their shared client.
//! - [`otlp`]: forwarding to other collectors, with trace-aware load balancing over a backend set.
//! - [`text`]: OTLP values as text, the way the collector ecosystem writes them.

pub mod backoff;
pub mod blackhole;
pub mod clickhouse;
pub mod delivery;
pub mod exporter;
pub mod file;
pub mod http;
pub mod loki;
pub mod otlp;
pub mod text;

pub use blackhole::Blackhole;
pub use delivery::{deliver, deliver_once_ready, DeliveryMetrics, DeliverySettings};
pub use exporter::{Encoded, ExportError, Exporter, Retry};
pub use file::JsonLines;
