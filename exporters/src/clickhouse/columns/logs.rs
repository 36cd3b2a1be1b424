//! The `otel_logs` table: where each column's value comes from, in the collector's column order.

use super::{col, Column, Kind, ZSTD};

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
