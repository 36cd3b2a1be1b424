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

/// Where a `otel_traces` column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanField {
    /// The span's start time.
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    SpanName,
    /// `Unspecified`, `Internal`, `Server`, `Client`, `Producer` or `Consumer`.
    SpanKind,
    ServiceName,
    ResourceAttributes,
    ScopeName,
    ScopeVersion,
    SpanAttributes,
    /// End minus start, in nanoseconds.
    Duration,
    /// `Unset`, `Ok` or `Error`.
    StatusCode,
    StatusMessage,
    Events,
    Links,
}

/// `otel_traces`, in the collector's column order.
pub const SPAN_COLUMNS: &[Column<SpanField>] = &[
    col(
        "Timestamp",
        Kind::Time,
        SpanField::Timestamp,
        "CODEC(Delta(8), ZSTD(1))",
    ),
    col("TraceId", Kind::Str, SpanField::TraceId, ZSTD),
    col("SpanId", Kind::Str, SpanField::SpanId, ZSTD),
    col("ParentSpanId", Kind::Str, SpanField::ParentSpanId, ZSTD),
    col("TraceState", Kind::Str, SpanField::TraceState, ZSTD),
    col("SpanName", Kind::LowStr, SpanField::SpanName, ZSTD),
    col("SpanKind", Kind::LowStr, SpanField::SpanKind, ZSTD),
    col("ServiceName", Kind::LowStr, SpanField::ServiceName, ZSTD),
    col(
        "ResourceAttributes",
        Kind::Attrs,
        SpanField::ResourceAttributes,
        ZSTD,
    ),
    col("ScopeName", Kind::Str, SpanField::ScopeName, ZSTD),
    col("ScopeVersion", Kind::Str, SpanField::ScopeVersion, ZSTD),
    col(
        "SpanAttributes",
        Kind::Attrs,
        SpanField::SpanAttributes,
        ZSTD,
    ),
    col(
        "Duration",
        Kind::UInt64,
        SpanField::Duration,
        "CODEC(T64, ZSTD(1))",
    ),
    col("StatusCode", Kind::LowStr, SpanField::StatusCode, ZSTD),
    col("StatusMessage", Kind::Str, SpanField::StatusMessage, ZSTD),
    col("Events", Kind::Events, SpanField::Events, ZSTD),
    col("Links", Kind::Links, SpanField::Links, ZSTD),
];

const MAP: &str = "Map(LowCardinality(String), String)";

