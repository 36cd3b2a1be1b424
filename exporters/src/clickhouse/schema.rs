//! `CREATE TABLE` statements. The modern layout reproduces the OpenTelemetry Collector's tables (types,
//! codecs, skip indexes, partitioning, ordering); the portable one keeps the same columns in types every
//! ClickHouse since 18.x knows.
//!
//! With a cluster, every statement runs `ON CLUSTER`: the data lives in `<table>_local` tables on a
//! replicated engine, and `<table>` is a `Distributed` table over them, so inserts and queries use the
//! same names as on a single server. Rows are sharded by keys computed from the row alone (see
//! [`logs_shard_key`]): spans by trace id, so a trace stays on one shard, with its logs.

use super::columns::{
    ddl_lines, Column, Kind, LogField, MetricTable, SpanField, LOG_COLUMNS, SPAN_COLUMNS,
};
use super::Layout;

#[derive(Debug, Clone)]
pub struct TableOptions {
    pub database: String,
    pub table: String,
    /// Rows older than this many hours are dropped by ClickHouse (`TTL`); `None` keeps them.
    pub ttl_hours: Option<u32>,
    /// `ON CLUSTER` name; tables become `ReplicatedMergeTree`.
    pub cluster: Option<String>,
}

/// Quotes an identifier with backticks, escaping any inside.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

fn engine(o: &TableOptions) -> String {
    match &o.cluster {
        None => "MergeTree()".into(),
        Some(_) => {
            "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
                .into()
        }
    }
}

/// How many recent inserts a table remembers, so one sent again is stored once: a retry, or a
/// durable record replayed after a crash. Plain MergeTree needs it for `insert_deduplication_token`
/// at all; Replicated tables deduplicate by default but remember only 100 blocks on older servers,
/// a few seconds at a high insert rate, which a restart can outlast.
fn dedup_window(o: &TableOptions) -> &'static str {
    if o.cluster.is_none() {
        ", non_replicated_deduplication_window = 1000"
    } else {
        ", replicated_deduplication_window = 1000"
    }
}

fn on_cluster(o: &TableOptions) -> String {
    o.cluster
        .as_ref()
        .map(|c| format!(" ON CLUSTER {}", ident(c)))
        .unwrap_or_default()
}

fn column_lines<F>(
    columns: &[Column<F>],
    layout: Layout,
    extra_after: &[(&str, &str)],
) -> Vec<String> {
    let mut lines = Vec::new();
    for c in columns {
        lines.extend(ddl_lines(c, layout).into_iter().map(|l| format!("    {l}")));
        if layout == Layout::Modern {
            for (after, line) in extra_after {
                if *after == c.name {
                    lines.push(format!("    {line}"));
                }
            }
        }
    }
    lines
}

/// Bloom-filter skip indexes on the keys and values of every attribute map, named as the collector
/// names them (`idx_res_attr_key`, `idx_log_attr_value`, …).
fn map_indexes<F>(columns: &[Column<F>]) -> Vec<String> {
    columns
        .iter()
        .filter(|c| c.kind == Kind::Attrs)
        .flat_map(|c| {
            let short = match c.name {
                "ResourceAttributes" => "res_attr",
                "ScopeAttributes" => "scope_attr",
                "LogAttributes" => "log_attr",
                "SpanAttributes" => "span_attr",
                _ => "attr",
            };
            ["Keys", "Values"].map(|part| {
                format!(
                    "    INDEX idx_{short}_{} map{part}({}) TYPE bloom_filter(0.01) GRANULARITY 1",
                    if part == "Keys" { "key" } else { "value" },
                    c.name
                )
            })
        })
        .collect()
}

/// The table that holds the rows of table `name`: `<name>_local` on a cluster (behind the
/// Distributed `<name>`), `name` itself on a single server. Every Distributed table `X` reads `X_local`,
/// metrics and the trace-id lookup included, so operators can name the local table of any of them.
fn data_table(o: &TableOptions, name: &str) -> String {
    if o.cluster.is_some() {
        format!("{name}_local")
    } else {
        name.to_string()
    }
}

/// `<name>` as a `Distributed` table over `<name>_local` on every shard of the cluster.
fn distributed(o: &TableOptions, name: &str, key: &str) -> String {
    let cluster = o.cluster.as_deref().unwrap_or_default();
    let db = ident(&o.database);
    let local = data_table(o, name);
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{}{} AS {db}.{} ENGINE = Distributed({}, {}, {}, {key})",
        ident(name),
        on_cluster(o),
        ident(&local),
        ident(cluster),
        ident(&o.database),
        ident(&local),
    )
}

