//! Authenticator extensions. On receivers, `bearertokenauth` becomes `receivers.auth` (each token a
//! tenant); on exporters, `bearertokenauth` becomes an `Authorization` header (Loki: `bearer_token`)
//! and `basicauth` Loki's username and password.
//!
//! Authentication that cannot be translated fails closed: the output still has `receivers.auth`, with
//! a token read from a variable the operator has to set, so nothing that was authenticated before is
//! accepted unauthenticated after a migration that was not read.

use super::env;
use super::report::Obj;
use super::yaml::{Map, Node};
use super::{kind, name_part, Ctx};
use sha2::{Digest, Sha256};

/// `uses`: (key path, extension id) of every receiver protocol with an authenticator; `open`: the
/// protocols without one.
pub fn server(cx: &mut Ctx, uses: &[(String, String)], open: &[String]) {
    let mut tokens: Vec<Node> = Vec::new();
    let mut seen = Vec::new();
    for (path, id) in uses {
        cx.report
            .translated(path, "receivers.auth", format!("via extensions.{id}"));
        if seen.contains(id) {
            continue;
        }
        seen.push(id.clone());
        let ext = cx.extension(id);
        let ext_path = format!("extensions.{id}");
        let tenant = name_part(id).to_string();
        if ext.is_none() {
            cx.report.unsupported(
                &ext_path,
                "not defined; receivers.auth reads a token from a variable to set",
            );
            tokens.push(fail_closed(cx, &ext_path, &tenant));
            continue;
        }
        if kind(id) != "bearertokenauth" {
            cx.report.unsupported(
                &ext_path,
                format!("Weir authenticates bearer tokens only (`Authorization: Bearer …` or `X-API-Key: …`), not {}; clients must switch, and receivers.auth reads a token from a variable to set", kind(id)),
            );
            tokens.push(fail_closed(cx, &ext_path, &tenant));
            continue;
        }
        let mut o = Obj::new(ext_path.clone(), ext);
        if let Some(s) = o.str("scheme") {
            if s.eq_ignore_ascii_case("bearer") {
                cx.report.not_needed(
                    &o.at("scheme"),
                    "Weir reads `Authorization: Bearer <token>` (and `X-API-Key: <token>`)",
                );
            } else {
                cx.report.unsupported(&o.at("scheme"), format!("Weir reads `Authorization: Bearer <token>` or `X-API-Key: <token>`; clients sending `{s} <token>` must switch"));
            }
        }
        if let Some(h) = o.str("header") {
            if h.eq_ignore_ascii_case("authorization") || h.eq_ignore_ascii_case("x-api-key") {
                cx.report
                    .not_needed(&o.at("header"), "Weir reads Authorization and X-API-Key");
            } else {
                cx.report.unsupported(
                    &o.at("header"),
                    format!("Weir reads the token from Authorization or X-API-Key, not `{h}`"),
                );
            }
        }
        let mut secrets: Vec<(String, String)> = Vec::new();
        if let Some(t) = o.str("token") {
            secrets.push((o.at("token"), t));
        }
        for (i, t) in o.strs("tokens").into_iter().enumerate() {
            secrets.push((format!("{}[{i}]", o.at("tokens")), t));
        }
        let before = tokens.len();
        let many = secrets.len() > 1;
        for (i, (path, secret)) in secrets.into_iter().enumerate() {
            let tenant = if many {
                format!("{tenant}-{}", i + 1)
            } else {
                tenant.clone()
            };
            tokens.push(token(cx, &path, &tenant, &secret));
        }
        if o.get("filename").is_some() {
            let var = var_name(&tenant);
            cx.report.approximate(
                &o.at("filename"),
                Some("receivers.auth.tokens[].token_env"),
                format!("the file holds one token; Weir reads it from the variable {var} (set {var}=\"$(cat <file>)\"), or from a tokens_file of `tenant: token` lines"),
            );
            tokens.push(token_env(&tenant, &var));
        }
        if tokens.len() == before {
            cx.report.unsupported(
                &ext_path,
                "no token: receivers.auth reads one from a variable to set",
            );
            tokens.push(fail_closed(cx, &ext_path, &tenant));
        }
        cx.report.rest(
            &o,
            "Weir's tokens have a tenant and a secret (token_env or token_sha256) only",
        );
    }
    for path in open {
        cx.report.approximate(
            path,
            Some("receivers.auth"),
            "this protocol had no authenticator, but Weir's receivers.auth covers gRPC and HTTP alike: its clients need a token too",
        );
    }
    cx.out
        .path("receivers.auth")
        .set("tokens", Node::Seq(tokens));
    cx.report.translated(
        "receivers.auth",
        "receivers.auth.tokens",
        "each token names a tenant, stamped on every resource as weir.tenant (Loki tenant_attribute, ClickHouse database_attribute and rate limits can use it); unknown tokens get UNAUTHENTICATED / 401",
    );
}

