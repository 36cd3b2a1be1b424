//! `exporters.<name>.loki`: log records to Grafana Loki: labels, structured metadata, line format and
//! the limits that keep a runaway label from exhausting Loki's streams.

use super::transport::{transport_security, TlsClient};
use crate::check::{invalid, positive, Invalid};
use crate::units::{ByteSize, Duration};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What becomes of log attributes that are not labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetadataMode {
    /// Every attribute not promoted to a label is structured metadata.
    #[default]
    All,
    /// Only those listed in `structured_metadata_keys`.
    Allowlist,
    /// None (trace context and severity are still sent).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineFormat {
    /// The body as is; maps and arrays as compact JSON.
    #[default]
    Raw,
    /// A JSON object with `body` and the record's attributes.
    Json,
}

/// How a Loki push body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LokiEncoding {
    /// Protobuf in snappy block format: what Loki's own clients send; smallest and fastest.
    #[default]
    Protobuf,
    /// Loki's JSON push format, for gateways and proxies that only speak JSON.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OversizeLine {
    /// Cut at `max_line_bytes` (on a UTF-8 boundary) and keep the record.
    #[default]
    Truncate,
    /// Drop the record (counted).
    Drop,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiExporter {
    /// Base URL, e.g. `http://127.0.0.1:3100`; records go to `/loki/api/v1/push`.
    pub endpoint: String,
    /// For `https://` endpoints.
    #[serde(default)]
    pub tls: Option<TlsClient>,
    /// `X-Scope-OrgID` for every request.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A resource attribute naming the tenant (overrides `tenant` where present): one request per tenant.
    #[serde(default)]
    pub tenant_attribute: Option<String>,
    /// Resource attributes promoted to labels (`.` becomes `_`).
    #[serde(default = "loki_resource_labels")]
    pub resource_labels: Vec<String>,
    /// Log-record attributes promoted to labels; keep this short, labels are Loki's index.
    #[serde(default)]
    pub attribute_labels: Vec<String>,
    /// Adds `level` (from severity) as a label.
    #[serde(default)]
    pub severity_label: bool,
    #[serde(default)]
    pub structured_metadata: MetadataMode,
    #[serde(default)]
    pub structured_metadata_keys: Vec<String>,
    #[serde(default)]
    pub line_format: LineFormat,
    #[serde(default = "loki_max_line")]
    pub max_line_bytes: ByteSize,
    #[serde(default)]
    pub oversize_lines: OversizeLine,
    #[serde(default)]
    pub encoding: LokiEncoding,
    /// Σ(line + structured metadata) per request; Loki's clients use 1 MiB.
    #[serde(default = "loki_max_request")]
    pub max_request_bytes: ByteSize,
    /// Distinct streams allowed per `stream_window`; past it the label with the most distinct values
    /// is set to `overflow` for new streams, so a runaway label cannot hit Loki's stream limit.
    #[serde(default = "loki_max_streams")]
    pub max_streams: usize,
    #[serde(default = "loki_stream_window")]
    pub stream_window: Duration,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The resource attributes Loki's own OTLP ingestion makes index labels.
fn loki_resource_labels() -> Vec<String> {
    [
        "service.name",
        "service.namespace",
        "service.instance.id",
        "deployment.environment",
        "deployment.environment.name",
        "cloud.region",
        "cloud.availability_zone",
        "k8s.cluster.name",
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.container.name",
        "container.name",
        "k8s.replicaset.name",
        "k8s.deployment.name",
        "k8s.statefulset.name",
        "k8s.daemonset.name",
        "k8s.cronjob.name",
        "k8s.job.name",
    ]
    .map(String::from)
    .to_vec()
}

fn loki_max_line() -> ByteSize {
    ByteSize::kib(256)
}

fn loki_max_request() -> ByteSize {
    ByteSize::mib(1)
}

fn loki_max_streams() -> usize {
    2000
}

fn loki_stream_window() -> Duration {
    Duration::secs(3600)
}

/// An http(s) URL, credentials of one kind and not in clear, limits above zero. Which signals Loki
/// takes is [`super::ExporterKind::signals`], checked with the other delivery settings.
pub(crate) fn check(path: &str, l: &LokiExporter, insecure: bool) -> Result<(), Invalid> {
    let creds = if l.password.is_some() || l.username.is_some() {
        Some("basic auth")
    } else if l.bearer_token.is_some() {
        Some("the bearer token")
    } else {
        (!l.headers.is_empty()).then_some("headers")
    };
    let plaintext = l.endpoint.starts_with("http://");
    transport_security(
        path,
        "loki",
        &l.endpoint,
        plaintext,
        l.tls.is_some(),
        creds,
        insecure,
    )?;
    let p = format!("{path}.loki");
    if !(l.endpoint.starts_with("http://") || l.endpoint.starts_with("https://")) {
        return Err(invalid(
            format!("{p}.endpoint"),
            format!("`{}` must be an http:// or https:// URL", l.endpoint),
        ));
    }
    positive(&format!("{p}.max_request_bytes"), l.max_request_bytes.0)?;
    positive(&format!("{p}.max_streams"), l.max_streams as u64)?;
    if l.bearer_token.is_some() && l.username.is_some() {
        return Err(invalid(
            p,
            "set either username/password or bearer_token, not both",
        ));
    }
    Ok(())
}