// Sharding keys. Each is computed from the row alone, never `rand()`: an insert that is retried —
// after a timeout, through the same or another server — then splits into the same per-shard blocks,
// which ReplicatedMergeTree's block deduplication recognises and drops; a random key splits the retry
// differently and stores its rows twice.

/// Spans (and the trace-id lookup rows) by trace id: a trace is on one shard.
pub const TRACES_SHARD_KEY: &str = "cityHash64(TraceId)";

/// Logs by trace id when they have one, so a trace's logs are on its spans' shard (a join by trace id
/// stays on one shard); logs outside a trace by service, time and body.
pub fn logs_shard_key(layout: Layout) -> &'static str {
    match layout {
        Layout::Modern => "if(TraceId = '', cityHash64(ServiceName, toUnixTimestamp64Nano(Timestamp), Body), cityHash64(TraceId))",
        Layout::Portable => "if(TraceId = '', cityHash64(ServiceName, TimestampNanos, Body), cityHash64(TraceId))",
    }
}

/// Metric points by series (service, metric name, attributes): a series is on one shard.
pub fn metrics_shard_key(layout: Layout) -> &'static str {
    match layout {
        Layout::Modern => "cityHash64(ServiceName, MetricName, Attributes)",
        Layout::Portable => "cityHash64(ServiceName, MetricName, AttributesKeys, AttributesValues)",
    }
}

/// Every statement for the logs table, in order.
pub fn logs_statements(layout: Layout, o: &TableOptions) -> Vec<String> {
    let mut out = vec![logs_table(layout, o)];
    if o.cluster.is_some() {
        out.push(distributed(o, &o.table, logs_shard_key(layout)));
    }
    out
}

/// Every statement for the traces tables (with the trace-id lookup and its view), in order.
pub fn traces_statements(layout: Layout, o: &TableOptions) -> Vec<String> {
    let mut out = traces_tables(layout, o);
    if o.cluster.is_some() {
        out.push(distributed(o, &o.table, TRACES_SHARD_KEY));
        out.push(distributed(
            o,
            &format!("{}_trace_id_ts", o.table),
            TRACES_SHARD_KEY,
        ));
    }
    out
}

/// Every statement for the five metric tables, in order.
pub fn metrics_statements(layout: Layout, o: &TableOptions) -> Vec<String> {
    let mut out = Vec::new();
    for kind in MetricTable::ALL {
        out.push(metrics_table(kind, layout, o));
        if o.cluster.is_some() {
            let name = format!("{}_{}", o.table, kind.suffix());
            out.push(distributed(o, &name, metrics_shard_key(layout)));
        }
    }
    out
}

/// `CREATE DATABASE IF NOT EXISTS`.
pub fn create_database(o: &TableOptions) -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {}{}",
        ident(&o.database),
        on_cluster(o)
    )
}

/// The `otel_logs` table (`otel_logs_local` on a cluster).
pub fn logs_table(layout: Layout, o: &TableOptions) -> String {
    let columns: &[Column<LogField>] = LOG_COLUMNS;
    let name = format!("{}.{}", ident(&o.database), ident(&data_table(o, &o.table)));
    match layout {
        Layout::Modern => {
            let mut lines = column_lines(
                columns,
                layout,
                &[(
                    "Timestamp",
                    "TimestampTime DateTime DEFAULT toDateTime(Timestamp)",
                )],
            );
            lines.extend(map_indexes(columns));
            lines.extend(
                [
                    "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
                    "INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
                ]
                .iter()
                .map(|l| format!("    {l}")),
            );
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL TimestampTime + toIntervalHour({h})\n"))
                .unwrap_or_default();
            format!(
                "CREATE TABLE IF NOT EXISTS {name}{} (\n{}\n) ENGINE = {}\nPARTITION BY toDate(TimestampTime)\nPRIMARY KEY (ServiceName, TimestampTime)\nORDER BY (ServiceName, TimestampTime, Timestamp)\n{ttl}SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{}",
                on_cluster(o),
                lines.join(",\n"),
                engine(o),
                dedup_window(o),
            )
        }
        Layout::Portable => {
            let lines = column_lines(columns, layout, &[]);
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL Timestamp + toIntervalHour({h})\n"))
                .unwrap_or_default();
            format!(
                "CREATE TABLE IF NOT EXISTS {name}{} (\n{}\n) ENGINE = {}\nPARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, Timestamp)\n{ttl}SETTINGS index_granularity = 8192",
                on_cluster(o),
                lines.join(",\n"),
                engine(o),
            )
        }
    }
}

