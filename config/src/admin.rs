//! `admin`: the endpoint for metrics, health and reloads, and the token that guards what changes state.

use crate::check::{invalid, is_sha256_hex, socket_addr, Invalid};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "crate::common::yes")]
    pub enabled: bool,
    #[serde(default = "admin_endpoint")]
    pub endpoint: String,
    /// Bearer token for the endpoints that change state (`POST /admin/reload`), usually
    /// `"${WEIR_ADMIN_TOKEN:-}"`; empty means none. Without one, those endpoints answer only on a
    /// loopback address. `/metrics`, `/healthz` and `/readyz` stay open.
    #[serde(default)]
    pub token: Option<String>,
    /// The token as hex SHA-256 instead (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
}

fn admin_endpoint() -> String {
    "127.0.0.1:8888".into()
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            endpoint: admin_endpoint(),
            token: None,
            token_sha256: None,
        }
    }
}

/// The endpoint is checked only when it is served; one form of token, and a digest that can be one.
pub(crate) fn check(a: &AdminConfig) -> Result<(), Invalid> {
    if !a.enabled {
        return Ok(());
    }
    socket_addr("admin.endpoint", &a.endpoint)?;
    let token = a.token.as_deref().is_some_and(|t| !t.is_empty());
    if token && a.token_sha256.is_some() {
        return Err(invalid("admin", "set token or token_sha256, not both"));
    }
    if let Some(h) = &a.token_sha256 {
        if !is_sha256_hex(h) {
            return Err(invalid(
                "admin.token_sha256",
                "must be 64 hex digits (printf %s \"$TOKEN\" | sha256sum)",
            ));
        }
    }
    Ok(())
}
