//! Receivers: the first `otlp` receiver in a pipeline becomes `receivers.grpc` / `receivers.http`
//! (Weir listens on one address of each); its authenticators become `receivers.auth`. Every other
//! receiver is reported: Weir takes OTLP only.

use super::pipelines::Role;
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{auth, env, kind, units, Ctx};

pub fn translate(cx: &mut Ctx) {
    let section = Obj::new("receivers", cx.section("receivers"));
    let mut primary = None;
    for (id, v) in section.entries() {
        let path = format!("receivers.{id}");
        if !cx.pipes.used(Role::Receiver, &id) {
            cx.report.not_needed(
                &path,
                "in no pipeline, so the Collector does not run it either",
            );
            continue;
        }
        match kind(&id) {
            "otlp" if primary.is_none() => {
                otlp(cx, &path, v);
                primary = Some(id);
            }
            "otlp" => cx.report.unsupported(
                &path,
                format!("Weir listens on one OTLP/gRPC and one OTLP/HTTP address, taken from receivers.{}: send to those", primary.as_deref().unwrap_or("otlp")),
            ),
            k => cx.report.unsupported(&path, instead(k)),
        }
    }
    if primary.is_none() {
        cx.report.approximate(
            "receivers",
            None,
            "no otlp receiver in any pipeline: Weir receives OTLP only, on its defaults 127.0.0.1:4317 (gRPC) and 127.0.0.1:4318 (HTTP)",
        );
    }
}

fn instead(kind: &str) -> String {
    let what = match kind {
        "prometheus" | "prometheus_simple" => "Weir does not scrape: send metrics over OTLP (SDKs, or a Collector agent that scrapes)",
        "filelog" | "journald" | "syslog" | "tcplog" | "udplog" | "fluentforward" => {
            "Weir does not read log files or syslog: ship logs over OTLP (an SDK, Fluent Bit's OTLP output, or a Collector agent)"
        }
        "hostmetrics" | "kubeletstats" | "k8s_cluster" | "docker_stats" => {
            "Weir collects no host or cluster metrics: keep an agent for them, exporting OTLP to Weir"
        }
        "jaeger" | "zipkin" | "opencensus" => "Weir receives OTLP only: current Jaeger and Zipkin clients export OTLP",
        _ => "Weir receives OTLP/gRPC and OTLP/HTTP only",
    };
    what.to_string()
}

fn otlp(cx: &mut Ctx, path: &str, v: &serde_yaml_ng::Value) {
    let mut o = Obj::new(path, Some(v));
    let mut protocols = o.child("protocols");
    let mut authenticators: Vec<(String, String)> = Vec::new();
    let mut open = Vec::new();
    for proto in ["grpc", "http"] {
        let weir = format!("receivers.{proto}");
        if !protocols.has(proto) {
            cx.out.path(&weir).set("enabled", Node::bool(false));
            cx.report.translated(
                &protocols.at(proto),
                &format!("{weir}.enabled"),
                format!("false: the Collector config has no {proto} protocol"),
            );
            continue;
        }
        let mut p = protocols.child(proto);
        protocol(cx, &mut p, proto, &weir);
        let mut a = p.child("auth");
        match a.str("authenticator") {
            Some(id) => authenticators.push((a.at("authenticator"), id)),
            None => open.push(p.at("auth")),
        }
        cx.report.rest(
            &a,
            "Weir's receivers.auth has tokens, tokens_file and tenant_attribute only",
        );
        cx.report
            .rest(&p, "Weir's OTLP receiver has no such setting");
    }
    cx.report
        .rest(&protocols, "Weir receives OTLP over grpc and http only");
    cx.report
        .rest(&o, "Weir's OTLP receiver has no such setting");
    if !authenticators.is_empty() {
        auth::server(cx, &authenticators, &open);
    }
}

