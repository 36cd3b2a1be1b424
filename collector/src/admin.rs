//! The admin endpoint: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz`, and
//! `POST /admin/reload` (stage policies from the config file) and `GET /admin/tap` (live tap).
//! Readiness turns false as soon as shutdown starts, so load balancers stop sending first.
//!
//! What changes state needs `Authorization: Bearer <admin.token>` when a token is set, and without one
//! answers only on a loopback address: a probe port opened to the cluster must not let anyone swap
//! the sampling and redaction policies. Reloads run on the blocking pool, one at a time, so a storm
//! of them never holds up the receivers.

mod tap;

use crate::shutdown::ShutdownSignal;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use weir_pipeline::metrics::Registry;

pub struct AdminState {
    /// SHA-256 of the admin token; `None` without one.
    pub token: Option<[u8; 32]>,
    /// Reloads queue here, so at most one occupies a blocking thread.
    pub reloading: tokio::sync::Mutex<()>,
    pub registry: Arc<Registry>,
    pub ready: AtomicBool,
    /// Durable logs report disk errors here.
    pub intake: Option<Arc<crate::intake::Intake>>,
    pub policies: Arc<crate::reload::Policies>,
}

pub async fn bind(
    endpoint: &str,
    state: Arc<AdminState>,
    shutdown: ShutdownSignal,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let addr: SocketAddr = endpoint.parse()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/admin/reload", axum::routing::post(reload))
        .route("/admin/tap", get(tap_stream))
        .with_state((state, local));
    Ok((local, async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
        {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    }))
}

type Admin = (Arc<AdminState>, SocketAddr);

async fn metrics(State((s, _)): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.registry.render(),
    )
}

/// The SHA-256 of `admin.token` or `admin.token_sha256` (validated when the config was loaded).
pub fn token_digest(c: &weir_config::AdminConfig) -> Option<[u8; 32]> {
    if let Some(t) = c.token.as_deref().filter(|t| !t.is_empty()) {
        return Some(crate::auth::digest(t));
    }
    hex::decode(c.token_sha256.as_deref()?)
        .ok()?
        .try_into()
        .ok()
}

/// Why a state-changing request may not go on, if it may not.
fn refuse(
    s: &AdminState,
    local: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> Option<(StatusCode, String)> {
    use subtle::ConstantTimeEq;
    let Some(token) = &s.token else {
        return (!local.ip().is_loopback()).then(|| {
            (
                StatusCode::FORBIDDEN,
                format!("refused: the admin endpoint listens on {local}, beyond loopback, and admin.token is not set; set it (e.g. token: \"${{WEIR_ADMIN_TOKEN:-}}\") to allow this\n"),
            )
        });
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .map(crate::auth::digest);
    match presented {
        Some(d) if bool::from(d.ct_eq(token)) => None,
        _ => Some((
            StatusCode::UNAUTHORIZED,
            "refused: send Authorization: Bearer <admin token>\n".into(),
        )),
    }
}

/// Answers with the new policy version, or 400 and the reason (the running policies stay).
async fn reload(
    State((s, local)): State<Admin>,
    headers: axum::http::HeaderMap,
) -> impl IntoResponse {
    if let Some(refusal) = refuse(&s, local, &headers) {
        tracing::warn!(status = %refusal.0, "POST /admin/reload refused");
        return refusal;
    }
    let _turn = s.reloading.lock().await;
    let policies = s.policies.clone();
    let outcome = tokio::task::spawn_blocking(move || policies.reload())
        .await
        .unwrap_or_else(|e| Err(format!("reload failed: {e}")));
    match outcome {
        Ok((version, note)) => {
            tracing::info!(version, "policies reloaded via /admin/reload");
            let note = note.map(|n| format!("; {n}")).unwrap_or_default();
            (StatusCode::OK, format!("policy version {version}{note}\n"))
        }
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running policies stay");
            (StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
    }
}

/// Streams a live tap. It shows telemetry itself, so it is guarded like a reload.
async fn tap_stream(
    State((s, local)): State<Admin>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if let Some(refusal) = refuse(&s, local, &headers) {
        tracing::warn!(status = %refusal.0, "GET /admin/tap refused");
        return refusal.into_response();
    }
    match tap::parse(uri.query()) {
        Ok((filter, rate)) => tap::stream(filter, rate),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

async fn ready(State((s, _)): State<Admin>) -> impl IntoResponse {
    if let Some(why) = s.intake.as_ref().and_then(|i| i.unhealthy()) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    } else if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
    }
}
