//! The OTLP field → column table, as data. Each entry says what a column holds and its logical kind;
//! the kind decides the physical columns and types per [`Layout`], so both layouts (and later
//! user-defined columns) share one encoder and one DDL generator.
//!
//! This module holds the logical kinds and the column type; the tables themselves are one file per
//! signal (`logs`, `spans`, `metrics`: the five metric tables and their shared head), and `layout`
//! turns a logical column into its physical columns, its `CREATE TABLE` lines and the insert column
//! list.

mod layout;
mod logs;
mod metrics;
mod spans;

pub use layout::{ddl_lines, insert_columns, physical};
pub use logs::{LogField, LOG_COLUMNS};
pub use metrics::{
    MetricTable, PointField, EXP_HISTOGRAM_COLUMNS, GAUGE_COLUMNS, HISTOGRAM_COLUMNS,
    SUMMARY_COLUMNS, SUM_COLUMNS,
};
pub use spans::{SpanField, SPAN_COLUMNS};

/// A column's logical kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nanoseconds since the epoch. Modern: `DateTime64(9)`. Portable: `DateTime` + `<name>Nanos UInt64`.
    Time,
    Str,
    /// A low-cardinality string (`LowCardinality(String)` where the server has it).
    LowStr,
    UInt8,
    UInt32,
    UInt64,
    Int32,
    Float64,
    Bool,
    ArrayUInt64,
    ArrayFloat64,
    /// Metric exemplars. Modern: `Nested(FilteredAttributes, TimeUnix, Value, SpanId, TraceId)`.
    Exemplars,
    /// Summary quantiles. Modern: `Nested(Quantile, Value)`.
    Quantiles,
    /// Span events as parallel arrays. Modern: `Nested(Timestamp, Name, Attributes)`.
    Events,
    /// Span links as parallel arrays. Modern: `Nested(TraceId, SpanId, TraceState, Attributes)`.
    Links,
    /// OTLP attributes. Modern: `Map(LowCardinality(String), String)`. Portable: `<name>Keys` and
    /// `<name>Values`, both `Array(String)`.
    Attrs,
}

#[derive(Debug, Clone, Copy)]
pub struct Column<F> {
    pub name: &'static str,
    pub kind: Kind,
    pub field: F,
    /// The modern layout's compression codec, as the collector's tables declare it.
    pub codec: &'static str,
}

const ZSTD: &str = "CODEC(ZSTD(1))";

const fn col<F>(name: &'static str, kind: Kind, field: F, codec: &'static str) -> Column<F> {
    Column {
        name,
        kind,
        field,
        codec,
    }
}
