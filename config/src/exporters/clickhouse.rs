//! `exporters.<name>.clickhouse`: rows into ClickHouse over its HTTP interface: servers, tables,
//! layout, schema creation and per-tenant databases.

use super::transport::{transport_security, TlsClient};
use crate::check::{invalid, positive, Invalid};
use crate::units::Duration;
use serde::Deserialize;

/// Which ClickHouse table layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseLayout {
    /// Ask the server (`SELECT version()`): modern from 22.x on, portable before.
    #[default]
    Auto,
    /// The OpenTelemetry Collector's tables (`Map`, `DateTime64(9)`): what Grafana and ClickStack query.
    Modern,
    /// Arrays and `DateTime` + nanoseconds, for servers without `Map`/`DateTime64`.
    Portable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClickHouseCompression {
    /// ClickHouse's own compressed blocks (`decompress=1`): the cheapest for client and server.
    #[default]
    Lz4,
    Zstd,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseExporter {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub endpoint: String,
    /// More servers of the same cluster (each with the Distributed tables), taken in order after
    /// `endpoint` when the one in use fails or gives no answer within `timeout`; Weir stays on the
    /// server that works. Without them a stopped server stalls every insert until it is back.
    #[serde(default)]
    pub failover_endpoints: Vec<String>,
    /// A resource attribute naming the database per resource (e.g. `weir.tenant` from ingest auth);
    /// its value, with every character outside `[A-Za-z0-9]` written as `_xx` (hex), is the database
    /// — so different values never share one — created with its tables on first use when
    /// `create_schema` is on. Resources without it go to `database`.
    #[serde(default)]
    pub database_attribute: Option<String>,
    /// Tenant values that may have a database (a regex over the whole value); rows of others are
    /// refused and counted (`weir_exporter_failed_items_total{reason="tenant_database"}`).
    #[serde(default = "tenant_database_pattern")]
    pub database_pattern: String,
    /// Most tenant databases one exporter writes to; rows for more are refused and counted.
    #[serde(default = "max_tenant_databases")]
    pub max_databases: usize,
    /// For `https://` endpoints.
    #[serde(default)]
    pub tls: Option<TlsClient>,
    #[serde(default = "clickhouse_database")]
    pub database: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub layout: ClickHouseLayout,
    /// Create the database and tables at start (`IF NOT EXISTS`). Turn off in production where
    /// schema changes go through migrations; start-up then checks that the tables exist.
    #[serde(default = "crate::common::yes")]
    pub create_schema: bool,
    #[serde(default = "clickhouse_logs_table")]
    pub logs_table: String,
    /// Also names `<traces_table>_trace_id_ts` and its materialized view.
    #[serde(default = "clickhouse_traces_table")]
    pub traces_table: String,
    /// Prefix of the five metric tables: `<prefix>_gauge`, `_sum`, `_histogram`,
    /// `_exponential_histogram`, `_summary`.
    #[serde(default = "clickhouse_metrics_table")]
    pub metrics_table: String,
    /// Rows older than this are dropped by ClickHouse (`TTL`, whole hours); unset keeps them.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// Run DDL `ON CLUSTER` this cluster, with replicated tables.
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub compression: ClickHouseCompression,
    /// `async_insert=1, wait_for_async_insert=1` (servers from 21.11): for many small writers.
    #[serde(default)]
    pub async_insert: bool,
}

impl ClickHouseExporter {
    /// The default `database_pattern`: names ClickHouse accepts unquoted, short enough to read.
    pub const DEFAULT_DATABASE_PATTERN: &str = "[A-Za-z0-9][A-Za-z0-9_.-]{0,47}";
}

fn tenant_database_pattern() -> String {
    ClickHouseExporter::DEFAULT_DATABASE_PATTERN.into()
}

fn max_tenant_databases() -> usize {
    100
}

fn clickhouse_database() -> String {
    "otel".into()
}

fn clickhouse_logs_table() -> String {
    "otel_logs".into()
}

fn clickhouse_traces_table() -> String {
    "otel_traces".into()
}

fn clickhouse_metrics_table() -> String {
    "otel_metrics".into()
}

/// Every server an http(s) URL that gets the password safely; tables named; a tenant pattern that
/// compiles when databases are per tenant.
pub(crate) fn check(path: &str, c: &ClickHouseExporter, insecure: bool) -> Result<(), Invalid> {
    let creds = c.password.is_some().then_some("the password");
    let tls = c.tls.is_some();
    // Every server gets the password, so each one is checked for sending it in clear.
    for endpoint in std::iter::once(&c.endpoint).chain(&c.failover_endpoints) {
        let plaintext = endpoint.starts_with("http://");
        transport_security(
            path,
            "clickhouse",
            endpoint,
            plaintext,
            tls,
            creds,
            insecure,
        )?;
    }
    let p = format!("{path}.clickhouse");
    let failover = c.failover_endpoints.iter().enumerate();
    for (key, url) in std::iter::once(("endpoint".to_string(), &c.endpoint))
        .chain(failover.map(|(i, u)| (format!("failover_endpoints[{i}]"), u)))
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                format!("{p}.{key}"),
                format!("`{url}` must be an http:// or https:// URL of the HTTP interface"),
            ));
        }
    }
    for (key, v) in [
        ("database", &c.database),
        ("logs_table", &c.logs_table),
        ("traces_table", &c.traces_table),
        ("metrics_table", &c.metrics_table),
    ] {
        if v.is_empty() {
            return Err(invalid(format!("{p}.{key}"), "must not be empty"));
        }
    }
    if c.database_attribute.is_some() {
        if let Err(e) = regex::Regex::new(&format!("^(?:{})$", c.database_pattern)) {
            return Err(invalid(format!("{p}.database_pattern"), e.to_string()));
        }
        positive(&format!("{p}.max_databases"), c.max_databases as u64)?;
    }
    Ok(())
}
