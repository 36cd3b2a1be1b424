//! Per-tenant databases (`database_attribute`): which database a resource's tenant value names, which
//! values may have none (reserved names, the shared database, past `max_databases`), and creating a
//! tenant's schema the first time it is written to.

use super::{ClickHouse, ExportError, Layout};
use crate::clickhouse::schema::{
    create_database, logs_statements, metrics_statements, traces_statements, TableOptions,
};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weir_config::SignalKind;

/// Per-tenant databases: which attribute names them, how to create one, and which exist.
pub(super) struct Tenancy {
    pub(super) attribute: String,
    /// `(table, columns)` per insert statement.
    pub(super) tables: Vec<(String, String)>,
    /// The DDL for one database (with `{db}` standing for its name); empty without `create_schema`.
    pub(super) ddl: Vec<(TableOptions, SignalKind)>,
    pub(super) layout: Layout,
    pub(super) modern_server: bool,
    /// Tenant values that may have a database.
    pub(super) pattern: regex::Regex,
    pub(super) max: usize,
    /// The configured database: a tenant may not write into it under its own name.
    pub(super) shared: String,
    /// Each tenant database ever routed to, and whether its schema is ready: one cell per database,
    /// so creating one tenant's tables holds up only that tenant's inserts.
    pub(super) prepared: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
}

/// Databases a tenant may never write into, whatever its name maps to.
const RESERVED: [&str; 3] = ["system", "default", "information_schema"];

impl ClickHouse {
    /// Creates a tenant's database and tables the first time it is seen (with `create_schema`). Only
    /// inserts into that database wait for it; a failure is retried by the next insert.
    pub(super) async fn prepare(&self, db: &str, t: &Tenancy) -> Result<(), ExportError> {
        let cell = t
            .prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(db.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            for (template, signal) in &t.ddl {
                let opts = TableOptions {
                    database: db.to_string(),
                    ..template.clone()
                };
                let mut statements = vec![create_database(&opts)];
                statements.extend(match signal {
                    SignalKind::Logs => logs_statements(t.layout, &opts),
                    SignalKind::Traces => traces_statements(t.layout, &opts),
                    SignalKind::Metrics => metrics_statements(t.layout, &opts),
                });
                let params: &[(&str, &str)] = if t.modern_server {
                    &[]
                } else {
                    &[("allow_experimental_low_cardinality_type", "1")]
                };
                for ddl in statements {
                    self.client.post(&ddl, params, Bytes::new()).await?;
                }
                tracing::info!(database = db, "ClickHouse tenant database ready");
            }
            Ok::<(), ExportError>(())
        })
        .await
        .map(|_| ())
    }

    /// Splits resources by the database their attribute names (`None`: the configured one), in
    /// first-seen order; a tenant that may not have a database gets `Err(why)`.
    pub(super) fn by_database<R>(
        &self,
        resources: Vec<R>,
        resource: impl Fn(&R) -> Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
    ) -> Vec<(Target, Vec<R>)> {
        let Some(t) = &self.tenancy else {
            return vec![(None, resources)];
        };
        let mut groups: Vec<(Target, Vec<R>)> = Vec::new();
        for r in resources {
            let db = resource(&r)
                .into_iter()
                .flat_map(|res| &res.attributes)
                .find(|kv| kv.key == t.attribute)
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                        Some(t.database_for(s))
                    }
                    _ => None,
                });
            match groups.iter_mut().find(|(d, _)| *d == db) {
                Some((_, rs)) => rs.push(r),
                None => groups.push((db, vec![r])),
            }
        }
        groups
    }
}

/// Where a group of rows goes: the configured database (`None`), a tenant's, or nowhere (why).
pub(super) type Target = Option<Result<String, String>>;

impl Tenancy {
    /// The database for tenant value `tenant`, or why it may not have one.
    pub(super) fn database_for(&self, tenant: &str) -> Result<String, String> {
        if !self.pattern.is_match(tenant) {
            return Err(format!(
                "tenant {tenant:?} does not match database_pattern; its rows are not written"
            ));
        }
        let db = database_name(tenant);
        if RESERVED
            .iter()
            .any(|r| r.eq_ignore_ascii_case(tenant) || r.eq_ignore_ascii_case(&db))
            || db == self.shared
        {
            return Err(format!(
                "tenant {tenant:?} names a database no tenant may write to"
            ));
        }
        if db.len() > 200 {
            return Err(format!("tenant {tenant:?} is too long for a database name"));
        }
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if !prepared.contains_key(&db) {
            if prepared.len() >= self.max {
                return Err(format!(
                    "max_databases ({}) reached; tenant {tenant:?} gets no database",
                    self.max
                ));
            }
            prepared.insert(db.clone(), Arc::default());
        }
        Ok(db)
    }
}

/// A tenant value as a database name, one to one: ASCII letters and digits stay, every other byte
/// becomes `_` and two hex digits (`team-a` → `team_2da`, `team_a` → `team_5fa`), so two tenants never
/// share a database.
pub fn database_name(tenant: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(tenant.len() + 8);
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "_{b:02x}");
        }
    }
    out
}
