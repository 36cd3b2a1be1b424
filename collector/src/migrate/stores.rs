//! The other storing exporters: `loki`, `file`, and `debug` (a blackhole stands in).

use super::endpoint::{host_of, loopback};
use super::pipelines::Role;
use super::report::{text, Obj};
use super::yaml::{Map, Node};
use super::{auth, delivery, env, units, Ctx};

pub fn loki(cx: &mut Ctx, id: &str, o: &mut Obj, wpath: &str) -> Option<Map> {
    let p = format!("{wpath}.loki");
    let Some(raw) = o.str("endpoint") else {
        cx.report.unsupported(&o.path, "no endpoint: not written");
        return None;
    };
    let base = raw
        .trim_end_matches('/')
        .trim_end_matches("/loki/api/v1/push")
        .to_string();
    let mut l = Map::default();
    l.set("endpoint", Node::str(&base));
    cx.report.translated(
        &o.at("endpoint"),
        &format!("{p}.endpoint"),
        format!("{base} (Weir pushes to /loki/api/v1/push under it, protobuf + snappy)"),
    );
    let mut headers = Map::default();
    let mut h = o.child("headers");
    for (k, _) in h.entries() {
        let Some(v) = h.str(&k) else { continue };
        if k.eq_ignore_ascii_case("x-scope-orgid") {
            l.set("tenant", Node::str(&v));
            cx.report.translated(&h.at(&k), &format!("{p}.tenant"), "");
        } else {
            headers.set(&k, Node::str(&v));
            cx.report.translated(&h.at(&k), &format!("{p}.headers"), "");
        }
    }
    if let Some(t) = o.str("tenant_id") {
        l.set("tenant", Node::str(&t));
        cx.report
            .translated(&o.at("tenant_id"), &format!("{p}.tenant"), "");
    }
    let mut labels = o.child("default_labels_enabled");
    let level = labels.bool("level").unwrap_or(true);
    if level {
        l.set("severity_label", Node::bool(true));
    }
    cx.report.translated(
        &labels.at("level"),
        &format!("{p}.severity_label"),
        format!("{level} (the Collector's default adds a level label)"),
    );
    for key in ["exporter", "job", "instance"] {
        labels.get(key);
    }
    cx.report.approximate(&labels.path, Some(&format!("{p}.resource_labels")), "the Collector labelled streams exporter, job (service.namespace/service.name) and instance; Weir's labels are the resource attributes in resource_labels with `.` as `_` (service_name, service_namespace, …): queries on job or instance need rewriting");
    cx.report.rest(&labels, "");
    let mut old = o.child("labels");
    let resource: Vec<String> = old
        .child("resource")
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let attrs: Vec<String> = old
        .child("attributes")
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut hints = super::redact::LokiHints::default();
    if !resource.is_empty() {
        hints.resource_labels = Some(resource);
    }
    if !attrs.is_empty() {
        hints.attribute_labels = Some(attrs);
    }
    if !old.is_empty() {
        cx.report.approximate(
            &old.path,
            Some(&format!("{p}.resource_labels / attribute_labels")),
            "these attributes become labels named with `.` as `_`; renamed labels are not kept",
        );
    }
    cx.report.rest(&old, "");
    for proc in cx
        .pipes
        .using(Role::Exporter, id)
        .iter()
        .flat_map(|p| p.processors.iter())
    {
        if let Some(hint) = cx.loki.get(proc) {
            let h = hint.clone();
            hints.resource_labels = h.resource_labels.or(hints.resource_labels);
            hints.attribute_labels = h.attribute_labels.or(hints.attribute_labels);
            hints.format = h.format.or(hints.format);
            hints.tenant_attribute = h.tenant_attribute.or(hints.tenant_attribute);
        }
    }
    if let Some(r) = hints.resource_labels {
        l.set("resource_labels", Node::strs(&r));
    }
    if let Some(a) = hints.attribute_labels {
        l.set("attribute_labels", Node::strs(&a));
    }
    match hints.format.as_deref() {
        Some("json") => l.set("line_format", Node::str("json")),
        Some("logfmt") => cx.report.unsupported(
            &o.path,
            "loki.format logfmt: Weir writes the body raw or as JSON (line_format)",
        ),
        _ => {}
    }
    if let Some(t) = hints.tenant_attribute {
        l.set("tenant_attribute", Node::str(&t));
    }
    let mut a = o.child("auth");
    let mut creds = !headers.is_empty();
    if let Some(ext) = a.str("authenticator") {
        match auth::client(cx, &a.at("authenticator"), &ext) {
            auth::ExporterAuth::Bearer(v) => {
                let token = v.split_once(' ').map_or(v.clone(), |(_, t)| t.to_string());
                l.set("bearer_token", Node::str(token));
                creds = true;
            }
            auth::ExporterAuth::Basic { username, password } => {
                l.set("username", Node::str(username));
                l.set("password", Node::str(password));
                creds = true;
            }
            auth::ExporterAuth::None => {}
        }
    }
    cx.report.rest(&a, "");
    if !headers.is_empty() {
        l.set("headers", Node::Map(headers));
    }
    let mut t = o.child("tls");
    let tls = store_tls(cx, &mut t, &format!("{p}.tls"));
    if base.starts_with("https://") && !tls.is_empty() {
        l.set("tls", Node::Map(tls));
    }
    let mut e = Map::default();
    let known = env::with_defaults(&base);
    if creds && !known.starts_with("https://") && !loopback(&host_of(&known)) {
        e.set("insecure", Node::bool(true));
        cx.report.approximate(&o.path, Some(&format!("{wpath}.insecure")), "credentials went in clear, as the Collector sent them; Weir refuses that beyond loopback unless insecure: true, written so — better: https://");
    }
    delivery::delivery(cx, o, wpath, &mut e);
    e.set("loki", Node::Map(l));
    Some(e)
}

