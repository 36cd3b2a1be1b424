//! ClickHouse: the OpenTelemetry Collector's table layout (so Grafana, ClickStack and existing dashboards
//! work unchanged) and a portable layout for servers without `Map`/`DateTime64`, both described by one
//! column table and written as RowBinary straight from the OTLP batch.
//!
//! # Layout
//! - [`columns`]: the OTLP field → column table, as data, per signal.
//! - [`rowbinary`]: the RowBinary wire primitives and OTLP value stringification.
//! - [`encode`]: a batch → RowBinary rows for a layout.
//! - [`schema`]: `CREATE TABLE` statements for a layout, database, TTL and cluster.
//! - [`client`]: the HTTP interface, compressed blocks, retry classes by error code.
//! - [`exporter`]: start-up checks, one `INSERT` per batch, deduplication tokens.

pub mod client;
pub mod columns;
pub mod encode;
pub mod exporter;
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

pub use exporter::ClickHouse;
