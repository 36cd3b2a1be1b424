//! `service` (pipelines, telemetry, extensions), plus the extensions and connectors sections and any
//! unknown top-level key.

use super::report::{text, Obj};
use super::yaml::Node;
use super::{kind, receivers, Ctx};
use serde_yaml_ng::Value;

/// Everything but the components: pipelines, telemetry, extensions, connectors, unknown sections.
pub fn translate(cx: &mut Ctx) {
    let mut root = Obj::new("", Some(cx.root));
    for known in ["receivers", "processors", "exporters"] {
        root.get(known);
    }
    let mut service = root.child("service");
    pipelines(cx, &mut service);
    telemetry(cx, &mut service);
    let enabled = service.strs("extensions");
    cx.report
        .rest(&service, "Weir's config has no such service setting");
    extensions(cx, &mut root.child("extensions"), &enabled);
    connectors(cx, &mut root.child("connectors"));
    cx.report.rest(
        &root,
        "not a Collector section Weir knows (receivers, processors, exporters, connectors, extensions, service)",
    );
}

fn pipelines(cx: &mut Ctx, service: &mut Obj) {
    service.get("pipelines");
    for p in &cx.pipes.list {
        let path = format!("service.pipelines.{}", p.id);
        let Some(signal) = p.signal else {
            cx.report
                .unsupported(&path, "Weir takes traces, logs and metrics, not profiles");
            continue;
        };
        let exporters: Vec<&str> = p
            .exporters
            .iter()
            .filter_map(|e| cx.names.get(e))
            .filter(|n| {
                cx.out
                    .get("exporters")
                    .is_some_and(|x| matches!(x, Node::Map(m) if m.contains(n)))
            })
            .map(String::as_str)
            .collect();
        let connectors = cx.section("connectors").and_then(Value::as_mapping);
        let is_connector = |id: &String| connectors.is_some_and(|c| c.contains_key(id.as_str()));
        if !exporters.is_empty() {
            let note = format!("{} to exporters {}", signal.name(), exporters.join(", "));
            cx.report.translated(&path, "exporters.NAME.signals", note);
        } else if p.exporters.iter().all(is_connector) {
            cx.report
                .not_needed(&path, "feeds only connectors (reported under connectors)");
        } else {
            let note = format!(
                "none of its exporters has a Weir equivalent: these {} are not exported",
                signal.name()
            );
            cx.report.unsupported(&path, note);
        }
        let fed = p
            .receivers
            .iter()
            .any(|r| kind(r) == "otlp" || (kind(r) == "forward" && is_connector(r)));
        if !fed {
            cx.report.approximate(
                &format!("{path}.receivers"),
                None,
                "no otlp receiver here: in Weir these exporters take the signal as it arrives over OTLP",
            );
        }
    }
    let signals = cx.pipes.all_signals();
    let per_signal = signals.iter().any(|s| {
        cx.pipes
            .list
            .iter()
            .filter(|p| p.signal == Some(*s))
            .count()
            > 1
    });
    if per_signal {
        cx.report.approximate(
            "service.pipelines",
            None,
            "several pipelines of one signal: Weir has one chain per signal, so every processor setting applies to all of them (exporters still take only the signals of their pipelines)",
        );
    }
}

fn telemetry(cx: &mut Ctx, service: &mut Obj) {
    let mut t = service.child("telemetry");
    let mut logs = t.child("logs");
    if let Some(level) = logs.str("level") {
        let level = level.to_ascii_lowercase();
        let weir = match level.as_str() {
            "debug" | "info" | "warn" | "error" => level.clone(),
            "dpanic" | "panic" | "fatal" => "error".to_string(),
            _ => "info".to_string(),
        };
        cx.out.map("log").set("level", Node::str(&weir));
        cx.report.translated(
            &logs.at("level"),
            "log.level",
            format!("{weir} (RUST_LOG overrides it)"),
        );
    }
    if let Some(enc) = logs.str("encoding") {
        if enc == "json" {
            cx.out.map("log").set("format", Node::str("json"));
            cx.report
                .translated(&logs.at("encoding"), "log.format", "json");
        } else {
            cx.report
                .not_needed(&logs.at("encoding"), "Weir logs text by default");
        }
    }
    cx.report.rest(
        &logs,
        "Weir logs to stderr at log.level in log.format; nothing else to set",
    );
    let mut metrics = t.child("metrics");
    if metrics.has("level") {
        metrics.get("level");
        cx.report.not_needed(
            &metrics.at("level"),
            "Weir always serves all of its metrics at /metrics on admin.endpoint",
        );
    }
    let mut address = metrics.str("address");
    let readers = metrics.seq("readers");
    for (i, r) in readers.iter().enumerate() {
        let path = format!("{}.readers[{i}]", metrics.path);
        let prom = r
            .get("pull")
            .and_then(|p| p.get("exporter"))
            .and_then(|e| e.get("prometheus"));
        match prom {
            Some(p) if address.is_none() => {
                let host = p.get("host").and_then(text).unwrap_or("localhost".into());
                let port = p.get("port").and_then(text).unwrap_or("8888".into());
                address = Some(format!("{host}:{port}"));
            }
            _ => cx.report.unsupported(
                &path,
                "Weir serves Prometheus metrics at /metrics on admin.endpoint (one pull endpoint); scrape it instead of pushing",
            ),
        }
    }
    if let Some(a) = address {
        let path = metrics.path.clone();
        admin_endpoint(
            cx,
            &path,
            &a,
            "Weir serves /metrics, /healthz and /readyz there",
        );
    }
    cx.report
        .rest(&metrics, "Weir's own metrics have no such setting");
    cx.report.rest(
        &t,
        "Weir does not export its own traces or attach a resource to its metrics; it logs and serves /metrics",
    );
}