fn protocol(cx: &mut Ctx, p: &mut Obj, proto: &str, weir: &str) {
    let default = if proto == "grpc" { 4317 } else { 4318 };
    match p.str("endpoint") {
        Some(e) => match listen_addr(&e) {
            Ok((addr, note)) => {
                cx.out.path(weir).set("endpoint", Node::str(&addr));
                let status_note = note.clone().unwrap_or_default();
                if note.is_some_and(|n| n.contains("replaced")) {
                    cx.report.approximate(&p.at("endpoint"), Some(&format!("{weir}.endpoint")), status_note);
                } else {
                    cx.report.translated(&p.at("endpoint"), &format!("{weir}.endpoint"), format!("{addr}{}", if status_note.is_empty() { String::new() } else { format!("; {status_note}") }));
                }
            }
            Err(e) => cx.report.unsupported(&p.at("endpoint"), format!("{e}; Weir keeps its default 127.0.0.1:{default}")),
        },
        None => cx.report.not_needed(
            &p.at("endpoint"),
            format!("unset: the Collector's default (localhost:{default}; 0.0.0.0 before v0.104) is Weir's default 127.0.0.1:{default}"),
        ),
    }
    let mut tls = p.child("tls");
    if !tls.is_empty() {
        server_tls(cx, &mut tls, &format!("{weir}.tls"));
    }
    let ignore_buffers = "Weir sizes its connection buffers itself";
    for key in ["read_buffer_size", "write_buffer_size"] {
        if p.get(key).is_some() {
            cx.report.not_needed(&p.at(key), ignore_buffers);
        }
    }
    if p.get("include_metadata").is_some() {
        cx.report.unsupported(&p.at("include_metadata"), "Weir does not pass request metadata down the pipeline; an authenticated tenant travels as the weir.tenant resource attribute");
    }
    if proto == "grpc" {
        if let Some(mib) = p.get("max_recv_msg_size_mib") {
            match units::mib(mib) {
                Some(size) => {
                    cx.out.path(weir).set("max_request_bytes", Node::str(&size));
                    cx.report.translated(
                        &p.at("max_recv_msg_size_mib"),
                        &format!("{weir}.max_request_bytes"),
                        size,
                    );
                }
                None => cx.report.unsupported(
                    &p.at("max_recv_msg_size_mib"),
                    "not a number of MiB; Weir keeps 16MiB",
                ),
            }
        }
        if let Some(n) = p.get("max_concurrent_streams").and_then(units::number) {
            cx.out.path(weir).set("max_concurrent_streams", n);
            cx.report.translated(
                &p.at("max_concurrent_streams"),
                &format!("{weir}.max_concurrent_streams"),
                "",
            );
        }
        if p.get("keepalive").is_some() {
            cx.report.unsupported(&p.at("keepalive"), "Weir's gRPC receiver has fixed HTTP/2 keepalive and no max_connection_age: spread long-lived connections with client-side or connection-aware load balancing");
        }
        match p.str("transport").as_deref() {
            None => {}
            Some("tcp") | Some("tcp4") | Some("tcp6") => cx
                .report
                .not_needed(&p.at("transport"), "Weir listens on TCP"),
            Some(_) => cx.report.unsupported(
                &p.at("transport"),
                "Weir listens on TCP only (no unix sockets)",
            ),
        }
    } else {
        if let Some(n) = p.get("max_request_body_size").and_then(units::number) {
            cx.out.path(weir).set("max_request_bytes", n);
            cx.report.translated(&p.at("max_request_body_size"), &format!("{weir}.max_request_bytes"), "bytes as sent; Weir also bounds the decompressed size (max_decompressed_bytes, 64MiB)");
        }
        for (key, path) in [
            ("traces_url_path", "/v1/traces"),
            ("logs_url_path", "/v1/logs"),
            ("metrics_url_path", "/v1/metrics"),
        ] {
            match p.str(key) {
                None => {}
                Some(v) if v == path => cx
                    .report
                    .not_needed(&p.at(key), format!("Weir serves {path}")),
                Some(_) => cx.report.unsupported(
                    &p.at(key),
                    format!("Weir serves {path} only: point senders there"),
                ),
            }
        }
        if p.get("cors").is_some() {
            cx.report.unsupported(&p.at("cors"), "Weir answers no CORS preflight: browsers need a proxy that adds CORS headers in front of it");
        }
        if p.get("compression_algorithms").is_some() {
            cx.report.not_needed(
                &p.at("compression_algorithms"),
                "Weir accepts gzip, zstd and uncompressed bodies",
            );
        }
    }
}

