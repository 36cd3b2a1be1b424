//! `weir migrate --from otelcol FILE`: translates an OpenTelemetry Collector YAML config into a Weir
//! config that passes `weir check`, and reports what became of every Collector key — translated (to
//! which Weir key), approximate, not needed (Weir does it by default), or without equivalent (and what
//! Weir does instead). The config goes to stdout (or `--output`), headed by comments listing what needs
//! attention; the full report goes to stderr.
//!
//! The Collector composes pipelines of components; Weir has one fixed chain per signal (receive,
//! normalise, sample, redact, export to every exporter that takes the signal). So processors become
//! settings of that chain, and the pipelines decide only which exporter takes which signals.
//!
//! # Layout
//! - [`env`]: `${env:VAR}` references rewritten to Weir's `${VAR}`; [`endpoint`]: the scheme and
//!   host of an endpoint string.
//! - [`pipelines`]: which components run, and which signals each exporter takes.
//! - [`service`]: telemetry, extensions, connectors, unknown sections.
//! - [`receivers`] and [`auth`]: the OTLP receiver, TLS, bearer-token authentication.
//! - [`processors`], [`tail`], [`redact`]: batching, memory, sampling, redaction and attributes.
//! - [`exporters`]: signals and batching per exporter; [`otlp`] and [`balance`]: OTLP forwarding and
//!   load balancing; [`clickhouse`] and [`stores`]: ClickHouse, Loki, files; [`delivery`]: queue,
//!   retry and timeout.
//! - [`report`]: the report, and the reader that reports every key no translator looked at.
//! - [`yaml`] and [`units`]: writing the Weir config; the Collector's durations and sizes.

mod auth;
mod balance;
mod clickhouse;
mod delivery;
mod endpoint;
mod env;
mod exporters;
mod otlp;
mod pipelines;
mod processors;
mod receivers;
mod redact;
mod report;
mod service;
mod stores;
mod tail;
mod units;
mod yaml;

use report::{MigrationReport, Status};
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use yaml::{Map, Node};

/// The translated config (header comments included) and the report.
pub struct Migration {
    pub config: String,
    pub report: MigrationReport,
}

/// What `weir migrate` runs: 0 on success (whatever had no equivalent), 1 when the input cannot be
/// translated, 2 with `strict` when some key had no equivalent.
pub fn run(from: &str, file: &Path, output: Option<&Path>, strict: bool) -> ExitCode {
    if from != "otelcol" {
        eprintln!("weir migrate: --from `{from}`: only `otelcol` (OpenTelemetry Collector YAML) is supported");
        return ExitCode::FAILURE;
    }
    let origin = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("weir migrate: {origin}: cannot read: {e}");
            return ExitCode::FAILURE;
        }
    };
    let m = match translate(&text, &origin) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("weir migrate: {origin}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dest = match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &m.config) {
                eprintln!("weir migrate: {}: cannot write: {e}", path.display());
                return ExitCode::FAILURE;
            }
            path.display().to_string()
        }
        None => {
            print!("{}", m.config);
            "stdout".to_string()
        }
    };
    eprintln!("weir migrate: {origin} (OpenTelemetry Collector) → Weir config on {dest}");
    eprint!("{}", m.report.text());
    eprintln!("  next: weir check --config <the Weir config>");
    if strict && m.report.count(Status::Unsupported) > 0 {
        eprintln!(
            "weir migrate: --strict: {} key(s) with no equivalent",
            m.report.count(Status::Unsupported)
        );
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

/// Translates Collector YAML; an error names the key path that makes translation impossible.
pub fn translate(text: &str, origin: &str) -> Result<Migration, String> {
    let mut root: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    if !root.is_mapping() {
        return Err(
            "the top level must be a mapping of sections (receivers, processors, exporters, service)"
                .into(),
        );
    }
    let mut report = MigrationReport::default();
    rewrite_references(&mut root, "", &mut report);
    let pipes = pipelines::Pipelines::parse(&root)?;
    let mut cx = Ctx::new(&root, pipes, report);
    receivers::translate(&mut cx);
    processors::translate(&mut cx);
    exporters::translate(&mut cx);
    service::translate(&mut cx);
    redact::finish(&mut cx);
    if let Some(dir) = cx.durable_dir.clone() {
        cx.out.map("durable").set("dir", Node::str(dir));
    }
    cx.out.sort_by_order(&[
        "receivers",
        "pipeline",
        "exporters",
        "durable",
        "admin",
        "log",
        "memory_limit",
    ]);
    let config = format!("{}{}", header(origin, &cx.report), yaml::render(&cx.out));
    Ok(Migration {
        config,
        report: cx.report,
    })
}

fn header(origin: &str, report: &MigrationReport) -> String {
    let mut h = format!(
        "# Weir config translated from the OpenTelemetry Collector config {origin}\n\
         # by `weir migrate --from otelcol`. Check it with `weir check --config <this file>`.\n\
         # Report: {}.\n",
        report.summary()
    );
    let attention: Vec<_> = report
        .sorted()
        .into_iter()
        .filter(|e| matches!(e.status, Status::Unsupported | Status::Approximate))
        .collect();
    if !attention.is_empty() {
        h.push_str(
            "#\n# Needs attention (every key, translated or not, is in the report on stderr):\n",
        );
        for e in attention {
            // One line each; a newline in a note would end the comment.
            h.push_str(&format!("#   {}\n", e.line().replace('\n', " ")));
        }
    }
    h.push('\n');
    h
}

/// Rewrites every string in the tree and reports references that no longer read a variable.
fn rewrite_references(v: &mut Value, path: &str, report: &mut MigrationReport) {
    match v {
        Value::String(s) => {
            let r = env::rewrite(s);
            for issue in &r.issues {
                let status = if issue.lost {
                    Status::Unsupported
                } else {
                    Status::Approximate
                };
                report.add(status, path, None, issue.text.clone());
            }
            *s = r.text;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                rewrite_references(item, &format!("{path}[{i}]"), report);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let key = report::text(k).unwrap_or_default();
                let p = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                rewrite_references(item, &p, report);
            }
        }
        Value::Tagged(t) => rewrite_references(&mut t.value, path, report),
        _ => {}
    }
}

