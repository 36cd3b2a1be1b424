//! `clickhouse` → Weir's ClickHouse exporter, which writes the Collector's table schema over
//! ClickHouse's HTTP interface (not the native protocol the Collector's DSNs usually name).

use super::endpoint::{host_of, loopback};
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{delivery, env, stores, units, Ctx};

pub fn translate(cx: &mut Ctx, o: &mut Obj, wpath: &str) -> Option<Map> {
    let p = format!("{wpath}.clickhouse");
    let Some(raw) = o.str("endpoint") else {
        cx.report.unsupported(&o.path, "no endpoint: not written");
        return None;
    };
    let mut ch = Map::default();
    let (endpoint, dsn_db) = clickhouse_endpoint(cx, &o.at("endpoint"), &raw, &p);
    ch.set("endpoint", Node::str(&endpoint));
    // The Collector uses the endpoint's database only while `database` is left at `default`.
    let set = o.str("database").filter(|d| d != "default");
    let note = match (&set, &dsn_db) {
        (Some(_), _) => String::new(),
        (None, Some(_)) => "from the endpoint".to_string(),
        (None, None) => "the Collector's default (Weir's would be otel)".to_string(),
    };
    let database = set.or(dsn_db).unwrap_or_else(|| "default".into());
    cx.report.translated(
        &o.at("database"),
        &format!("{p}.database"),
        format!(
            "{database}{}",
            if note.is_empty() {
                String::new()
            } else {
                format!(" — {note}")
            }
        ),
    );
    ch.set("database", Node::str(&database));
    for key in ["username", "password"] {
        if let Some(v) = o.str(key) {
            ch.set(key, Node::str(&v));
            cx.report.translated(&o.at(key), &format!("{p}.{key}"), "");
        }
    }
    for (from, to) in [
        ("logs_table_name", "logs_table"),
        ("traces_table_name", "traces_table"),
        ("metrics_table_name", "metrics_table"),
    ] {
        if let Some(v) = o.str(from) {
            ch.set(to, Node::str(&v));
            cx.report.translated(
                &o.at(from),
                &format!("{p}.{to}"),
                if to == "metrics_table" {
                    "the prefix of the five metric tables"
                } else {
                    ""
                },
            );
        }
    }
    let mut mt = o.child("metrics_tables");
    if !mt.is_empty() {
        metric_tables(cx, &mut mt, &p, &mut ch);
    }
    ttl(cx, o, &p, &mut ch);
    if let Some(b) = o.bool("create_schema") {
        ch.set("create_schema", Node::bool(b));
        cx.report.translated(
            &o.at("create_schema"),
            &format!("{p}.create_schema"),
            if b {
                ""
            } else {
                "start-up checks that the tables exist"
            },
        );
    }
    if let Some(c) = o.str("cluster_name") {
        ch.set("cluster", Node::str(&c));
        cx.report.translated(
            &o.at("cluster_name"),
            &format!("{p}.cluster"),
            "DDL ON CLUSTER, with ReplicatedMergeTree tables",
        );
    }
    if o.get("table_engine").is_some() {
        cx.report.unsupported(&o.at("table_engine"), "Weir creates MergeTree tables (ReplicatedMergeTree with cluster); for another engine create the tables yourself and set create_schema: false");
    }
    match o.bool("async_insert") {
        Some(true) => {
            ch.set("async_insert", Node::bool(true));
            cx.report.translated(&o.at("async_insert"), &format!("{p}.async_insert"), "");
        }
        Some(false) => cx.report.not_needed(&o.at("async_insert"), "Weir's default"),
        None => cx.report.not_needed(&o.at("async_insert"), "unset (the Collector's default is on): Weir batches large inserts itself, so it leaves async_insert off"),
    }
    match o.str("compress").as_deref() {
        None => {}
        Some(c @ ("lz4" | "zstd" | "none")) => {
            ch.set("compression", Node::str(c));
            cx.report
                .translated(&o.at("compress"), &format!("{p}.compression"), "");
        }
        Some("true") => {
            ch.set("compression", Node::str("lz4"));
            cx.report
                .translated(&o.at("compress"), &format!("{p}.compression"), "lz4");
        }
        Some(other) => cx.report.unsupported(
            &o.at("compress"),
            format!("Weir compresses with lz4, zstd or none, not {other}: lz4 (the default)"),
        ),
    }
    for key in ["connection_params", "json"] {
        if o.get(key).is_some() {
            cx.report.unsupported(&o.at(key), "Weir speaks ClickHouse's HTTP interface with its own settings and writes Map columns");
        }
    }
    if o.get("profiles_table_name").is_some() {
        cx.report
            .not_needed(&o.at("profiles_table_name"), "Weir takes no profiles");
    }
    let mut t = o.child("tls");
    let tls = stores::store_tls(cx, &mut t, &format!("{p}.tls"));
    if endpoint.starts_with("https://") && !tls.is_empty() {
        ch.set("tls", Node::Map(tls));
    }
    let mut e = Map::default();
    if ch.contains("password")
        && env::with_defaults(&endpoint).starts_with("http://")
        && !loopback(&host_of(&env::with_defaults(&endpoint)))
    {
        e.set("insecure", Node::bool(true));
        cx.report.approximate(&o.at("password"), Some(&format!("{wpath}.insecure")), "the password went in clear, as the Collector sent it; Weir refuses that beyond loopback unless insecure: true, written so — better: https://");
    }
    cx.report.translated(
        &o.path,
        &p,
        "Weir writes the Collector's table schema (layout auto: modern from ClickHouse 22.x)",
    );
    delivery::delivery(cx, o, wpath, &mut e);
    e.set("clickhouse", Node::Map(ch));
    Some(e)
}