/// The `otel_traces` table, then the trace-id lookup table and the materialized view that feeds it
/// (on a cluster, each server's view feeds its own `_local` lookup table from its `_local` spans).
pub fn traces_tables(layout: Layout, o: &TableOptions) -> Vec<String> {
    let name = format!("{}.{}", ident(&o.database), ident(&data_table(o, &o.table)));
    let lookup = format!(
        "{}.{}",
        ident(&o.database),
        ident(&data_table(o, &format!("{}_trace_id_ts", o.table)))
    );
    let view = format!(
        "{}.{}",
        ident(&o.database),
        ident(&format!("{}_trace_id_ts_mv", o.table))
    );
    let cluster = on_cluster(o);
    let columns: &[Column<SpanField>] = SPAN_COLUMNS;
    let mut lines = column_lines(columns, layout, &[]);
    let (tail, lookup_columns, start) = match layout {
        Layout::Modern => {
            lines.extend(map_indexes(columns));
            lines.extend(
                [
                    "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
                    "INDEX idx_duration Duration TYPE minmax GRANULARITY 1",
                ]
                .iter()
                .map(|l| format!("    {l}")),
            );
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL toDateTime(Timestamp) + toIntervalHour({h})\n"))
                .unwrap_or_default();
            (
                format!("PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, toDateTime(Timestamp))\n{ttl}SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{}", dedup_window(o)),
                "    TraceId String CODEC(ZSTD(1)),\n    Start DateTime CODEC(Delta, ZSTD(1)),\n    End DateTime CODEC(Delta, ZSTD(1)),\n    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1",
                "min(Timestamp)",
            )
        }
        Layout::Portable => {
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL Timestamp + toIntervalHour({h})\n"))
                .unwrap_or_default();
            (
                format!("PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, Timestamp)\n{ttl}SETTINGS index_granularity = 8192"),
                "    TraceId String,\n    Start DateTime,\n    End DateTime",
                "min(Timestamp)",
            )
        }
    };
    vec![
        format!("CREATE TABLE IF NOT EXISTS {name}{cluster} (\n{}\n) ENGINE = {}\n{tail}", lines.join(",\n"), engine(o)),
        format!(
            "CREATE TABLE IF NOT EXISTS {lookup}{cluster} (\n{lookup_columns}\n) ENGINE = {}\nPARTITION BY toDate(Start)\nORDER BY (TraceId, Start)\nSETTINGS index_granularity = 8192",
            engine(o)
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {view}{cluster} TO {lookup} AS\nSELECT TraceId, {start} AS Start, max(Timestamp) AS End\nFROM {name}\nWHERE TraceId != ''\nGROUP BY TraceId"
        ),
    ]
}