/// The certificate and key files of a Collector client `tls` block, under Weir's names.
pub fn tls_files(cx: &mut Ctx, t: &mut Obj, weir: &str, note: &str) -> Map {
    let mut m = Map::default();
    for (key, to) in [
        ("ca_file", "ca_file"),
        ("cert_file", "cert_file"),
        ("key_file", "key_file"),
        ("server_name_override", "server_name"),
    ] {
        if let Some(f) = t.str(key) {
            m.set(to, Node::str(&f));
            cx.report
                .translated(&t.at(key), &format!("{weir}.{to}"), note);
        }
    }
    m
}

pub fn store_tls(cx: &mut Ctx, t: &mut Obj, weir: &str) -> Map {
    let m = tls_files(cx, t, weir, "used with an https:// endpoint");
    if t.get("insecure").is_some() {
        cx.report.not_needed(
            &t.at("insecure"),
            "the endpoint's scheme decides: https:// is TLS",
        );
    }
    if t.bool("insecure_skip_verify") == Some(true) {
        cx.report.unsupported(
            &t.at("insecure_skip_verify"),
            "Weir always verifies the server's certificate: give it the CA (ca_file)",
        );
    }
    cx.report.rest(
        t,
        "Weir's exporter TLS takes ca_file, cert_file, key_file and server_name",
    );
    m
}

pub fn file(cx: &mut Ctx, o: &mut Obj, wpath: &str) -> Option<Map> {
    let Some(path) = o.str("path") else {
        cx.report.unsupported(&o.path, "no path: not written");
        return None;
    };
    let last = path.rsplit('/').next().unwrap_or(&path);
    let dir = if env::has_reference(last) {
        path.clone()
    } else {
        match path.rsplit_once('/') {
            Some(("", _)) => "/".to_string(),
            Some((d, _)) => d.to_string(),
            None => ".".to_string(),
        }
    };
    let mut f = Map::default();
    f.set("path", Node::str(&dir));
    cx.report.approximate(&o.at("path"), Some(&format!("{wpath}.file.path")), format!("{dir}: Weir's path is a directory, holding traces.jsonl, logs.jsonl and metrics.jsonl (OTLP/JSON, one request per line)"));
    let mut r = o.child("rotation");
    if let Some(mb) = r.get("max_megabytes").and_then(units::mib) {
        f.set("rotate_bytes", Node::str(&mb));
        cx.report.translated(
            &r.at("max_megabytes"),
            &format!("{wpath}.file.rotate_bytes"),
            mb,
        );
    }
    match r.get("max_backups").and_then(text) {
        None => {}
        Some(n) if n == "0" => cx.report.unsupported(&r.at("max_backups"), "0 keeps every file in the Collector; Weir keeps max_files (8) per signal, so the disk stays bounded"),
        Some(n) => {
            f.set("max_files", Node::raw(&n));
            cx.report.translated(&r.at("max_backups"), &format!("{wpath}.file.max_files"), "");
        }
    }
    if r.get("max_days").is_some() {
        cx.report.unsupported(
            &r.at("max_days"),
            "Weir bounds files by size and count, not age",
        );
    }
    if r.get("localtime").is_some() {
        cx.report.not_needed(
            &r.at("localtime"),
            "Weir numbers rotated files (<signal>.1.jsonl …)",
        );
    }
    if r.is_empty() {
        cx.report.approximate(&r.path, None, "unset: the Collector's file grew without bound; Weir rotates at 64MiB and keeps 8 files per signal");
    }
    cx.report.rest(&r, "");
    match o.str("format").as_deref() {
        None => {}
        Some("json") => cx
            .report
            .not_needed(&o.at("format"), "Weir writes OTLP/JSON lines"),
        Some(_) => cx
            .report
            .unsupported(&o.at("format"), "Weir writes OTLP/JSON lines only"),
    }
    let mut e = Map::default();
    if let Some(fi) = o.str("flush_interval") {
        if let Ok(d) = units::duration(&fi) {
            let mut b = Map::default();
            b.set("max_age", Node::str(&d));
            e.set("batch", Node::Map(b));
            cx.report.translated(
                &o.at("flush_interval"),
                &format!("{wpath}.batch.max_age"),
                "a batch is written once its oldest item waited this long",
            );
        }
    }
    for key in ["compression", "group_by", "encoding"] {
        if o.get(key).is_some() {
            cx.report.unsupported(
                &o.at(key),
                "Weir writes uncompressed OTLP/JSON, one file per signal",
            );
        }
    }
    for key in ["append", "create_directory"] {
        if o.get(key).is_some() {
            cx.report
                .not_needed(&o.at(key), "Weir creates the directory and appends");
        }
    }
    delivery::delivery(cx, o, wpath, &mut e);
    e.set("file", Node::Map(f));
    Some(e)
}

pub fn debug(cx: &mut Ctx, id: &str, o: &mut Obj, wpath: &str) -> Option<Map> {
    for key in o.unread() {
        o.get(&key);
    }
    if super::kind(id) == "nop" {
        cx.report
            .translated(&o.path, &format!("{wpath}.blackhole"), "");
    } else {
        cx.report.approximate(&o.path, Some(&format!("{wpath}.blackhole")), "Weir has no console exporter: a blackhole (counted in weir_exporter_sent_items_total, then discarded) stands in; use a file exporter to read the data");
    }
    let mut e = Map::default();
    e.set("blackhole", Node::Map(Map::default()));
    Some(e)
}
