//! Ingest authentication: which tenant, if any, a request's token names.
//!
//! Tokens are kept only as SHA-256 digests, and a presented token is hashed and compared with every
//! known digest in constant time (no early exit), so neither the comparison nor the lookup order leaks
//! how close a guess came.

use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use weir_config::AuthConfig;
use weir_pipeline::metrics::{Counter, Registry};

pub struct Auth {
    tokens: Vec<([u8; 32], Arc<str>)>,
    pub tenant_attribute: String,
    trusted: Vec<String>,
    refused: [Counter; 2],
}

/// The tenant a request authenticated as; rides in the request's extensions from the receiver's
/// front door to the intake.
#[derive(Clone)]
pub struct Tenant(pub Arc<str>);

impl Auth {
    /// Reads the tokens from the environment, digests and the tokens file; errors name the key.
    pub fn load(
        c: &AuthConfig,
        env: impl Fn(&str) -> Option<String>,
        registry: &Registry,
    ) -> Result<Self, String> {
        let mut tokens = Vec::new();
        for (i, t) in c.tokens.iter().enumerate() {
            let digest = match (&t.token_env, &t.token_sha256) {
                (Some(var), _) => {
                    let token = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                        format!("receivers.auth.tokens[{i}].token_env: environment variable {var} is not set or empty")
                    })?;
                    digest(&token)
                }
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest)
                        .map_err(|e| format!("receivers.auth.tokens[{i}].token_sha256: {e}"))?;
                    bytes.try_into().map_err(|_| {
                        format!("receivers.auth.tokens[{i}].token_sha256: not 32 bytes")
                    })?
                }
                (None, None) => return Err(format!("receivers.auth.tokens[{i}]: no token")),
            };
            tokens.push((digest, Arc::from(t.tenant.as_str())));
        }
        if let Some(path) = &c.tokens_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("receivers.auth.tokens_file: cannot read {path}: {e}"))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((tenant, token)) = line.split_once(':') else {
                    return Err(format!(
                        "receivers.auth.tokens_file: {path}:{}: expected `tenant: token`",
                        n + 1
                    ));
                };
                let (tenant, token) = (tenant.trim(), token.trim());
                if tenant.is_empty() || token.is_empty() {
                    return Err(format!(
                        "receivers.auth.tokens_file: {path}:{}: empty tenant or token",
                        n + 1
                    ));
                }
                tokens.push((digest(token), Arc::from(tenant)));
            }
        }
        if tokens.is_empty() {
            return Err("receivers.auth: no tokens".into());
        }
        let refused = |transport| {
            registry.counter(
                "weir_receiver_refused_requests_total",
                "Requests refused before decoding, by reason.",
                &[("transport", transport), ("reason", "unauthenticated")],
            )
        };
        Ok(Auth {
            tokens,
            tenant_attribute: c.tenant_attribute.clone(),
            trusted: c.trusted_tenant_from.clone(),
            refused: [refused("grpc"), refused("http")],
        })
    }

    /// Whether requests of `tenant` keep the tenants their resources carry.
    pub fn trusts(&self, tenant: &str) -> bool {
        self.trusted.iter().any(|t| t == tenant)
    }

    /// The tenant of a request's token, or `None` (counted) when it has no known one.
    pub fn check(
        &self,
        transport: crate::receive::Transport,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Option<Tenant> {
        let tenant = self.tenant(authorization, api_key);
        if tenant.is_none() {
            self.refused[transport as usize].inc();
        }
        tenant.map(Tenant)
    }

    /// The tenant of the token in `authorization` (`Bearer …`) or `api_key`; `None` when neither holds
    /// a known token.
    pub fn tenant(&self, authorization: Option<&str>, api_key: Option<&str>) -> Option<Arc<str>> {
        let token = authorization
            .and_then(bearer)
            .or(api_key.map(str::trim))
            .filter(|t| !t.is_empty())?;
        let presented = digest(token);
        let mut found = None;
        for (known, tenant) in &self.tokens {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(tenant.clone());
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer …` value (scheme in any case).
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_config::TokenConfig;

    #[test]
    fn tokens_from_env_digest_and_file_name_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, "# tenants\nteam-c: file-token\n").unwrap();
        let cfg = AuthConfig {
            tokens: vec![
                TokenConfig {
                    tenant: "team-a".into(),
                    token_env: Some("A_TOKEN".into()),
                    token_sha256: None,
                },
                TokenConfig {
                    tenant: "team-b".into(),
                    token_env: None,
                    token_sha256: Some(hex::encode(digest("b-secret"))),
                },
            ],
            tokens_file: Some(file.display().to_string()),
            tenant_attribute: "weir.tenant".into(),
            trusted_tenant_from: Vec::new(),
        };
        let registry = Registry::new();
        let auth = Auth::load(
            &cfg,
            |k| (k == "A_TOKEN").then(|| "a-secret".into()),
            &registry,
        )
        .unwrap();
        assert_eq!(
            auth.tenant(Some("Bearer a-secret"), None).as_deref(),
            Some("team-a")
        );
        assert_eq!(
            auth.tenant(Some("bearer  b-secret "), None).as_deref(),
            Some("team-b")
        );
        assert_eq!(
            auth.tenant(None, Some("file-token")).as_deref(),
            Some("team-c")
        );
        assert_eq!(auth.tenant(Some("Bearer wrong"), None), None);
        assert_eq!(
            auth.tenant(Some("Basic a-secret"), None),
            None,
            "only bearer tokens"
        );
        assert_eq!(auth.tenant(None, None), None);
        let missing = Auth::load(&cfg, |_| None, &registry).err().unwrap();
        assert!(
            missing.contains("tokens[0].token_env") && missing.contains("A_TOKEN"),
            "{missing}"
        );
    }
}
