//! `otlp` (gRPC) and `otlphttp` exporters → Weir's `otlp` exporter, and the settings all OTLP
//! exporters share (compression, headers, authenticator, TLS), load balancing included.

use super::endpoint::{host_of, loopback, scheme_of, Scheme};
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{auth, delivery, env, Ctx};

pub fn grpc(cx: &mut Ctx, o: &mut Obj, wpath: &str) -> Option<Map> {
    let Some(raw) = o.str("endpoint") else {
        cx.report.unsupported(&o.path, "no endpoint: not written");
        return None;
    };
    if raw.starts_with("unix:") {
        cx.report.unsupported(
            &o.at("endpoint"),
            "Weir connects over TCP only: not written",
        );
        return None;
    }
    let mut endpoint = raw.strip_prefix("dns:///").unwrap_or(&raw).to_string();
    let scheme = scheme_of(&endpoint);
    if scheme == Scheme::Http {
        endpoint = endpoint.trim_start_matches("http://").to_string();
    }
    cx.report.translated(
        &o.at("endpoint"),
        &format!("{wpath}.otlp.endpoints"),
        format!("{endpoint} (gRPC)"),
    );
    let mut otlp = Map::default();
    otlp.set("endpoints", Node::strs(&[endpoint.as_str()]));
    otlp.set("protocol", Node::str("grpc"));
    let mut e = Map::default();
    settings(cx, o, wpath, &mut otlp, &mut e, true, scheme, &[endpoint]);
    e.set("otlp", Node::Map(otlp));
    Some(e)
}

pub fn http(cx: &mut Ctx, o: &mut Obj, wpath: &str) -> Option<Map> {
    let mut base = None;
    if let Some(raw) = o.str("endpoint") {
        match http_base(&raw) {
            Ok((b, dropped)) => {
                match dropped {
                    Some(p) => cx.report.unsupported(&o.at("endpoint"), format!("Weir posts to {b}/v1/<signal>: the path prefix `{p}` has no equivalent (put a proxy in front, or use a host that serves /v1/…)")),
                    None => cx.report.translated(&o.at("endpoint"), &format!("{wpath}.otlp.endpoints"), format!("{b} (HTTP; Weir posts to /v1/traces, /v1/logs, /v1/metrics)")),
                }
                base = Some(b);
            }
            Err(e) => cx.report.unsupported(&o.at("endpoint"), e),
        }
    }
    for (key, suffix) in [
        ("traces_endpoint", "/v1/traces"),
        ("logs_endpoint", "/v1/logs"),
        ("metrics_endpoint", "/v1/metrics"),
    ] {
        let Some(url) = o.str(key) else { continue };
        let derived = url.strip_suffix(suffix).map(http_base);
        match (derived, &base) {
            (Some(Ok((b, None))), None) => {
                cx.report.translated(&o.at(key), &format!("{wpath}.otlp.endpoints"), format!("{b} (the standard path)"));
                base = Some(b);
            }
            (Some(Ok((b, None))), Some(known)) if b == *known => {
                cx.report.not_needed(&o.at(key), "the standard path under the same endpoint");
            }
            _ => cx.report.unsupported(&o.at(key), format!("Weir posts every signal to <endpoint>/v1/<signal>; `{url}` cannot be expressed")),
        }
    }
    let Some(base) = base else {
        cx.report
            .unsupported(&o.path, "no usable endpoint: not written");
        return None;
    };
    match o.str("encoding").as_deref() {
        None => {}
        Some("proto") => cx
            .report
            .not_needed(&o.at("encoding"), "Weir sends OTLP/HTTP protobuf"),
        Some(_) => cx.report.unsupported(
            &o.at("encoding"),
            "Weir sends OTLP/HTTP protobuf only (every OTLP/HTTP server takes it)",
        ),
    }
    let mut otlp = Map::default();
    otlp.set("endpoints", Node::strs(&[base.as_str()]));
    otlp.set("protocol", Node::str("http"));
    let mut e = Map::default();
    let scheme = scheme_of(&base);
    settings(cx, o, wpath, &mut otlp, &mut e, false, scheme, &[base]);
    e.set("otlp", Node::Map(otlp));
    Some(e)
}

/// `scheme://host:port` of an OTLP/HTTP URL (the scheme's port when none is given), and a path
/// prefix Weir cannot keep.
fn http_base(url: &str) -> Result<(String, Option<String>), String> {
    if env::has_reference(url) && !env::with_defaults(url).contains("://") {
        return Ok((url.to_string(), None));
    }
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| {
            matches!(env::with_defaults(s).as_str(), "http" | "https") || env::has_reference(s)
        })
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_end = authority.rfind(']').unwrap_or(0);
    let has_port = authority[host_end..].contains(':');
    let port = if has_port {
        ""
    } else if scheme == "https" {
        ":443"
    } else {
        ":80"
    };
    let path = path.trim_end_matches('/');
    let dropped = (!path.is_empty()).then(|| format!("/{path}"));
    Ok((format!("{scheme}://{authority}{port}"), dropped))
}

