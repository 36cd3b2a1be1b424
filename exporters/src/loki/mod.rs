//! Grafana Loki: `POST /loki/api/v1/push` with protobuf `PushRequest`s in snappy *block* format,
//! label control on our side, and Loki's retry rules.
//!
//! # Layout
//! - [`proto`]: the push protobuf, hand-written with the field numbers of Loki's `push.proto`
//!   (structured metadata included).
//! - [`labels`]: Prometheus label grammar: name sanitising, Go-compatible value quoting.
//! - [`streams`]: the cardinality guard that keeps distinct streams under a cap.
//! - [`encode`]: records → streams → requests of at most `max_request_bytes` of lines and metadata.
//! - [`exporter`]: the HTTP side: tenant, auth, headers, status classification, `Retry-After`.

pub mod encode;
pub mod exporter;
pub mod labels;
pub mod proto;
pub mod streams;

pub use exporter::Loki;