/// Weir speaks the HTTP interface: a native-protocol DSN (`tcp://`, `clickhouse://`) becomes the
/// same host on the HTTP port. Returns the endpoint and a database named in the DSN.
fn clickhouse_endpoint(cx: &mut Ctx, path: &str, raw: &str, p: &str) -> (String, Option<String>) {
    if env::whole_reference(raw).is_some() {
        cx.report.approximate(path, Some(&format!("{p}.endpoint")), "read from a variable, which must hold the HTTP interface's URL (http://host:8123), not a tcp:// DSN");
        return (raw.to_string(), None);
    }
    let (first, others) = raw
        .split_once(',')
        .map_or((raw, None), |(a, b)| (a, Some(b)));
    if let Some(o) = others {
        cx.report.unsupported(path, format!("Weir writes to one endpoint; `{o}` left out (use a load balancer or a Distributed table)"));
    }
    let (url, query) = first.split_once('?').map_or((first, ""), |(u, q)| (u, q));
    let (scheme, rest) = url.split_once("://").unwrap_or(("tcp", url));
    let (authority, db_path) = rest.split_once('/').map_or((rest, ""), |(a, d)| (a, d));
    let mut secure = scheme == "https";
    let mut db = (!db_path.is_empty()).then(|| db_path.to_string());
    let mut dropped = Vec::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        match kv.split_once('=') {
            Some(("secure", v)) => secure = v == "true" || v == "1",
            Some(("database", v)) => db = Some(v.to_string()),
            _ => dropped.push(kv),
        }
    }
    if !dropped.is_empty() {
        cx.report.unsupported(path, format!("driver parameters {} have no Weir equivalent (Weir has its own timeouts, compression and settings)", dropped.join("&")));
    }
    let native = matches!(scheme, "tcp" | "clickhouse");
    let (host, port) = authority
        .rsplit_once(':')
        .map_or((authority, None), |(h, p)| (h, Some(p)));
    let http_port = match (native, port, secure) {
        (false, Some(p), _) => p.to_string(),
        (false, None, s) => if s { "8443" } else { "8123" }.to_string(),
        (true, _, true) => "8443".into(),
        (true, _, false) => "8123".into(),
    };
    let scheme = if secure { "https" } else { "http" };
    let endpoint = format!("{scheme}://{host}:{http_port}");
    if native {
        cx.report.approximate(path, Some(&format!("{p}.endpoint")), format!("{endpoint}: Weir speaks ClickHouse's HTTP interface, so the native {scheme_port} becomes the HTTP port {http_port} (ClickHouse's default; change it if yours differs)", scheme_port = port.map_or("port".to_string(), |p| format!("port {p}"))));
    } else {
        cx.report
            .translated(path, &format!("{p}.endpoint"), endpoint.clone());
    }
    (endpoint, db)
}

fn metric_tables(cx: &mut Ctx, mt: &mut Obj, p: &str, ch: &mut Map) {
    let name = |mt: &mut Obj, k: &str| mt.child(k).str("name");
    let gauge = name(mt, "gauge").unwrap_or_else(|| "otel_metrics_gauge".into());
    let prefix = gauge.strip_suffix("_gauge").unwrap_or(&gauge).to_string();
    let mut ok = true;
    for (k, suffix) in [
        ("sum", "_sum"),
        ("summary", "_summary"),
        ("histogram", "_histogram"),
    ] {
        let n = name(mt, k).unwrap_or_else(|| format!("otel_metrics{suffix}"));
        ok &= n == format!("{prefix}{suffix}");
    }
    let exp =
        name(mt, "exponential_histogram").unwrap_or_else(|| "otel_metrics_exp_histogram".into());
    if !ok {
        cx.report.unsupported(&mt.path, format!("Weir names the five metric tables <prefix>_gauge, _sum, _summary, _histogram, _exponential_histogram from one prefix; these names share none, so `{prefix}` is used"));
    } else {
        cx.report
            .translated(&mt.path, &format!("{p}.metrics_table"), prefix.clone());
    }
    if exp != format!("{prefix}_exponential_histogram") {
        cx.report.approximate(
            &format!("{}.exponential_histogram", mt.path),
            None,
            format!(
                "Weir writes exponential histograms to {prefix}_exponential_histogram, not {exp}"
            ),
        );
    }
    ch.set("metrics_table", Node::str(&prefix));
}

fn ttl(cx: &mut Ctx, o: &mut Obj, p: &str, ch: &mut Map) {
    let hour = 3_600_000_000_000u128;
    let (path, value) = match (o.str("ttl"), o.str("ttl_days")) {
        (Some(t), _) => (o.at("ttl"), t),
        (None, Some(d)) => (
            o.at("ttl_days"),
            format!("{}h", d.parse::<u64>().unwrap_or(0) * 24),
        ),
        (None, None) => return,
    };
    if env::has_reference(&value) {
        ch.set("ttl", Node::str(&value));
        cx.report.translated(
            &path,
            &format!("{p}.ttl"),
            "read from a variable: Weir wants whole hours",
        );
        return;
    }
    match units::go_duration(&value) {
        Some(0) => cx
            .report
            .not_needed(&path, "0: rows are kept, Weir's default"),
        Some(ns) => {
            let hours = ns.div_ceil(hour);
            ch.set("ttl", Node::str(format!("{hours}h")));
            if ns.is_multiple_of(hour) {
                cx.report
                    .translated(&path, &format!("{p}.ttl"), format!("{hours}h"));
            } else {
                cx.report.approximate(
                    &path,
                    Some(&format!("{p}.ttl")),
                    format!("{hours}h: Weir's TTL is whole hours, rounded up from {value}"),
                );
            }
        }
        None => cx
            .report
            .unsupported(&path, format!("`{value}` is not a duration")),
    }
}
