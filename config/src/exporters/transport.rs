//! How an exporter reaches its destination safely: client TLS, and the rule that credentials do not
//! cross the network in clear.

use crate::check::{invalid, Invalid};
use serde::Deserialize;

/// TLS on an exporter's connections. Without `ca_file` the system's CA bundle is trusted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClient {
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM) for servers that require mTLS.
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    /// The name to verify the server's certificate against, when it differs from the endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// Whether `host` (no port, brackets allowed) is this machine.
fn loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of `http://host:port/...`, `https://…` or `host:port`.
fn host_of(endpoint: &str) -> &str {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Credentials must not cross the network in clear: refused unless `insecure: true`. And `tls:`
/// with an `http://` endpoint would be silently ignored, so it is an error.
pub(crate) fn transport_security(
    path: &str,
    what: &str,
    endpoint: &str,
    plaintext: bool,
    tls: bool,
    credentials: Option<&str>,
    insecure: bool,
) -> Result<(), Invalid> {
    if tls && endpoint.starts_with("http://") {
        return Err(invalid(
            format!("{path}.{what}.tls"),
            format!("`{endpoint}` is http://: use https:// with tls, or drop tls"),
        ));
    }
    if let Some(creds) = credentials {
        if plaintext && !insecure && !loopback_host(host_of(endpoint)) {
            return Err(invalid(
                format!("{path}.{what}"),
                format!("{creds} would go in clear to `{endpoint}`: use https:// (or tls), or set `{path}.insecure: true`"),
            ));
        }
    }
    Ok(())
}