/// The physical columns (name, type) a logical column becomes in `layout`, in insert order.
pub fn physical<F>(c: &Column<F>, layout: Layout) -> Vec<(String, &'static str)> {
    let n = c.name.to_string();
    match (c.kind, layout) {
        (Kind::UInt64, _) => vec![(n, "UInt64")],
        (Kind::UInt32, _) => vec![(n, "UInt32")],
        (Kind::Int32, _) => vec![(n, "Int32")],
        (Kind::Float64, _) => vec![(n, "Float64")],
        (Kind::Bool, Layout::Modern) => vec![(n, "Bool")],
        (Kind::Bool, Layout::Portable) => vec![(n, "UInt8")],
        (Kind::ArrayUInt64, _) => vec![(n, "Array(UInt64)")],
        (Kind::ArrayFloat64, _) => vec![(n, "Array(Float64)")],
        (Kind::Exemplars, Layout::Modern) => vec![
            (
                format!("{n}.FilteredAttributes"),
                "Array(Map(LowCardinality(String), String))",
            ),
            (format!("{n}.TimeUnix"), "Array(DateTime64(9))"),
            (format!("{n}.Value"), "Array(Float64)"),
            (format!("{n}.SpanId"), "Array(String)"),
            (format!("{n}.TraceId"), "Array(String)"),
        ],
        (Kind::Exemplars, Layout::Portable) => vec![
            (format!("{n}FilteredAttributesKeys"), "Array(Array(String))"),
            (
                format!("{n}FilteredAttributesValues"),
                "Array(Array(String))",
            ),
            (format!("{n}TimeUnixNanos"), "Array(UInt64)"),
            (format!("{n}Value"), "Array(Float64)"),
            (format!("{n}SpanId"), "Array(String)"),
            (format!("{n}TraceId"), "Array(String)"),
        ],
        (Kind::Quantiles, Layout::Modern) => vec![
            (format!("{n}.Quantile"), "Array(Float64)"),
            (format!("{n}.Value"), "Array(Float64)"),
        ],
        (Kind::Quantiles, Layout::Portable) => vec![
            (format!("{n}Quantile"), "Array(Float64)"),
            (format!("{n}Value"), "Array(Float64)"),
        ],
        (Kind::Events, Layout::Modern) => vec![
            (format!("{n}.Timestamp"), "Array(DateTime64(9))"),
            (format!("{n}.Name"), "Array(LowCardinality(String))"),
            (
                format!("{n}.Attributes"),
                "Array(Map(LowCardinality(String), String))",
            ),
        ],
        (Kind::Events, Layout::Portable) => vec![
            (format!("{n}TimestampNanos"), "Array(UInt64)"),
            (format!("{n}Name"), "Array(String)"),
            (format!("{n}AttributesKeys"), "Array(Array(String))"),
            (format!("{n}AttributesValues"), "Array(Array(String))"),
        ],
        (Kind::Links, Layout::Modern) => vec![
            (format!("{n}.TraceId"), "Array(String)"),
            (format!("{n}.SpanId"), "Array(String)"),
            (format!("{n}.TraceState"), "Array(String)"),
            (
                format!("{n}.Attributes"),
                "Array(Map(LowCardinality(String), String))",
            ),
        ],
        (Kind::Links, Layout::Portable) => vec![
            (format!("{n}TraceId"), "Array(String)"),
            (format!("{n}SpanId"), "Array(String)"),
            (format!("{n}TraceState"), "Array(String)"),
            (format!("{n}AttributesKeys"), "Array(Array(String))"),
            (format!("{n}AttributesValues"), "Array(Array(String))"),
        ],
        (Kind::Time, Layout::Modern) => vec![(n, "DateTime64(9)")],
        (Kind::Time, Layout::Portable) => vec![(format!("{n}Nanos"), "UInt64"), (n, "DateTime")],
        (Kind::Str, _) => vec![(n, "String")],
        (Kind::LowStr, Layout::Modern) => vec![(n, "LowCardinality(String)")],
        (Kind::LowStr, Layout::Portable) => vec![(n, "String")],
        (Kind::UInt8, _) => vec![(n, "UInt8")],
        (Kind::Attrs, Layout::Modern) => vec![(n, MAP)],
        (Kind::Attrs, Layout::Portable) => vec![
            (format!("{n}Keys"), "Array(String)"),
            (format!("{n}Values"), "Array(String)"),
        ],
    }
}

/// How a logical column is declared in `CREATE TABLE`: its physical columns, except that the modern
/// layout declares events and links as one `Nested` column, as the collector's tables do.
pub fn ddl_lines<F>(c: &Column<F>, layout: Layout) -> Vec<String> {
    let codec = if layout == Layout::Modern && !c.codec.is_empty() {
        format!(" {}", c.codec)
    } else {
        String::new()
    };
    match (c.kind, layout) {
        (Kind::Events, Layout::Modern) => vec![format!(
            "`{}` Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes {MAP}){codec}",
            c.name
        )],
        (Kind::Links, Layout::Modern) => vec![format!(
            "`{}` Nested (TraceId String, SpanId String, TraceState String, Attributes {MAP}){codec}",
            c.name
        )],
        (Kind::Exemplars, Layout::Modern) => vec![format!(
            "`{}` Nested (FilteredAttributes {MAP}, TimeUnix DateTime64(9), Value Float64, SpanId String, TraceId String){codec}",
            c.name
        )],
        (Kind::Quantiles, Layout::Modern) => vec![format!(
            "`{}` Nested (Quantile Float64, Value Float64){codec}",
            c.name
        )],
        _ => physical(c, layout)
            .into_iter()
            .map(|(name, ty)| format!("`{name}` {ty}{codec}"))
            .collect(),
    }
}

