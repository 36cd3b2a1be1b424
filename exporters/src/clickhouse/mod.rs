//! ClickHouse: the OpenTelemetry Collector's table layout (so Grafana, ClickStack and existing dashboards
//! work unchanged) and a portable layout for servers without `Map`/`DateTime64`, both described by one
//! column table and written as RowBinary straight from the OTLP batch.
//!
//! # Layout
//! - [`columns`]: the OTLP field → column table, as data, per signal.
//! - [`rowbinary`]: the RowBinary wire primitives and OTLP value stringification.
//! - [`encode`]: a batch → RowBinary rows for a layout.
//! - [`schema`]: `CREATE TABLE` statements for a layout, database, TTL and cluster.
//!
//! The HTTP transport, retries and the exporter wiring come next (issue 3); this part is pure and
//! benchmarked on its own.

pub mod columns;
pub mod encode;
pub mod rowbinary;
pub mod schema;

/// Which column layout a server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The OpenTelemetry Collector's tables: `Map`, `DateTime64(9)`, codecs, skip indexes.
    Modern,
    /// For servers without `Map`/`DateTime64` (e.g. 18.x): maps as parallel key/value arrays, time as
    /// `DateTime` seconds plus a nanosecond `UInt64`.
    Portable,
}
