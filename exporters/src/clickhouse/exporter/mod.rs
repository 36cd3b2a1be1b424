//! The ClickHouse exporter: checks the server at start (version → layout, schema created or verified),
//! then turns each batch into one compressed RowBinary `INSERT` per table, carrying a deduplication
//! token where the server supports one, so a retried insert is stored once.
//!
//! Routing rows to per-tenant databases (naming, refusing, creating them) is in `tenancy`.

mod tenancy;
#[cfg(test)]
mod tests;

use super::client::{compress, Client};
use super::columns::{insert_columns, MetricTable, LOG_COLUMNS, SPAN_COLUMNS};
use super::encode::Encoder;
use super::schema::{
    create_database, ident, logs_statements, metrics_statements, traces_statements, TableOptions,
};
use super::Layout;
use crate::exporter::{Encoded, ExportError, Exporter, Retry};
use bytes::Bytes;
use std::sync::Mutex;
use tenancy::{Target, Tenancy};
use weir_config::{
    ClickHouseCompression, ClickHouseExporter as Config, ClickHouseLayout, SignalKind,
};
use weir_pipeline::{Batch, Logs, Metrics, Traces};

pub use tenancy::database_name;

/// One `INSERT`, ready to send (and to send again, unchanged, on retry).
pub struct Insert {
    /// Index into the exporter's insert statements (one per table of its signal).
    table: usize,
    /// A tenant's database, when `database_attribute` routed these rows there.
    database: Option<String>,
    /// Why these rows may not be written (a tenant value that may not have a database): sending
    /// fails for good, and the items are counted.
    refused: Option<String>,
    body: Bytes,
    /// `insert_deduplication_token`: a hash of the rows, identical on every retry.
    token: Option<String>,
}

impl Insert {
    fn route(&mut self, target: Target) {
        match target {
            None => {}
            Some(Ok(db)) => self.database = Some(db),
            Some(Err(why)) => self.refused = Some(why),
        }
    }
}

pub struct ClickHouse {
    client: Client,
    layout: Layout,
    compression: ClickHouseCompression,
    /// `INSERT INTO <table> (<columns>) FORMAT RowBinary` per table of this exporter's signal (metrics
    /// have five tables, in [`MetricTable::ALL`] order).
    inserts: Vec<String>,
    /// Settings sent with every insert.
    settings: Vec<(&'static str, &'static str)>,
    dedup_token: bool,
    /// The tables drop a block they have stored before: Replicated tables (a cluster) by the block's
    /// checksum, a plain MergeTree on a server with `insert_deduplication_token` by the token.
    deduplicates: bool,
    /// Reused row buffers, so steady-state encoding does not allocate them afresh.
    encoder: Mutex<(Encoder, Vec<u8>)>,
    tenancy: Option<Tenancy>,
}

/// The first server to tell its version, trying each once: start-up goes on while one is down. A
/// stopped server never answers, so each gets a bounded wait (failing it moves the client on).
async fn first_answer(client: &Client) -> Result<(u32, u32), ExportError> {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    let mut last = None;
    for _ in 0..client.servers() {
        let server = client.current().to_string();
        match tokio::time::timeout(WAIT, client.version()).await {
            Ok(Ok(version)) => return Ok(version),
            // Refused (say, bad credentials): every server of the cluster would say the same.
            Ok(Err(e)) if e.retry == crate::exporter::Retry::Never => return Err(e),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(ExportError::retryable(
                    "timeout",
                    format!("ClickHouse at {server} gave no answer within {WAIT:?}"),
                ))
            }
        }
    }
    Err(last.expect("a client has at least one server"))
}

