//! Processors become settings of Weir's one chain: `batch` the exporters' batching, `memory_limiter`
//! the process-wide `memory_limit`, `probabilistic_sampler` head sampling; `tail_sampling`, and the
//! redaction family, have files of their own. The rest have no equivalent and are reported with what
//! Weir does instead.

use super::pipelines::{Role, Sig};
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{kind, redact, tail, units, Ctx};

pub fn translate(cx: &mut Ctx) {
    let section = Obj::new("processors", cx.section("processors"));
    let mut memory: Option<(u64, String)> = None;
    for (id, v) in section.entries() {
        let path = format!("processors.{id}");
        if !cx.pipes.used(Role::Processor, &id) {
            cx.report.not_needed(
                &path,
                "in no pipeline, so the Collector does not run it either",
            );
            continue;
        }
        let mut o = Obj::new(path.clone(), Some(v));
        match kind(&id) {
            "batch" => batch(cx, &id, &mut o),
            "memory_limiter" => memory_limiter(cx, &mut o, &mut memory),
            "probabilistic_sampler" => probabilistic(cx, &id, &mut o),
            "tail_sampling" => tail::translate(cx, &mut o),
            "redaction" => redact::redaction(cx, &id, &mut o),
            "attributes" | "resource" => redact::attributes(cx, &id, &mut o),
            k => {
                cx.report.unsupported(&path, instead(k));
                continue;
            }
        }
        cx.report
            .rest(&o, "Weir has no such setting for this processor");
    }
}

fn instead(kind: &str) -> &'static str {
    match kind {
        "filter" => "Weir has no OTTL filter: drop logs by severity or service with pipeline.sample.logs.rules (probability: 0), records carrying an attribute with pipeline.redact.keys (action: drop_record)",
        "transform" => "Weir does not rewrite telemetry (no OTTL); it normalises trace context, samples and redacts — do transformations in the SDK or a Collector in front",
        "k8sattributes" => "Weir adds no Kubernetes metadata: set it in the SDK (OTEL_RESOURCE_ATTRIBUTES from the downward API) or keep a Collector agent for it",
        "resourcedetection" => "Weir detects no resource attributes: let the SDK's resource detectors set them",
        "groupbytrace" => "Weir groups spans by trace only for tail sampling (pipeline.sample.tail)",
        "span" => "Weir does not rename spans; it can redact span names (pipeline.redact.span_names)",
        "routing" => "Weir sends each signal to every exporter that takes it (exporters.NAME.signals)",
        "cumulativetodelta" | "deltatocumulative" | "metricstransform" | "metricsgeneration" | "interval" => {
            "Weir passes metrics through unchanged"
        }
        _ => "Weir has no such processor; its chain is trace-context normalisation, sampling and redaction",
    }
}

/// Batch settings go to every exporter in the processor's pipelines; an empty `batch` is what Weir
/// does anyway, per destination.
fn batch(cx: &mut Ctx, id: &str, o: &mut Obj) {
    let mut m = Map::default();
    if let Some(v) = o.get("send_batch_size") {
        match units::number(v) {
            Some(n) => {
                m.set("max_items", n);
                cx.report.translated(
                    &o.at("send_batch_size"),
                    "exporters.NAME.batch.max_items",
                    "on every exporter of its pipelines",
                );
            }
            None => cx
                .report
                .unsupported(&o.at("send_batch_size"), "not a number"),
        }
    }
    if o.get("send_batch_max_size").is_some() {
        cx.report.not_needed(
            &o.at("send_batch_max_size"),
            "a Weir batch never exceeds batch.max_items (and batch.max_bytes, encoded)",
        );
    }
    if let Some(t) = o.str("timeout") {
        match units::duration(&t) {
            Ok(d) => {
                m.set("max_age", Node::str(&d));
                cx.report.translated(
                    &o.at("timeout"),
                    "exporters.NAME.batch.max_age",
                    format!("{d}, on every exporter of its pipelines"),
                );
            }
            Err(e) => cx.report.unsupported(&o.at("timeout"), e),
        }
    }
    for key in ["metadata_keys", "metadata_cardinality_limit"] {
        if o.get(key).is_some() {
            cx.report.unsupported(&o.at(key), "Weir batches per exporter and signal, not per request metadata; tenants are kept apart by the exporters that use them");
        }
    }
    if m.is_empty() {
        cx.report.not_needed(&o.path, "Weir batches in every exporter with the destination's defaults (ClickHouse 50 000 rows / 5 s, Loki 20 000 / 1 s, others 8192 / 200 ms)");
    } else {
        cx.report.translated(
            &o.path,
            "exporters.NAME.batch",
            "Weir batches in each exporter; no separate processor",
        );
        cx.batch.insert(id.to_string(), m);
    }
}