fn token(cx: &mut Ctx, path: &str, tenant: &str, secret: &str) -> Node {
    if let Some((name, default)) = env::whole_reference(secret) {
        let note = match default {
            Some(_) => format!("from {name}; its default is dropped: Weir requires {name} to be set (a token must not default)"),
            None => format!("from {name}"),
        };
        cx.report
            .translated(path, "receivers.auth.tokens[].token_env", note);
        return token_env(tenant, name);
    }
    if env::has_reference(secret) {
        cx.report.unsupported(path, "a token built from text and variables: Weir reads a whole token from one variable (token_env), written here as a variable to set");
        return token_env(tenant, &var_name(tenant));
    }
    let digest = hex::encode(Sha256::digest(secret.replace("$$", "$").as_bytes()));
    cx.report.translated(
        path,
        "receivers.auth.tokens[].token_sha256",
        "the token was in clear in the config; Weir keeps only its SHA-256 (better still: a variable with token_env)",
    );
    let mut m = Map::default();
    m.set("tenant", Node::str(tenant));
    m.set("token_sha256", Node::str(digest));
    Node::Map(m)
}

fn token_env(tenant: &str, var: &str) -> Node {
    let mut m = Map::default();
    m.set("tenant", Node::str(tenant));
    m.set("token_env", Node::str(var));
    Node::Map(m)
}

fn fail_closed(cx: &mut Ctx, path: &str, tenant: &str) -> Node {
    let var = var_name(tenant);
    cx.report.approximate(
        path,
        Some("receivers.auth.tokens[].token_env"),
        format!("fails closed: clients need a bearer token, read from {var}, which must be set"),
    );
    token_env(tenant, &var)
}

/// `WEIR_<TENANT>_TOKEN`, for tokens the operator must now provide.
fn var_name(tenant: &str) -> String {
    let t: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("WEIR_{t}_TOKEN")
}

/// What an exporter's authenticator sends.
pub enum ExporterAuth {
    /// The header value, e.g. `Bearer ${TOKEN}`.
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    None,
}

pub fn client(cx: &mut Ctx, path: &str, id: &str) -> ExporterAuth {
    let ext_path = format!("extensions.{id}");
    let Some(ext) = cx.extension(id) else {
        cx.report.unsupported(
            path,
            format!("extensions.{id} is not defined: nothing is sent"),
        );
        return ExporterAuth::None;
    };
    let mut o = Obj::new(ext_path.clone(), Some(ext));
    let out = match kind(id) {
        "bearertokenauth" => {
            let scheme = o.str("scheme").unwrap_or_else(|| "Bearer".into());
            match o.str("token") {
                Some(t) => {
                    cx.report
                        .translated(&o.at("token"), "the exporter's authorization header", "");
                    ExporterAuth::Bearer(format!("{scheme} {t}"))
                }
                None => {
                    cx.report.unsupported(&ext_path, "Weir sends a token written in the config (or a variable): set the exporter's headers.authorization");
                    ExporterAuth::None
                }
            }
        }
        "basicauth" => {
            let mut c = o.child("client_auth");
            match (c.str("username"), c.str("password")) {
                (Some(username), Some(password)) => {
                    cx.report.translated(&c.path, "username / password", "");
                    cx.report
                        .rest(&c, "Weir's basic auth has username and password only");
                    ExporterAuth::Basic { username, password }
                }
                _ => {
                    cx.report
                        .unsupported(&c.path, "needs username and password");
                    ExporterAuth::None
                }
            }
        }
        other => {
            cx.report.unsupported(&ext_path, format!("Weir has no `{other}` authenticator: set the headers it would add (exporters.NAME.otlp.headers / loki.headers)"));
            return ExporterAuth::None;
        }
    };
    cx.report
        .rest(&o, "Weir's exporters send a fixed header; no such setting");
    out
}