fn admin_endpoint(cx: &mut Ctx, path: &str, addr: &str, note: &str) {
    if cx.out.get("admin").is_some() {
        cx.report.not_needed(
            path,
            "Weir serves /metrics, /healthz and /readyz on one admin.endpoint, already set from service.telemetry.metrics",
        );
        return;
    }
    match receivers::listen_addr(addr) {
        Ok((a, extra)) => {
            cx.out.map("admin").set("endpoint", Node::str(&a));
            let note = format!(
                "{a}: {note}{}",
                extra.map(|e| format!("; {e}")).unwrap_or_default()
            );
            cx.report.translated(path, "admin.endpoint", note);
        }
        Err(e) => cx.report.unsupported(
            path,
            format!("{e}; admin.endpoint keeps Weir's default 127.0.0.1:8888"),
        ),
    }
}

fn extensions(cx: &mut Ctx, section: &mut Obj, enabled: &[String]) {
    for (id, v) in section.entries() {
        section.get(&id);
        let path = format!("extensions.{id}");
        let used = cx.ext_used.contains(&id);
        match kind(&id) {
            // Whoever referenced it reported its keys.
            _ if used => {}
            _ if !enabled.contains(&id) => {
                cx.report.not_needed(&path, "not enabled in service.extensions nor referenced");
            }
            "health_check" => {
                let mut o = Obj::new(path.clone(), Some(v));
                let endpoint = o.str("endpoint").unwrap_or("localhost:13133".into());
                admin_endpoint(
                    cx,
                    &o.at("endpoint"),
                    &endpoint,
                    "Weir answers GET /healthz (alive) and /readyz (ready, false from shutdown on) there, not /: point probes at those paths",
                );
                cx.report.rest(&o, "Weir's health endpoints have fixed paths and answers");
            }
            "pprof" => cx.report.unsupported(&path, "Weir has no profiling endpoint; use perf or the criterion benchmarks"),
            "zpages" => cx.report.unsupported(&path, "Weir has no zpages; its state is in /metrics on admin.endpoint"),
            "bearertokenauth" | "basicauth" | "oidc" => {
                cx.report.not_needed(&path, "not referenced by any receiver or exporter")
            }
            _ => cx.report.unsupported(
                &path,
                "Weir has no extensions; receivers.auth, admin.endpoint and durable cover auth, health and persistence",
            ),
        }
    }
}

fn connectors(cx: &mut Ctx, section: &mut Obj) {
    for (id, _) in section.entries() {
        section.get(&id);
        let path = format!("connectors.{id}");
        let instead = match kind(&id) {
            "forward" => {
                cx.report.not_needed(&path, "Weir has one chain per signal, which joins what forward joined");
                continue;
            }
            "spanmetrics" => "not translated: Weir derives metrics from spans with pipeline.span_metrics (the connector's metric names and labels, counted before sampling); set its dimensions and buckets by hand",
            "servicegraph" => "Weir does not derive service graphs from spans; compute them where the spans are stored (ClickHouse queries, Tempo's metrics generator)",
            "count" | "sum" => "Weir counts what passes through in its own metrics (weir_exporter_sent_items_total …), not per attribute",
            "routing" => "Weir sends each signal to every exporter that takes it (exporters.NAME.signals); per tenant, use ClickHouse database_attribute or Loki tenant_attribute",
            "failover" => "Weir's otlp exporter ejects a failing backend among its endpoints and moves its keys to the others",
            "roundrobin" => "Weir's otlp exporter spreads over its endpoints by routing key (rendezvous hashing)",
            _ => "Weir has no connectors: every signal goes from the receivers through one chain to the exporters",
        };
        cx.report.unsupported(&path, instead);
    }
}