fn memory_limiter(cx: &mut Ctx, o: &mut Obj, memory: &mut Option<(u64, String)>) {
    if o.get("check_interval").is_some() {
        cx.report.not_needed(
            &o.at("check_interval"),
            "Weir counts every allocation as it happens and reads RSS every 5 ms",
        );
    }
    for key in ["spike_limit_mib", "spike_limit_percentage"] {
        if o.get(key).is_some() {
            cx.report.not_needed(&o.at(key), "Weir reserves what a request will weigh before reading it, so it needs no spike margin: it refuses (retryably) at memory_limit");
        }
    }
    if let Some(v) = o.get("limit_mib") {
        let Some(size) = units::mib(v) else {
            cx.report
                .unsupported(&o.at("limit_mib"), "not a number of MiB");
            return;
        };
        let n = super::report::text(v).and_then(|t| t.parse::<u64>().ok());
        if n.is_some_and(|n| n < 16) {
            cx.report.unsupported(&o.at("limit_mib"), "below Weir's minimum memory_limit of 16MiB: left unset (80 % of the cgroup's limit, or what the queues hold)");
            return;
        }
        // Several limiters limit one process: the smallest wins.
        let n = n.unwrap_or(u64::MAX);
        if memory.as_ref().is_some_and(|(m, _)| *m <= n) {
            cx.report.not_needed(
                &o.at("limit_mib"),
                "a smaller memory_limiter already set memory_limit (one limit per process)",
            );
            return;
        }
        *memory = Some((n, size.clone()));
        cx.out.set("memory_limit", Node::str(&size));
        cx.report.translated(
            &o.at("limit_mib"),
            "memory_limit",
            format!("{size}: past it receivers refuse (RESOURCE_EXHAUSTED / 429 with a retry delay) until exporters drain; nothing accepted is dropped"),
        );
    }
    if let Some(v) = o.get("limit_percentage") {
        let pct = super::report::text(v).unwrap_or_default();
        if pct == "80" {
            cx.report.not_needed(
                &o.at("limit_percentage"),
                "Weir's default memory_limit is 80 % of the cgroup's memory limit",
            );
        } else {
            cx.report.unsupported(&o.at("limit_percentage"), format!("Weir's default is 80 % of the cgroup's limit; for {pct} % write memory_limit as a size"));
        }
    }
}

fn probabilistic(cx: &mut Ctx, id: &str, o: &mut Obj) {
    let signals = cx.pipes.signals(Role::Processor, id);
    let Some(v) = o.get("sampling_percentage") else {
        cx.report
            .unsupported(&o.path, "no sampling_percentage: nothing to sample");
        return;
    };
    let (p, note) = match units::percent(v) {
        Ok(x) => x,
        Err(e) => {
            cx.report.unsupported(
                &o.at("sampling_percentage"),
                format!("{e}; head sampling stays off"),
            );
            return;
        }
    };
    for s in &signals {
        let (weir, what) = match s {
            Sig::Traces => ("pipeline.sample.traces.probability", "consistent by the trace id's randomness (OpenTelemetry thresholds in tracestate)"),
            Sig::Logs => ("pipeline.sample.logs.default_probability", "a record with a trace id shares its trace's fate; one without is decided by a hash of time, severity and body"),
            Sig::Metrics => continue,
        };
        let (section, key) = weir.rsplit_once('.').unwrap_or((weir, weir));
        let previous = match cx.out.path(section).get(key) {
            Some(Node::Raw(r)) => r.parse::<f64>().ok(),
            _ => None,
        };
        let p = previous.map_or(p, |q| q.min(p));
        cx.out.path(section).set(key, Node::raw(units::float(p)));
        let mut n = format!("{} ({what})", units::float(p));
        if previous.is_some() {
            n.push_str("; several samplers on this signal: Weir has one probability, the smallest");
        }
        if let Some(extra) = &note {
            n.push_str("; ");
            n.push_str(extra);
        }
        let status = if note.is_some() {
            super::report::Status::Approximate
        } else {
            super::report::Status::Translated
        };
        cx.report
            .add(status, &o.at("sampling_percentage"), Some(weir), n);
    }
    if signals.contains(&Sig::Metrics) {
        cx.report.not_needed(
            &o.path,
            "in a metrics pipeline, where the Collector does not sample either",
        );
    }
    for key in ["hash_seed", "hash_salt"] {
        if o.get(key).is_some() {
            cx.report.approximate(&o.at(key), None, "Weir samples by the trace id's randomness (OpenTelemetry consistent sampling, like mode: proportional), not a seeded hash: its decisions differ from a Collector fleet's with this seed, but every Weir decides alike");
        }
    }
    match o.str("mode").as_deref() {
        None => {}
        Some("proportional") => cx.report.not_needed(&o.at("mode"), "Weir's sampling is consistent by trace-id randomness, as proportional mode"),
        Some(m) => cx.report.approximate(&o.at("mode"), None, format!("Weir applies its threshold and respects an upstream one (tiers only lower the probability); no `{m}` mode")),
    }
    if o.get("sampling_precision").is_some() {
        cx.report.not_needed(
            &o.at("sampling_precision"),
            "Weir encodes the threshold written to tracestate itself",
        );
    }
    if o.get("fail_closed").is_some() {
        cx.report.not_needed(&o.at("fail_closed"), "Weir decides items without usable randomness by a hash of the record (logs) or the trace id's low bits (spans)");
    }
    match o.str("attribute_source").as_deref() {
        None | Some("traceID") => {
            if o.has("attribute_source") {
                cx.report.not_needed(&o.at("attribute_source"), "Weir uses the trace id");
            }
        }
        Some(_) => cx.report.unsupported(&o.at("attribute_source"), "Weir samples logs by trace id (or a hash of time, severity and body), not by a record attribute"),
    }
    if o.get("from_attribute").is_some() {
        cx.report.unsupported(
            &o.at("from_attribute"),
            "Weir samples logs by trace id or a hash of the record, not by an attribute's value",
        );
    }
    if o.get("sampling_priority").is_some() {
        cx.report.unsupported(&o.at("sampling_priority"), "Weir has no per-record priority: keep what matters with pipeline.sample.logs.rules (min_severity, service, probability)");
    }
}