/// Everything the translators share while they fill in the Weir config.
pub(crate) struct Ctx<'a> {
    pub root: &'a Value,
    pub report: MigrationReport,
    pub out: Map,
    pub pipes: pipelines::Pipelines,
    /// The Weir exporter name of each Collector exporter id (`otlp/gw` → `otlp_gw`).
    pub names: BTreeMap<String, String>,
    /// Extensions some receiver or exporter referenced, so the others can be reported as unused.
    pub ext_used: BTreeSet<String>,
    /// Exporter batching taken from each `batch` processor, by processor id.
    pub batch: BTreeMap<String, Map>,
    /// Loki label hints set by `resource` / `attributes` processors, by processor id.
    pub loki: BTreeMap<String, redact::LokiHints>,
    pub redact: redact::RedactOut,
    /// From a `sending_queue.storage` extension: Weir's durable mode is the nearest thing.
    pub durable_dir: Option<String>,
}

impl<'a> Ctx<'a> {
    fn new(root: &'a Value, pipes: pipelines::Pipelines, report: MigrationReport) -> Self {
        let mut names = BTreeMap::new();
        let mut taken = BTreeSet::new();
        if let Some(m) = root.get("exporters").and_then(Value::as_mapping) {
            for id in m.keys().filter_map(report::text) {
                let base: String = id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let mut name = base.clone();
                let mut n = 2;
                while !taken.insert(name.clone()) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                names.insert(id, name);
            }
        }
        Ctx {
            root,
            report,
            out: Map::default(),
            pipes,
            names,
            ext_used: BTreeSet::new(),
            batch: BTreeMap::new(),
            loki: BTreeMap::new(),
            redact: redact::RedactOut::default(),
            durable_dir: None,
        }
    }

    pub fn section(&self, name: &str) -> Option<&'a Value> {
        self.root.get(name)
    }

    /// An extension's config by id, remembered as used; `None` when it is not defined.
    pub fn extension(&mut self, id: &str) -> Option<&'a Value> {
        self.ext_used.insert(id.to_string());
        let section = self.root.get("extensions")?.as_mapping()?;
        section.get(id).map(|v| v as &Value)
    }
}

/// A component's type: `otlp` of `otlp/gateway`.
pub fn kind(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// The name part of `bearertokenauth/edge` (`edge`), or the type when there is none.
pub fn name_part(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_translate_rewrites_references_and_reports_unknown_keys() {
        let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${env:ADDR:-0.0.0.0:4317}\n        frobnicate: 3\nexporters:\n  otlp:\n    endpoint: ${GW}\n    tls: {insecure: true}\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [otlp]}\nsurprise: {}\n";
        let m = translate(text, "t.yaml").unwrap();
        assert!(
            m.config.contains("endpoint: \"${ADDR:-0.0.0.0:4317}\""),
            "{}",
            m.config
        );
        assert!(m.config.contains("endpoints: [\"${GW}\"]"), "{}", m.config);
        let lines: Vec<String> = m.report.entries.iter().map(|e| e.line()).collect();
        for path in ["receivers.otlp.protocols.grpc.frobnicate", "surprise"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("no equivalent") && l.contains(path)),
                "{path}: {lines:#?}"
            );
        }
        assert!(
            m.config.contains("#   no equivalent surprise"),
            "{}",
            m.config
        );
    }

    #[test]
    fn migrate_translate_refuses_configs_without_pipelines() {
        let e = translate("receivers: {otlp: {}}\n", "t").err().unwrap();
        assert!(e.starts_with("service.pipelines: missing"), "{e}");
        assert!(translate("a: [", "t")
            .err()
            .unwrap()
            .starts_with("not YAML"));
    }
}
