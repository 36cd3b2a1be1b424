//! Exporters: `otlp`, `otlphttp` and `loadbalancing` become Weir's `otlp` exporter (gRPC or HTTP, one
//! endpoint or a load-balanced set, in [`super::otlp`] and [`super::balance`]); `clickhouse`, `loki`,
//! `file` and `debug` are in [`super::clickhouse`] and [`super::stores`].
//! Each exporter takes the signals of the pipelines it is in (`signals`), and the batching of the
//! `batch` processors in them.
//!
//! Transport security follows the Collector's rules, which differ from Weir's: its gRPC exporter uses
//! TLS unless `tls.insecure: true`, while Weir's uses TLS only with `tls:` or `https://`. So a bare
//! `host:port` gets `tls: {}` unless the input said insecure.

use super::pipelines::{Role, Sig};
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{balance, clickhouse, kind, otlp, stores, Ctx};
use std::collections::BTreeSet;

pub fn translate(cx: &mut Ctx) {
    let section = Obj::new("exporters", cx.section("exporters"));
    for (id, v) in section.entries() {
        let path = format!("exporters.{id}");
        if !cx.pipes.used(Role::Exporter, &id) {
            cx.report.not_needed(
                &path,
                "in no pipeline, so the Collector does not run it either",
            );
            continue;
        }
        let signals = cx.pipes.signals(Role::Exporter, &id);
        if signals.is_empty() {
            cx.report.unsupported(
                &path,
                "only in profiles pipelines, which Weir does not take",
            );
            continue;
        }
        let name = cx.names.get(&id).cloned().unwrap_or_else(|| id.clone());
        let wpath = format!("exporters.{name}");
        let mut o = Obj::new(path.clone(), Some(v));
        let built = match kind(&id) {
            "otlp" => otlp::grpc(cx, &mut o, &wpath),
            "otlphttp" => otlp::http(cx, &mut o, &wpath),
            "loadbalancing" => balance::translate(cx, &mut o, &wpath),
            "clickhouse" => clickhouse::translate(cx, &mut o, &wpath),
            "loki" => stores::loki(cx, &id, &mut o, &wpath),
            "file" => stores::file(cx, &mut o, &wpath),
            "debug" | "logging" | "nop" => stores::debug(cx, &id, &mut o, &wpath),
            k => {
                cx.report.unsupported(&path, instead(k));
                continue;
            }
        };
        // An exporter left out was reported as a whole; its keys need no lines of their own.
        let Some(mut e) = built else { continue };
        cx.report.rest(&o, "Weir's exporter has no such setting");
        batching(cx, &id, &path, &mut e);
        let supports: BTreeSet<Sig> = if e.contains("loki") {
            [Sig::Logs].into()
        } else {
            [Sig::Traces, Sig::Logs, Sig::Metrics].into()
        };
        let takes: BTreeSet<Sig> = signals.intersection(&supports).copied().collect();
        if takes.is_empty() {
            cx.report
                .unsupported(&path, "takes none of the signals of its pipelines");
            continue;
        }
        if takes != supports {
            let list: Vec<&str> = takes.iter().map(|s| s.name()).collect();
            e.set("signals", Node::strs(&list));
        }
        e.sort_by_order(&[
            "file",
            "blackhole",
            "clickhouse",
            "loki",
            "otlp",
            "signals",
            "queue",
            "batch",
            "retry",
            "max_in_flight",
            "timeout",
            "insecure",
        ]);
        let exporters = cx.out.map("exporters");
        exporters.set(&name, Node::Map(e));
        exporters.comment(&name, format!("from {path}"));
    }
    if cx.out.get("exporters").is_none() {
        let mut e = Map::default();
        e.set("blackhole", Node::Map(Map::default()));
        cx.out.map("exporters").set("placeholder", Node::Map(e));
        cx.out.map("exporters").comment(
            "placeholder",
            "No exporter could be translated: replace this blackhole with a destination.",
        );
        cx.report.unsupported("exporters", "no exporter has a Weir equivalent: the output sends to a blackhole (counted, then discarded) so it passes weir check; replace it");
    }
}

fn instead(kind: &str) -> &'static str {
    match kind {
        "kafka" => "Weir has no Kafka exporter: forward over OTLP to a Collector that writes Kafka, or use Weir's durable mode for buffering",
        "prometheusremotewrite" | "prometheus" => "Weir exports metrics over OTLP (Prometheus 2.47+ takes OTLP at /api/v1/otlp) or to ClickHouse; no remote write or scrape endpoint",
        "elasticsearch" | "opensearch" => "Weir has no Elasticsearch exporter: forward over OTLP (Elastic takes OTLP) or write to ClickHouse",
        _ => "Weir's destinations are otlp (gRPC/HTTP), clickhouse, loki, file and blackhole: most backends take OTLP directly",
    }
}

/// The batching of the `batch` processors in this exporter's pipelines, unless it batches itself.
fn batching(cx: &mut Ctx, id: &str, path: &str, e: &mut Map) {
    if e.contains("batch") {
        return;
    }
    let mut found: Vec<(String, Map)> = Vec::new();
    for p in cx.pipes.using(Role::Exporter, id) {
        for proc in &p.processors {
            if let Some(b) = cx.batch.get(proc) {
                if !found.iter().any(|(_, m)| m == b) {
                    found.push((proc.clone(), b.clone()));
                }
            }
        }
    }
    if let Some((proc, b)) = found.first() {
        e.set("batch", Node::Map(b.clone()));
        if found.len() > 1 {
            cx.report.approximate(path, None, format!("its pipelines batch differently; Weir batches once per exporter, as processors.{proc} says"));
        }
    }
}