/// The column list for `INSERT INTO t (…) FORMAT RowBinary`, matching what the encoder writes.
pub fn insert_columns<F>(columns: &[Column<F>], layout: Layout) -> String {
    columns
        .iter()
        .flat_map(|c| physical(c, layout))
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a metric table's column value comes from, for one data point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointField {
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ServiceName,
    MetricName,
    MetricDescription,
    MetricUnit,
    Attributes,
    StartTimeUnix,
    TimeUnix,
    /// Gauge and sum: the number as a double.
    Value,
    Flags,
    Exemplars,
    AggregationTemporality,
    IsMonotonic,
    Count,
    Sum,
    BucketCounts,
    ExplicitBounds,
    Min,
    Max,
    Scale,
    ZeroCount,
    PositiveOffset,
    PositiveBucketCounts,
    NegativeOffset,
    NegativeBucketCounts,
    ValueAtQuantiles,
}

/// The columns every metric table starts with.
macro_rules! point_head {
    ($($rest:expr),* $(,)?) => {
        &[
            col("ResourceAttributes", Kind::Attrs, PointField::ResourceAttributes, ZSTD),
            col("ResourceSchemaUrl", Kind::Str, PointField::ResourceSchemaUrl, ZSTD),
            col("ScopeName", Kind::Str, PointField::ScopeName, ZSTD),
            col("ScopeVersion", Kind::Str, PointField::ScopeVersion, ZSTD),
            col("ScopeAttributes", Kind::Attrs, PointField::ScopeAttributes, ZSTD),
            col("ScopeDroppedAttrCount", Kind::UInt32, PointField::ScopeDroppedAttrCount, ZSTD),
            col("ScopeSchemaUrl", Kind::Str, PointField::ScopeSchemaUrl, ZSTD),
            col("ServiceName", Kind::LowStr, PointField::ServiceName, ZSTD),
            col("MetricName", Kind::Str, PointField::MetricName, ZSTD),
            col("MetricDescription", Kind::Str, PointField::MetricDescription, ZSTD),
            col("MetricUnit", Kind::Str, PointField::MetricUnit, ZSTD),
            col("Attributes", Kind::Attrs, PointField::Attributes, ZSTD),
            col("StartTimeUnix", Kind::Time, PointField::StartTimeUnix, DELTA),
            col("TimeUnix", Kind::Time, PointField::TimeUnix, DELTA),
            $($rest),*
        ]
    };
}

const DELTA: &str = "CODEC(Delta, ZSTD(1))";

pub const GAUGE_COLUMNS: &[Column<PointField>] = point_head![
    col("Value", Kind::Float64, PointField::Value, ZSTD),
    col("Flags", Kind::UInt32, PointField::Flags, ZSTD),
    col("Exemplars", Kind::Exemplars, PointField::Exemplars, ZSTD),
];

pub const SUM_COLUMNS: &[Column<PointField>] = point_head![
    col("Value", Kind::Float64, PointField::Value, ZSTD),
    col("Flags", Kind::UInt32, PointField::Flags, ZSTD),
    col("Exemplars", Kind::Exemplars, PointField::Exemplars, ZSTD),
    col(
        "AggregationTemporality",
        Kind::Int32,
        PointField::AggregationTemporality,
        ZSTD
    ),
    col("IsMonotonic", Kind::Bool, PointField::IsMonotonic, DELTA),
];

