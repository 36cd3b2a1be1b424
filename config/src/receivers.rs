//! `receivers`: where OTLP comes in (gRPC, HTTP, their TLS), how many requests are read at once, and
//! ingest authentication. Defaults listen on loopback only, so an unconfigured Weir is not an open
//! relay.

use crate::check::{invalid, is_sha256_hex, positive, socket_addr, Invalid};
use crate::units::{ByteSize, Duration};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receivers {
    #[serde(default)]
    pub grpc: GrpcReceiver,
    #[serde(default)]
    pub http: HttpReceiver,
    /// Requests read and decoded at once across both receivers; more wait. Bounds request memory to
    /// about this many times the request size limits.
    #[serde(default = "max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// When set, every request must carry a known token; its tenant travels with the data.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

fn max_concurrent_requests() -> usize {
    128
}

impl Default for Receivers {
    fn default() -> Self {
        Receivers {
            grpc: GrpcReceiver::default(),
            http: HttpReceiver::default(),
            max_concurrent_requests: max_concurrent_requests(),
            auth: None,
        }
    }
}

/// Ingest authentication: a token in `Authorization: Bearer …` or `X-API-Key: …` (gRPC metadata or
/// HTTP header), compared by SHA-256 in constant time, names the tenant. The tenant is stamped on every
/// resource as `tenant_attribute`, where exporters (Loki's `tenant_attribute`) and rate limits
/// (`key: weir.tenant`) pick it up.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// A file of `tenant: token` lines (`#` comments), read at start.
    #[serde(default)]
    pub tokens_file: Option<String>,
    #[serde(default = "tenant_attribute")]
    pub tenant_attribute: String,
    /// Tenants (token names) whose requests keep the tenant attribute their resources carry: edges
    /// that authenticated their own clients and stamped them. Everyone else's is overwritten with
    /// their own tenant.
    #[serde(default)]
    pub trusted_tenant_from: Vec<String>,
}

fn tenant_attribute() -> String {
    "weir.tenant".into()
}

/// One token; the secret comes from the environment or as its SHA-256, never in clear in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub tenant: String,
    #[serde(default)]
    pub token_env: Option<String>,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcReceiver {
    #[serde(default = "crate::common::yes")]
    pub enabled: bool,
    #[serde(default = "grpc_endpoint")]
    pub endpoint: String,
    /// Largest accepted message after decompression; tonic stops decompressing past it.
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// HTTP/2 streams one connection may have open at once.
    #[serde(default = "max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    #[serde(default)]
    pub tls: Option<TlsServer>,
}

fn grpc_endpoint() -> String {
    "127.0.0.1:4317".into()
}

fn max_request_bytes() -> ByteSize {
    ByteSize::mib(16)
}

fn max_concurrent_streams() -> u32 {
    256
}

impl Default for GrpcReceiver {
    fn default() -> Self {
        GrpcReceiver {
            enabled: true,
            endpoint: grpc_endpoint(),
            max_request_bytes: max_request_bytes(),
            max_concurrent_streams: max_concurrent_streams(),
            tls: None,
        }
    }
}

/// TLS on a receiver (rustls). The files are re-read when they change, so a rotated certificate is
/// served to new connections without a restart.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA certificates: when set, clients must present a certificate signed by one (mTLS).
    #[serde(default)]
    pub client_ca_file: Option<String>,
    /// How often the files are checked for changes.
    #[serde(default = "tls_reload_interval")]
    pub reload_interval: Duration,
}

fn tls_reload_interval() -> Duration {
    Duration::secs(5)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpReceiver {
    #[serde(default = "crate::common::yes")]
    pub enabled: bool,
    #[serde(default = "http_endpoint")]
    pub endpoint: String,
    /// Largest accepted body as sent (possibly compressed).
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: ByteSize,
    /// Largest body after decompression; a compression bomb stops here with bounded memory.
    #[serde(default = "max_decompressed_bytes")]
    pub max_decompressed_bytes: ByteSize,
    #[serde(default)]
    pub tls: Option<TlsServer>,
}

fn http_endpoint() -> String {
    "127.0.0.1:4318".into()
}

fn max_decompressed_bytes() -> ByteSize {
    ByteSize::mib(64)
}

impl Default for HttpReceiver {
    fn default() -> Self {
        HttpReceiver {
            enabled: true,
            endpoint: http_endpoint(),
            max_request_bytes: max_request_bytes(),
            max_decompressed_bytes: max_decompressed_bytes(),
            tls: None,
        }
    }
}

/// At least one receiver, each with an address to bind and limits above zero; tokens set one way
/// each, so a secret is never in clear in the file.
pub(crate) fn check(r: &Receivers) -> Result<(), Invalid> {
    if !r.grpc.enabled && !r.http.enabled {
        return Err(invalid(
            "receivers",
            "at least one of grpc and http must be enabled",
        ));
    }
    if r.grpc.enabled {
        socket_addr("receivers.grpc.endpoint", &r.grpc.endpoint)?;
        positive(
            "receivers.grpc.max_request_bytes",
            r.grpc.max_request_bytes.0,
        )?;
        positive(
            "receivers.grpc.max_concurrent_streams",
            u64::from(r.grpc.max_concurrent_streams),
        )?;
    }
    if r.http.enabled {
        socket_addr("receivers.http.endpoint", &r.http.endpoint)?;
        positive(
            "receivers.http.max_request_bytes",
            r.http.max_request_bytes.0,
        )?;
        positive(
            "receivers.http.max_decompressed_bytes",
            r.http.max_decompressed_bytes.0,
        )?;
    }
    positive(
        "receivers.max_concurrent_requests",
        r.max_concurrent_requests as u64,
    )?;
    if let Some(auth) = &r.auth {
        check_auth(auth)?;
    }
    Ok(())
}

fn check_auth(auth: &AuthConfig) -> Result<(), Invalid> {
    if auth.tokens.is_empty() && auth.tokens_file.is_none() {
        return Err(invalid("receivers.auth", "set `tokens` or `tokens_file`"));
    }
    for (i, t) in auth.tokens.iter().enumerate() {
        let path = format!("receivers.auth.tokens[{i}]");
        if t.tenant.is_empty() {
            return Err(invalid(format!("{path}.tenant"), "must not be empty"));
        }
        match (&t.token_env, &t.token_sha256) {
            (Some(_), None) => {}
            (None, Some(h)) if is_sha256_hex(h) => {}
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{path}.token_sha256"),
                    "must be 64 hex digits",
                ))
            }
            _ => {
                return Err(invalid(
                    path,
                    "set exactly one of token_env and token_sha256",
                ))
            }
        }
    }
    Ok(())
}
