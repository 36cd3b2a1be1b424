//! The admin endpoint: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz`, and
//! `POST /admin/reload` (stage policies from the config file).
//! Readiness turns false as soon as shutdown starts, so load balancers stop sending first.

use crate::app::ShutdownSignal;
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
        .with_state(state);
    Ok((local, async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
        {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    }))
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.registry.render(),
    )
}

/// Answers with the new policy version, or 400 and the reason (the running policies stay).
async fn reload(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    match s.policies.reload() {
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

async fn ready(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
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