impl ClickHouse {
    /// Connects, picks the layout and creates (or checks) `signal`'s tables. Errors say what to fix.
    pub async fn connect(cfg: &Config, signal: SignalKind) -> Result<Self, ExportError> {
        let endpoints: Vec<String> = std::iter::once(&cfg.endpoint)
            .chain(&cfg.failover_endpoints)
            .cloned()
            .collect();
        let client = Client::new(
            &endpoints,
            cfg.username.as_deref(),
            cfg.password.as_deref(),
            cfg.tls.as_ref(),
        )
        .map_err(|e| ExportError::permanent("config", e))?;
        let (major, minor) = first_answer(&client).await.map_err(|e| {
            e.at_startup(format!(
                "ClickHouse at {} is not usable: {e}",
                endpoints.join(", ")
            ))
        })?;
        let modern_server = major >= 22;
        let layout = match cfg.layout {
            ClickHouseLayout::Modern => Layout::Modern,
            ClickHouseLayout::Portable => Layout::Portable,
            ClickHouseLayout::Auto if modern_server => Layout::Modern,
            ClickHouseLayout::Auto => Layout::Portable,
        };
        let (table, tables): (&String, Vec<(String, String)>) = match signal {
            SignalKind::Logs => (
                &cfg.logs_table,
                vec![(cfg.logs_table.clone(), insert_columns(LOG_COLUMNS, layout))],
            ),
            SignalKind::Traces => (
                &cfg.traces_table,
                vec![(
                    cfg.traces_table.clone(),
                    insert_columns(SPAN_COLUMNS, layout),
                )],
            ),
            SignalKind::Metrics => (
                &cfg.metrics_table,
                MetricTable::ALL
                    .iter()
                    .map(|k| {
                        let name = format!("{}_{}", cfg.metrics_table, k.suffix());
                        (name, insert_columns(k.columns(), layout))
                    })
                    .collect(),
            ),
        };
        let opts = TableOptions {
            database: cfg.database.clone(),
            table: table.clone(),
            ttl_hours: cfg.ttl.map(|t| (t.0.as_secs() / 3600).max(1) as u32),
            cluster: cfg.cluster.clone(),
        };
        if cfg.create_schema {
            let mut statements = vec![create_database(&opts)];
            statements.extend(match signal {
                SignalKind::Logs => logs_statements(layout, &opts),
                SignalKind::Traces => traces_statements(layout, &opts),
                SignalKind::Metrics => metrics_statements(layout, &opts),
            });
            for ddl in statements {
                // 18.x needs this to create LowCardinality columns; newer servers ignore it.
                let params: &[(&str, &str)] = if modern_server {
                    &[]
                } else {
                    &[("allow_experimental_low_cardinality_type", "1")]
                };
                client
                    .post(&ddl, params, Bytes::new())
                    .await
                    .map_err(|e| e.at_startup(format!("creating the schema failed: {e}\n{ddl}")))?;
            }
        } else {
            for (name, _) in &tables {
                let exists = format!("EXISTS TABLE {}.{}", ident(&opts.database), ident(name));
                let answer = client.post(&exists, &[], Bytes::new()).await?;
                if answer.as_ref().trim_ascii() != b"1" {
                    return Err(ExportError::permanent(
                        "startup",
                        format!(
                            "table {}.{name} does not exist; create it or set create_schema: true",
                            opts.database
                        ),
                    ));
                }
            }
        }
        let mut settings = Vec::new();
        if cfg.async_insert && (major, minor) >= (21, 11) {
            settings.extend([("async_insert", "1"), ("wait_for_async_insert", "1")]);
        }
        if cfg.compression != ClickHouseCompression::None {
            settings.push(("decompress", "1"));
        }
        tracing::info!(endpoint = %client.current(), version = %format!("{major}.{minor}"), ?layout, table = %format!("{}.{}", opts.database, opts.table), "ClickHouse ready");
        Ok(ClickHouse {
            client,
            layout,
            compression: cfg.compression,
            inserts: tables
                .iter()
                .map(|(name, columns)| {
                    format!(
                        "INSERT INTO {}.{} ({columns}) FORMAT RowBinary",
                        ident(&opts.database),
                        ident(name)
                    )
                })
                .collect(),
            settings,
            dedup_token: (major, minor) >= (22, 2),
            deduplicates: cfg.cluster.is_some() || (major, minor) >= (22, 2),
            encoder: Mutex::new((Encoder::default(), Vec::new())),
            tenancy: cfg.database_attribute.clone().map(|attribute| Tenancy {
                attribute,
                pattern: regex::Regex::new(&format!("^(?:{})$", cfg.database_pattern))
                    .expect("validated when the config was loaded"),
                max: cfg.max_databases,
                shared: cfg.database.clone(),
                tables: tables.clone(),
                ddl: if cfg.create_schema {
                    vec![(opts.clone(), signal)]
                } else {
                    Vec::new()
                },
                layout,
                modern_server,
                prepared: Default::default(),
            }),
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// [`ClickHouse::connect`], again and again with backoff until it succeeds, for a server that
    /// was unreachable at start: meanwhile what arrives for this exporter waits in its queue (or
    /// the durable log), as it would behind a server that went down later. Each attempt gets
    /// `attempt` at most: a server that answers `SELECT version()` and then hangs on the schema's
    /// DDL would otherwise hold the exporter unready after it recovered.
    pub async fn connect_retrying(
        cfg: &Config,
        signal: SignalKind,
        exporter: &str,
        attempt: std::time::Duration,
    ) -> Self {
        let mut backoff = crate::backoff::Backoff::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(30),
        );
        loop {
            let delay = backoff.next_delay(None);
            tokio::time::sleep(delay).await;
            let connected = tokio::time::timeout(attempt, Self::connect(cfg, signal))
                .await
                .unwrap_or_else(|_| {
                    Err(ExportError::retryable(
                        "timeout",
                        format!("setting up took longer than {attempt:?}"),
                    ))
                });
            match connected {
                Ok(ch) => {
                    tracing::info!(exporter, "ClickHouse is reachable again; delivering");
                    return ch;
                }
                // The server answered but refuses (credentials, a missing table): an operator has
                // to act, and nothing else can be done with the data meanwhile.
                Err(e) if e.retry == Retry::Never => {
                    tracing::error!(exporter, error = %e, "ClickHouse answers but cannot be used; retrying");
                }
                Err(e) => {
                    tracing::warn!(exporter, error = %e, retry_in = ?delay, "ClickHouse still unreachable");
                }
            }
        }
    }
}

impl ClickHouse {
    /// Rows from `write` into one compressed insert, with its dedup token.
    fn insert(
        &self,
        items_hint: usize,
        write: impl FnOnce(&mut Encoder, &mut Vec<u8>) -> usize,
    ) -> Encoded<Insert> {
        let mut guard = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
        let (encoder, rows) = &mut *guard;
        rows.clear();
        rows.reserve(items_hint);
        let items = write(encoder, rows);
        self.seal(0, rows, items)
    }

    /// Compresses the rows of table `table` and attaches the deduplication token.
    fn seal(&self, table: usize, rows: &[u8], items: usize) -> Encoded<Insert> {
        let token = self
            .dedup_token
            .then(|| format!("{:032x}", cityhash_rs::cityhash_102_128(rows)));
        let body = match self.compression {
            ClickHouseCompression::None => Bytes::copy_from_slice(rows),
            method => Bytes::from(compress(rows, method)),
        };
        Encoded {
            bytes: body.len(),
            request: Insert {
                table,
                database: None,
                refused: None,
                body,
                token,
            },
            items,
        }
    }

    async fn send_insert(&self, insert: &Insert) -> Result<(), ExportError> {
        if let Some(why) = &insert.refused {
            return Err(ExportError::permanent("tenant_database", why.clone()));
        }
        let mut params = self.settings.clone();
        if let Some(t) = &insert.token {
            params.push(("insert_deduplication_token", t.as_str()));
        }
        let statement = match (&insert.database, &self.tenancy) {
            (Some(db), Some(t)) => {
                self.prepare(db, t).await?;
                let (table, columns) = &t.tables[insert.table];
                std::borrow::Cow::Owned(format!(
                    "INSERT INTO {}.{} ({columns}) FORMAT RowBinary",
                    ident(db),
                    ident(table)
                ))
            }
            _ => std::borrow::Cow::Borrowed(self.inserts[insert.table].as_str()),
        };
        self.client
            .post(&statement, &params, insert.body.clone())
            .await
            .map(|_| ())
    }
}

/// Logs and traces share everything but the rows they write (one table each).
macro_rules! clickhouse_exporter {
    ($signal:ty, $rows:ident) => {
        impl Exporter<$signal> for ClickHouse {
            type Request = Insert;

            fn kind(&self) -> &'static str {
                "clickhouse"
            }

            fn encode(&self, batch: Batch<$signal>) -> Result<Vec<Encoded<Insert>>, ExportError> {
                let hint = batch.bytes() + batch.bytes() / 4;
                Ok(self
                    .by_database(batch.resources, |r| r.resource.as_ref())
                    .into_iter()
                    .map(|(target, resources)| {
                        let mut e =
                            self.insert(hint, |e, out| e.$rows(&resources, self.layout, out));
                        e.request.route(target);
                        e
                    })
                    .collect())
            }

            async fn send(&self, insert: &Insert) -> Result<(), ExportError> {
                self.send_insert(insert).await
            }

            fn deduplicates(&self) -> bool {
                self.deduplicates
            }
        }
    };
}

clickhouse_exporter!(Logs, logs);
clickhouse_exporter!(Traces, spans);

impl Exporter<Metrics> for ClickHouse {
    type Request = Insert;

    fn kind(&self) -> &'static str {
        "clickhouse"
    }

    /// One insert per metric table that has rows in this batch.
    fn encode(&self, batch: Batch<Metrics>) -> Result<Vec<Encoded<Insert>>, ExportError> {
        let mut out = Vec::new();
        for (target, resources) in self.by_database(batch.resources, |r| r.resource.as_ref()) {
            let mut buffers: [Vec<u8>; 5] = Default::default();
            let rows = {
                let mut guard = self.encoder.lock().unwrap_or_else(|e| e.into_inner());
                guard.0.metrics(&resources, self.layout, &mut buffers)
            };
            for (i, _) in MetricTable::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| rows[*i] > 0)
            {
                let mut e = self.seal(i, &buffers[i], rows[i]);
                e.request.route(target.clone());
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn send(&self, insert: &Insert) -> Result<(), ExportError> {
        self.send_insert(insert).await
    }

    fn deduplicates(&self) -> bool {
        self.deduplicates
    }
}