/// One `otel_metrics_<kind>` table (`_local` on a cluster); `o.table` is the prefix (default
/// `otel_metrics`).
pub fn metrics_table(kind: MetricTable, layout: Layout, o: &TableOptions) -> String {
    let name = format!(
        "{}.{}",
        ident(&o.database),
        ident(&data_table(o, &format!("{}_{}", o.table, kind.suffix())))
    );
    let mut lines = column_lines(kind.columns(), layout, &[]);
    match layout {
        Layout::Modern => {
            lines.extend(map_indexes(kind.columns()));
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL toDateTime(TimeUnix) + toIntervalHour({h})\n"))
                .unwrap_or_default();
            format!(
                "CREATE TABLE IF NOT EXISTS {name}{} (\n{}\n) ENGINE = {}\nPARTITION BY toDate(TimeUnix)\nORDER BY (ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)\n{ttl}SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{}",
                on_cluster(o),
                lines.join(",\n"),
                engine(o),
                dedup_window(o),
            )
        }
        Layout::Portable => {
            let ttl = o
                .ttl_hours
                .map(|h| format!("TTL TimeUnix + toIntervalHour({h})\n"))
                .unwrap_or_default();
            format!(
                "CREATE TABLE IF NOT EXISTS {name}{} (\n{}\n) ENGINE = {}\nPARTITION BY toDate(TimeUnix)\nORDER BY (ServiceName, MetricName, TimeUnix)\n{ttl}SETTINGS index_granularity = 8192",
                on_cluster(o),
                lines.join(",\n"),
                engine(o),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TableOptions {
        TableOptions {
            database: "otel".into(),
            table: "otel_logs".into(),
            ttl_hours: None,
            cluster: None,
        }
    }

    #[test]
    fn modern_logs_table_has_the_collectors_columns_and_clauses() {
        let ddl = logs_table(Layout::Modern, &opts());
        for needle in [
            "`Timestamp` DateTime64(9) CODEC(Delta(8), ZSTD(1))",
            "TimestampTime DateTime DEFAULT toDateTime(Timestamp)",
            "`ResourceAttributes` Map(LowCardinality(String), String) CODEC(ZSTD(1))",
            "`TraceFlags` UInt8,",
            "PARTITION BY toDate(TimestampTime)",
            "ORDER BY (ServiceName, TimestampTime, Timestamp)",
        ] {
            assert!(ddl.contains(needle), "missing {needle:?} in\n{ddl}");
        }
    }

    #[test]
    fn portable_logs_table_avoids_map_datetime64_and_codecs() {
        let ddl = logs_table(Layout::Portable, &opts());
        assert!(
            !ddl.contains("Map(") && !ddl.contains("DateTime64") && !ddl.contains("CODEC"),
            "{ddl}"
        );
        assert!(ddl.contains("`LogAttributesKeys` Array(String)"));
        assert!(ddl.contains("`TimestampNanos` UInt64"));
    }

    #[test]
    fn cluster_puts_data_in_local_replicated_tables_behind_distributed_ones() {
        let mut o = opts();
        o.cluster = Some("main".into());
        let logs = logs_statements(Layout::Modern, &o);
        assert_eq!(logs.len(), 2);
        assert!(logs[0]
            .starts_with("CREATE TABLE IF NOT EXISTS `otel`.`otel_logs_local` ON CLUSTER `main`"));
        assert!(logs[0].contains("ReplicatedMergeTree("));
        assert_eq!(
            logs[1],
            format!(
                "CREATE TABLE IF NOT EXISTS `otel`.`otel_logs` ON CLUSTER `main` AS `otel`.`otel_logs_local` \
                 ENGINE = Distributed(`main`, `otel`, `otel_logs_local`, {})",
                logs_shard_key(Layout::Modern)
            )
        );
        o.table = "otel_traces".into();
        let traces = traces_statements(Layout::Modern, &o);
        assert_eq!(traces.len(), 5);
        assert!(traces[1].contains("`otel`.`otel_traces_trace_id_ts_local` ON CLUSTER"));
        assert!(traces[2].starts_with(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_mv` ON CLUSTER"
        ));
        assert!(traces[2].contains("TO `otel`.`otel_traces_trace_id_ts_local`"));
        assert!(traces[2].contains("FROM `otel`.`otel_traces_local`"));
        assert!(traces[3].ends_with("`otel_traces_local`, cityHash64(TraceId))"));
        assert!(traces[4].ends_with("`otel_traces_trace_id_ts_local`, cityHash64(TraceId))"));
        o.table = "otel_metrics".into();
        let metrics = metrics_statements(Layout::Portable, &o);
        assert_eq!(metrics.len(), 10);
        assert!(metrics[8].contains("`otel`.`otel_metrics_summary_local` ON CLUSTER"));
        assert!(metrics[9].contains(
            "`otel_metrics_summary` ON CLUSTER `main` AS `otel`.`otel_metrics_summary_local`"
        ));
        assert!(metrics[9].ends_with(&format!("{})", metrics_shard_key(Layout::Portable))));
        o.cluster = None;
        assert_eq!(metrics_statements(Layout::Modern, &o).len(), 5);
        assert!(metrics_statements(Layout::Modern, &o)[0].contains("`otel`.`otel_metrics_gauge` ("));
    }

    #[test]
    fn no_sharding_key_is_random() {
        // A random key would split a retried insert differently, so deduplication could not drop it.
        for layout in [Layout::Modern, Layout::Portable] {
            for key in [
                TRACES_SHARD_KEY,
                logs_shard_key(layout),
                metrics_shard_key(layout),
            ] {
                assert!(!key.contains("rand"), "{key}");
            }
            assert!(logs_shard_key(layout).ends_with("cityHash64(TraceId))"));
        }
    }

    #[test]
    fn cluster_and_ttl_options() {
        let mut o = opts();
        o.cluster = Some("main".into());
        o.ttl_hours = Some(72);
        let ddl = logs_table(Layout::Modern, &o);
        assert!(ddl.contains("ON CLUSTER `main`"));
        assert!(ddl.contains("ReplicatedMergeTree("));
        assert!(ddl.contains("TTL TimestampTime + toIntervalHour(72)"));
        assert_eq!(ident("a`b"), "`a\\`b`");
    }
}
