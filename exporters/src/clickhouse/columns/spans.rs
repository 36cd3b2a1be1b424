//! The `otel_traces` table: where each column's value comes from, in the collector's column order.

use super::{col, Column, Kind, ZSTD};

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
