//! What a logical column becomes in each [`Layout`]: its physical columns (name and type), its
//! `CREATE TABLE` lines and the insert column list, so the DDL and the encoder agree by construction.

use super::{Column, Kind};
use crate::clickhouse::Layout;

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