/// A Collector listen address as Weir's `address:port`: Weir binds IP addresses, so `localhost`
/// becomes 127.0.0.1 and an empty host every interface. The note says what changed.
pub fn listen_addr(e: &str) -> Result<(String, Option<String>), String> {
    if env::has_reference(e) {
        return Ok((
            e.to_string(),
            Some("reads a variable, which must hold an IP address and port (Weir binds addresses, not host names)".into()),
        ));
    }
    let Some((host, port)) = e.rsplit_once(':') else {
        return Err(format!("`{e}` has no port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("`{e}`: `{port}` is not a port"));
    }
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        Ok((
            format!("0.0.0.0:{port}"),
            Some("an empty host listens on every interface: 0.0.0.0".into()),
        ))
    } else if host.eq_ignore_ascii_case("localhost") {
        Ok((format!("127.0.0.1:{port}"), None))
    } else if ip.parse::<std::net::IpAddr>().is_ok() {
        Ok((e.to_string(), None))
    } else {
        Ok((
            format!("0.0.0.0:{port}"),
            Some(format!("Weir binds IP addresses: host `{host}` replaced by 0.0.0.0 (every interface); set the address it resolves to for less")),
        ))
    }
}

fn server_tls(cx: &mut Ctx, t: &mut Obj, weir: &str) {
    let mut m = Map::default();
    for key in ["cert_file", "key_file", "client_ca_file"] {
        if let Some(f) = t.str(key) {
            m.set(key, Node::str(&f));
            cx.report.translated(
                &t.at(key),
                &format!("{weir}.{key}"),
                if key == "client_ca_file" {
                    "clients must present a certificate it signed (mTLS)"
                } else {
                    ""
                },
            );
        }
    }
    if let Some(r) = t.str("reload_interval") {
        match units::duration(&r) {
            Ok(d) => {
                m.set("reload_interval", Node::str(&d));
                cx.report.translated(
                    &t.at("reload_interval"),
                    &format!("{weir}.reload_interval"),
                    d,
                );
            }
            Err(e) => cx.report.unsupported(&t.at("reload_interval"), e),
        }
    }
    if t.get("client_ca_file_reload").is_some() {
        cx.report.not_needed(
            &t.at("client_ca_file_reload"),
            "Weir re-reads every TLS file when it changes",
        );
    }
    if t.get("ca_file").is_some() {
        cx.report.unsupported(&t.at("ca_file"), "a receiver's ca_file has no role in Weir: client_ca_file is what requires client certificates");
    }
    match t.str("min_version").as_deref() {
        None => {}
        Some("1.2") => cx
            .report
            .not_needed(&t.at("min_version"), "Weir accepts TLS 1.2 and 1.3"),
        Some("1.3") => cx.report.unsupported(
            &t.at("min_version"),
            "Weir accepts TLS 1.2 and 1.3 (rustls); no TLS-1.3-only setting",
        ),
        Some(_) => cx.report.approximate(
            &t.at("min_version"),
            None,
            "Weir accepts TLS 1.2 and 1.3 only, never older",
        ),
    }
    for key in ["cert_pem", "key_pem", "client_ca_pem", "ca_pem"] {
        if t.get(key).is_some() {
            cx.report.unsupported(&t.at(key), "Weir reads PEM from files: write it to one and set cert_file / key_file / client_ca_file");
        }
    }
    cx.report.rest(t, "Weir's receiver TLS takes cert_file, key_file, client_ca_file and reload_interval (rustls defaults otherwise)");
    if m.contains("cert_file") && m.contains("key_file") {
        *cx.out.path(weir) = m;
    } else {
        cx.report.unsupported(
            &t.path,
            "TLS without both cert_file and key_file: Weir serves this receiver in plaintext",
        );
    }
}
