//! `exporters.<name>.otlp`: OTLP to other collectors, with trace-aware load balancing.

use super::transport::{transport_security, TlsClient};
use crate::check::{invalid, positive, Invalid};
use crate::units::Duration;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Forwards OTLP to other collectors (a gateway fleet): spans of one trace, and logs carrying its id,
/// always go to the same backend, chosen by rendezvous hashing over the live backends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporter {
    /// Static backends: `host:port` or `http://host:port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Backends from DNS: `name:port`, every address the name resolves to (a Kubernetes headless
    /// Service), re-resolved every `resolve_interval`.
    #[serde(default)]
    pub resolve: Option<String>,
    #[serde(default = "resolve_interval")]
    pub resolve_interval: Duration,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    #[serde(default)]
    pub compression: OtlpCompression,
    /// What decides the backend: `trace_id` (logs without one fall back to their resource), `service`
    /// (the resource's `service.name`) or `resource` (all resource attributes).
    #[serde(default)]
    pub routing: Routing,
    /// Sent with every request (e.g. `authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Consecutive failed attempts after which a backend's keys move to the others.
    #[serde(default = "eject_after")]
    pub eject_after: u32,
    /// How long an ejected backend is left alone before it is tried again.
    #[serde(default = "eject_for")]
    pub eject_for: Duration,
    /// TLS to the backends (also implied by `https://` endpoints).
    #[serde(default)]
    pub tls: Option<TlsClient>,
}

fn resolve_interval() -> Duration {
    Duration::secs(30)
}

fn eject_after() -> u32 {
    3
}

fn eject_for() -> Duration {
    Duration::secs(10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    #[default]
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OtlpCompression {
    None,
    Gzip,
    #[default]
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    #[default]
    TraceId,
    Service,
    Resource,
}

/// Backends given one way, each `host:port`; headers (credentials, often) not sent in clear.
pub(crate) fn check(path: &str, o: &OtlpExporter, insecure: bool) -> Result<(), Invalid> {
    let p = format!("{path}.otlp");
    match (o.endpoints.is_empty(), &o.resolve) {
        (true, None) => {
            return Err(invalid(
                p,
                "set `endpoints: [host:port, …]` or `resolve: name:port` (DNS)",
            ))
        }
        (false, Some(_)) => return Err(invalid(p, "set `endpoints` or `resolve`, not both")),
        _ => {}
    }
    for (i, ep) in o.endpoints.iter().enumerate() {
        let host_port = ep
            .strip_prefix("http://")
            .or_else(|| ep.strip_prefix("https://"))
            .unwrap_or(ep);
        if !is_host_port(host_port) {
            return Err(invalid(
                format!("{p}.endpoints[{i}]"),
                format!("`{ep}` is not host:port"),
            ));
        }
    }
    if let Some(r) = &o.resolve {
        if !is_host_port(r) {
            return Err(invalid(
                format!("{p}.resolve"),
                format!("`{r}` is not name:port"),
            ));
        }
    }
    positive(&format!("{p}.eject_after"), u64::from(o.eject_after))?;
    let creds = (!o.headers.is_empty()).then_some("headers");
    for ep in o.endpoints.iter().chain(o.resolve.as_ref()) {
        let plaintext = o.tls.is_none() && !ep.starts_with("https://");
        transport_security(
            path,
            "otlp",
            ep,
            plaintext,
            o.tls.is_some(),
            creds,
            insecure,
        )?;
    }
    Ok(())
}

fn is_host_port(v: &str) -> bool {
    v.rsplit_once(':')
        .is_some_and(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok())
}