pub const HISTOGRAM_COLUMNS: &[Column<PointField>] = point_head![
    col("Count", Kind::UInt64, PointField::Count, DELTA),
    col("Sum", Kind::Float64, PointField::Sum, ZSTD),
    col(
        "BucketCounts",
        Kind::ArrayUInt64,
        PointField::BucketCounts,
        ZSTD
    ),
    col(
        "ExplicitBounds",
        Kind::ArrayFloat64,
        PointField::ExplicitBounds,
        ZSTD
    ),
    col("Exemplars", Kind::Exemplars, PointField::Exemplars, ZSTD),
    col("Flags", Kind::UInt32, PointField::Flags, ZSTD),
    col("Min", Kind::Float64, PointField::Min, ZSTD),
    col("Max", Kind::Float64, PointField::Max, ZSTD),
    col(
        "AggregationTemporality",
        Kind::Int32,
        PointField::AggregationTemporality,
        ZSTD
    ),
];

pub const EXP_HISTOGRAM_COLUMNS: &[Column<PointField>] = point_head![
    col("Count", Kind::UInt64, PointField::Count, DELTA),
    col("Sum", Kind::Float64, PointField::Sum, ZSTD),
    col("Scale", Kind::Int32, PointField::Scale, ZSTD),
    col("ZeroCount", Kind::UInt64, PointField::ZeroCount, ZSTD),
    col(
        "PositiveOffset",
        Kind::Int32,
        PointField::PositiveOffset,
        ZSTD
    ),
    col(
        "PositiveBucketCounts",
        Kind::ArrayUInt64,
        PointField::PositiveBucketCounts,
        ZSTD
    ),
    col(
        "NegativeOffset",
        Kind::Int32,
        PointField::NegativeOffset,
        ZSTD
    ),
    col(
        "NegativeBucketCounts",
        Kind::ArrayUInt64,
        PointField::NegativeBucketCounts,
        ZSTD
    ),
    col("Exemplars", Kind::Exemplars, PointField::Exemplars, ZSTD),
    col("Flags", Kind::UInt32, PointField::Flags, ZSTD),
    col("Min", Kind::Float64, PointField::Min, ZSTD),
    col("Max", Kind::Float64, PointField::Max, ZSTD),
    col(
        "AggregationTemporality",
        Kind::Int32,
        PointField::AggregationTemporality,
        ZSTD
    ),
];

pub const SUMMARY_COLUMNS: &[Column<PointField>] = point_head![
    col("Count", Kind::UInt64, PointField::Count, DELTA),
    col("Sum", Kind::Float64, PointField::Sum, ZSTD),
    col(
        "ValueAtQuantiles",
        Kind::Quantiles,
        PointField::ValueAtQuantiles,
        ZSTD
    ),
    col("Flags", Kind::UInt32, PointField::Flags, ZSTD),
];

/// The five metric tables: suffix of `otel_metrics_<suffix>` and its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricTable {
    Gauge,
    Sum,
    Histogram,
    ExponentialHistogram,
    Summary,
}

impl MetricTable {
    pub const ALL: [MetricTable; 5] = [
        MetricTable::Gauge,
        MetricTable::Sum,
        MetricTable::Histogram,
        MetricTable::ExponentialHistogram,
        MetricTable::Summary,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            MetricTable::Gauge => "gauge",
            MetricTable::Sum => "sum",
            MetricTable::Histogram => "histogram",
            MetricTable::ExponentialHistogram => "exponential_histogram",
            MetricTable::Summary => "summary",
        }
    }

    pub fn columns(self) -> &'static [Column<PointField>] {
        match self {
            MetricTable::Gauge => GAUGE_COLUMNS,
            MetricTable::Sum => SUM_COLUMNS,
            MetricTable::Histogram => HISTOGRAM_COLUMNS,
            MetricTable::ExponentialHistogram => EXP_HISTOGRAM_COLUMNS,
            MetricTable::Summary => SUMMARY_COLUMNS,
        }
    }
}
