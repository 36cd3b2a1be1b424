//! The five metric tables (`otel_metrics_<suffix>`): the head of columns every one starts with, then
//! each table's own columns, and [`MetricTable`] to name a table and find its columns.

use super::{col, Column, Kind, ZSTD};

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