/// Compression, headers, authenticator, TLS and delivery of the OTLP exporters; `grpc` picks the
/// Collector's TLS rule.
#[allow(clippy::too_many_arguments)]
pub fn settings(
    cx: &mut Ctx,
    o: &mut Obj,
    wpath: &str,
    otlp: &mut Map,
    e: &mut Map,
    grpc: bool,
    scheme: Scheme,
    endpoints: &[String],
) {
    let (compression, status) = match o.str("compression").as_deref() {
        None => ("gzip", "unset: the Collector sends gzip, kept (Weir's own default zstd is cheaper, and OTLP receivers take both)".to_string()),
        Some("gzip") => ("gzip", String::new()),
        Some("zstd") => ("zstd", String::new()),
        Some("none") | Some("") => ("none", String::new()),
        Some(other) => ("gzip", format!("Weir compresses with gzip, zstd or none; `{other}` is written as gzip")),
    };
    otlp.set("compression", Node::str(compression));
    if status.contains("written as") {
        cx.report.approximate(
            &o.at("compression"),
            Some(&format!("{wpath}.otlp.compression")),
            status,
        );
    } else {
        cx.report.translated(
            &o.at("compression"),
            &format!("{wpath}.otlp.compression"),
            if status.is_empty() {
                compression.to_string()
            } else {
                status
            },
        );
    }
    let mut headers = Map::default();
    let mut h = o.child("headers");
    for (k, _) in h.entries() {
        if let Some(v) = h.str(&k) {
            headers.set(&k, Node::str(v));
        }
    }
    if !headers.is_empty() {
        cx.report
            .translated(&h.path, &format!("{wpath}.otlp.headers"), "");
    }
    let mut a = o.child("auth");
    if let Some(id) = a.str("authenticator") {
        match auth::client(cx, &a.at("authenticator"), &id) {
            auth::ExporterAuth::Bearer(v) => {
                headers.set("authorization", Node::str(v));
                cx.report.translated(&a.path, &format!("{wpath}.otlp.headers.authorization"), "");
            }
            auth::ExporterAuth::Basic { .. } => cx.report.unsupported(&a.path, "Weir's otlp exporter sends fixed headers: write `authorization: Basic <base64 of user:password>` under headers"),
            auth::ExporterAuth::None => {}
        }
    }
    cx.report.rest(&a, "");
    let mut t = o.child("tls");
    let (insecure, tls) = client_tls(cx, &mut t, &format!("{wpath}.otlp.tls"));
    let use_tls = match scheme {
        Scheme::Https => true,
        Scheme::Http => false,
        Scheme::Bare => grpc && insecure != Some(true),
    };
    if use_tls && (scheme == Scheme::Bare || !tls.is_empty()) {
        otlp.set("tls", Node::Map(tls));
        if scheme == Scheme::Bare && insecure.is_none() {
            cx.report.translated(&t.path, &format!("{wpath}.otlp.tls"), "the Collector's gRPC exporter uses TLS unless tls.insecure: true, so Weir does too (system CAs unless ca_file)");
        }
    } else if !use_tls && !tls.is_empty() {
        cx.report.not_needed(
            &t.path,
            "the endpoint is plaintext (http:// or tls.insecure), so the TLS files are not used",
        );
    }
    if let Some(i) = insecure {
        cx.report.translated(
            &t.at("insecure"),
            &format!("{wpath}.otlp.tls"),
            if i && grpc {
                "true: plaintext, no tls"
            } else {
                "TLS"
            },
        );
    }
    if !headers.is_empty() {
        let plaintext = !use_tls;
        if plaintext
            && endpoints
                .iter()
                .any(|ep| !loopback(&host_of(&env::with_defaults(ep))))
        {
            e.set("insecure", Node::bool(true));
            cx.report.approximate(&h.path, Some(&format!("{wpath}.insecure")), "these headers went in clear, as the Collector sent them; Weir refuses that beyond loopback unless insecure: true, written so — better: TLS");
        }
        otlp.set("headers", Node::Map(headers));
    }
    cx.report.rest(&h, "");
    for key in [
        "balancer_name",
        "keepalive",
        "wait_for_ready",
        "read_buffer_size",
        "write_buffer_size",
        "max_idle_conns",
        "max_idle_conns_per_host",
        "max_conns_per_host",
        "idle_conn_timeout",
        "disable_keep_alives",
        "http2_read_idle_timeout",
        "http2_ping_timeout",
    ] {
        if o.get(key).is_some() {
            cx.report.not_needed(
                &o.at(key),
                "Weir manages its connections (HTTP/2, pinged at the exporter's timeout, 1–10 s)",
            );
        }
    }
    delivery::delivery(cx, o, wpath, e);
}

/// `(tls.insecure, Weir's tls block)`.
fn client_tls(cx: &mut Ctx, t: &mut Obj, weir: &str) -> (Option<bool>, Map) {
    let insecure = t.bool("insecure");
    let m = super::stores::tls_files(cx, t, weir, "");
    if t.bool("insecure_skip_verify") == Some(true) {
        cx.report.unsupported(&t.at("insecure_skip_verify"), "Weir always verifies the server's certificate: give it the CA (ca_file) or the name it was issued for (server_name)");
    }
    for key in ["ca_pem", "cert_pem", "key_pem"] {
        if t.get(key).is_some() {
            cx.report.unsupported(
                &t.at(key),
                "Weir reads PEM from files: write it to one and set the _file key",
            );
        }
    }
    cx.report.rest(t, "Weir's exporter TLS takes ca_file, cert_file, key_file and server_name (rustls: TLS 1.2 and 1.3)");
    (insecure, m)
}
