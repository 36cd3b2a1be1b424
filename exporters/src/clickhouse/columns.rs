//! The OTLP field → column table, as data. Each entry says what a column holds and its logical kind;
//! the kind decides the physical columns and types per [`Layout`], so both layouts (and later
//! user-defined columns) share one encoder and one DDL generator.

use super::Layout;

/// A column's logical kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nanoseconds since the epoch. Modern: `DateTime64(9)`. Portable: `DateTime` + `<name>Nanos UInt64`.
    Time,
    Str,
    /// A low-cardinality string (`LowCardinality(String)` where the server has it).
    LowStr,
    UInt8,
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

/// Where a `otel_logs` column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogField {
    /// The record's time, or its observed time when unset.
    Timestamp,
    TraceId,
    SpanId,
    TraceFlags,
    SeverityText,
    SeverityNumber,
    /// The resource's `service.name`.
    ServiceName,
    Body,
    ResourceSchemaUrl,
    ResourceAttributes,
    ScopeSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    LogAttributes,
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

/// `otel_logs`, in the collector's column order.
pub const LOG_COLUMNS: &[Column<LogField>] = &[
    col(
        "Timestamp",
        Kind::Time,
        LogField::Timestamp,
        "CODEC(Delta(8), ZSTD(1))",
    ),
    col("TraceId", Kind::Str, LogField::TraceId, ZSTD),
    col("SpanId", Kind::Str, LogField::SpanId, ZSTD),
    col("TraceFlags", Kind::UInt8, LogField::TraceFlags, ""),
    col("SeverityText", Kind::LowStr, LogField::SeverityText, ZSTD),
    col("SeverityNumber", Kind::UInt8, LogField::SeverityNumber, ""),
    col("ServiceName", Kind::LowStr, LogField::ServiceName, ZSTD),
    col("Body", Kind::Str, LogField::Body, ZSTD),
    col(
        "ResourceSchemaUrl",
        Kind::LowStr,
        LogField::ResourceSchemaUrl,
        ZSTD,
    ),
    col(
        "ResourceAttributes",
        Kind::Attrs,
        LogField::ResourceAttributes,
        ZSTD,
    ),
    col(
        "ScopeSchemaUrl",
        Kind::LowStr,
        LogField::ScopeSchemaUrl,
        ZSTD,
    ),
    col("ScopeName", Kind::Str, LogField::ScopeName, ZSTD),
    col("ScopeVersion", Kind::LowStr, LogField::ScopeVersion, ZSTD),
    col(
        "ScopeAttributes",
        Kind::Attrs,
        LogField::ScopeAttributes,
        ZSTD,
    ),
    col("LogAttributes", Kind::Attrs, LogField::LogAttributes, ZSTD),
];

/// The physical columns (name, type) a logical column becomes in `layout`, in insert order.
pub fn physical<F>(c: &Column<F>, layout: Layout) -> Vec<(String, &'static str)> {
    let n = c.name.to_string();
    match (c.kind, layout) {
        (Kind::Time, Layout::Modern) => vec![(n, "DateTime64(9)")],
        (Kind::Time, Layout::Portable) => vec![(format!("{n}Nanos"), "UInt64"), (n, "DateTime")],
        (Kind::Str, _) => vec![(n, "String")],
        (Kind::LowStr, Layout::Modern) => vec![(n, "LowCardinality(String)")],
        (Kind::LowStr, Layout::Portable) => vec![(n, "String")],
        (Kind::UInt8, _) => vec![(n, "UInt8")],
        (Kind::Attrs, Layout::Modern) => vec![(n, "Map(LowCardinality(String), String)")],
        (Kind::Attrs, Layout::Portable) => vec![
            (format!("{n}Keys"), "Array(String)"),
            (format!("{n}Values"), "Array(String)"),
        ],
    }
}

/// The column list for `INSERT INTO t (…) FORMAT RowBinary`, matching what the encoder writes.
pub fn insert_columns<F>(columns: &[Column<F>], layout: Layout) -> String {
    columns
        .iter()
        .flat_map(|c| physical(c, layout))
        .map(|(name, _)| name)
        .collect::<Vec<_>>()
        .join(", ")
}
