//! OTLP/HTTP receiver: `POST /v1/traces|/v1/logs|/v1/metrics` with protobuf or JSON bodies, gzip or zstd.
//! Responses use the request's content type; errors carry a `google.rpc.Status` body.

use crate::decode::{self, BodyError, Format};
use crate::durable::record::{Encoding, Raw};
use crate::intake::{Intake, IntakeFor};
use crate::receive::{Refused, Transport, RETRY_AFTER};
use crate::shutdown::ShutdownSignal;
use crate::wire::Wire;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use weir_config::HttpReceiver;
use weir_pipeline::metrics::Registry;
use weir_pipeline::{Logs, Metrics, Traces};

/// Bodies larger than this (as sent) are decompressed and decoded off the async worker threads.
const BLOCKING_DECODE_BYTES: usize = 256 * 1024;

struct HttpState {
    intake: Arc<Intake>,
    /// Token → tenant, when ingest requires authentication.
    auth: Option<Arc<crate::auth::Auth>>,
    max_request: usize,
    max_decompressed: usize,
    registry: Arc<Registry>,
}

/// Binds now and returns the server future, which stops when `shutdown` fires and open requests finish.
pub async fn bind(
    cfg: &HttpReceiver,
    intake: Arc<Intake>,
    auth: Option<Arc<crate::auth::Auth>>,
    registry: Arc<Registry>,
    shutdown: ShutdownSignal,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let addr: SocketAddr = cfg.endpoint.parse()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("receivers.http: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let state = Arc::new(HttpState {
        intake,
        auth,
        max_request: cfg.max_request_bytes.as_usize(),
        max_decompressed: cfg.max_decompressed_bytes.as_usize(),
        registry,
    });
    let app = Router::new()
        .route(Traces::HTTP_PATH, post(export::<Traces>))
        .route(Logs::HTTP_PATH, post(export::<Logs>))
        .route(Metrics::HTTP_PATH, post(export::<Metrics>))
        .with_state(state);
    let server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match &cfg.tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            Box::pin(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.wait())
                    .await
                {
                    tracing::error!(error = %e, "HTTP receiver failed");
                }
            })
        }
        Some(t) => {
            const PATH: &str = "receivers.http.tls";
            let tls = crate::tls::Tls::start(t, &[b"h2", b"http/1.1"], PATH)
                .map_err(anyhow::Error::msg)?;
            let listener = crate::tls::TlsListener {
                incoming: tls.accept(listener, PATH),
                local,
            };
            Box::pin(async move {
                let _reloading = tls;
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.wait())
                    .await
                {
                    tracing::error!(error = %e, "HTTP receiver failed");
                }
            })
        }
    };
    Ok((local, server))
}

async fn export<S: Wire>(
    State(state): State<Arc<HttpState>>,
    headers: HeaderMap,
    body: Body,
) -> Response
where
    Intake: IntakeFor<S>,
{
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    // Before the body is read: an unauthenticated client costs no reading or decoding.
    let tenant = match &state.auth {
        Some(auth) => match auth.check(
            Transport::Http,
            header(header::AUTHORIZATION),
            header(header::HeaderName::from_static("x-api-key")),
        ) {
            Some(t) => Some(t),
            None => return unauthenticated(),
        },
        None => None,
    };
    let length = header(header::CONTENT_LENGTH).and_then(|l| l.parse().ok());
    let Some(_admission) =
        IntakeFor::<S>::get(&*state.intake).admit(&state.intake.memory, Transport::Http, length)
    else {
        return too_many_requests(
            Format::Protobuf,
            "weir is at its memory limit while exporters catch up; retry after the indicated delay",
        );
    };
    // The slot is taken before the body is read, so at most `max_concurrent_requests` bodies are in memory.
    let Ok(_slot) = state.intake.request_slots.acquire().await else {
        return unavailable(
            Format::Protobuf,
            "weir is shutting down; retry on another instance",
        );
    };
    let format = match decode::format(header(header::CONTENT_TYPE)) {
        Ok(f) => f,
        Err(e) => return refuse::<S>(&state, e, Format::Protobuf),
    };
    let body = match axum::body::to_bytes(body, state.max_request).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => {
            return refuse::<S>(&state, BodyError::TooLarge(state.max_request), format)
        }
        Err(e) => {
            return refuse::<S>(
                &state,
                BodyError::Malformed(format!("cannot read the request body: {e}")),
                format,
            )
        }
    };
    let body_len = body.len();
    let encoding = header(header::CONTENT_ENCODING).map(str::to_owned);
    // In durable mode the log stores the body as it came (a reference, not a copy).
    let raw = IntakeFor::<S>::get(&*state.intake)
        .durable()
        .is_some()
        .then(|| Raw {
            body: body.clone(),
            format,
            encoding: Encoding::from_header(encoding.as_deref()),
        });
    let max_decompressed = state.max_decompressed;
    let decode_encoding = encoding.clone();
    let decode = move || -> Result<(S::Request, usize, usize), BodyError> {
        let body = decode::decompress(decode_encoding.as_deref(), body, max_decompressed)?;
        let (request, bytes) = weir_pipeline::memory::measured_or(body.len(), || {
            decode::request::<S>(format, &body, S::KIND.as_str())
        });
        Ok((request?, bytes, body.len()))
    };
    // Inflating and parsing a large body takes milliseconds; off the async workers it cannot stall
    // other connections, timers and delivery loops.
    // A compressed body inflates several times over, so it counts as large sooner.
    let compressed = encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != "identity");
    let heavy =
        body_len > BLOCKING_DECODE_BYTES || (compressed && body_len > BLOCKING_DECODE_BYTES / 8);
    let decoded = if heavy {
        tokio::task::block_in_place(decode)
    } else {
        decode()
    };
    let (request, bytes, encoded) = match decoded {
        Ok(r) => r,
        Err(e) => return refuse::<S>(&state, e, format),
    };
    state.intake.memory.observe(bytes + encoded);
    let stamp = crate::tenant::Stamp::for_request(state.auth.as_deref(), tenant.as_ref());
    match IntakeFor::<S>::get(&*state.intake)
        .accept(request, bytes, encoded, Transport::Http, stamp, raw)
        .await
    {
        Ok(a) if a.rejected == 0 && format == Format::Json => {
            // OTLP/JSON omits unset fields; the serde derive would write `"partialSuccess": null`.
            ([(header::CONTENT_TYPE, format.content_type())], "{}").into_response()
        }
        Ok(a) => ok_response(format, &S::response(a.rejected, a.message)),
        Err(Refused::Full) => too_many_requests(
            format,
            "weir is full (intake queue or durable log); retry after the indicated delay",
        ),
        Err(Refused::Closed) => {
            unavailable(format, "weir is shutting down; retry on another instance")
        }
        Err(Refused::Unavailable) => unavailable(
            format,
            "weir's durable log cannot write to disk; retry later",
        ),
        Err(Refused::TooLarge) => status_response(
            format,
            StatusCode::PAYLOAD_TOO_LARGE,
            3, // INVALID_ARGUMENT
            "request larger than one durable log record may be; send smaller requests",
        ),
        Err(Refused::NoPipeline) => status_response(
            format,
            StatusCode::NOT_FOUND,
            12, // UNIMPLEMENTED
            &format!("no exporter in this weir takes {}", S::KIND.as_str()),
        ),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn too_many_requests(format: Format, message: &str) -> Response {
    let mut r = status_response(
        format,
        StatusCode::TOO_MANY_REQUESTS,
        8, // RESOURCE_EXHAUSTED
        message,
    );
    r.headers_mut().insert(header::RETRY_AFTER, retry_after());
    r
}

fn retry_after() -> HeaderValue {
    HeaderValue::from(RETRY_AFTER.as_secs().max(1))
}

fn unavailable(format: Format, message: &str) -> Response {
    let mut r = status_response(
        format,
        StatusCode::SERVICE_UNAVAILABLE,
        14, // UNAVAILABLE
        message,
    );
    r.headers_mut().insert(header::RETRY_AFTER, retry_after());
    r
}

fn refuse<S: Wire>(state: &HttpState, e: BodyError, format: Format) -> Response {
    crate::receive::refused_requests(&state.registry, S::KIND.as_str(), "http", e.reason()).inc();
    let (status, code) = match e {
        BodyError::UnsupportedMediaType(_) | BodyError::UnsupportedEncoding(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3)
        }
        BodyError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, 3),
        BodyError::Malformed(_) => (StatusCode::BAD_REQUEST, 3), // INVALID_ARGUMENT
    };
    tracing::debug!(
        signal = S::KIND.as_str(),
        reason = e.reason(),
        "refused OTLP/HTTP request"
    );
    status_response(format, status, code, &e.message())
}

fn ok_response<M: prost::Message + serde::Serialize>(format: Format, message: &M) -> Response {
    let body = match format {
        Format::Protobuf => message.encode_to_vec(),
        Format::Json => serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec()),
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// An error response whose body is a `google.rpc.Status`, as OTLP/HTTP asks.
fn status_response(format: Format, status: StatusCode, code: i32, message: &str) -> Response {
    let body = match format {
        Format::Protobuf => prost::Message::encode_to_vec(&tonic_types::Status {
            code,
            message: message.to_string(),
            details: Vec::new(),
        }),
        Format::Json => {
            serde_json::to_vec(&serde_json::json!({ "code": code, "message": message }))
                .unwrap_or_default()
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// 401 with the scheme a client should use, as RFC 6750 asks.
fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"weir\"")],
        "a known token is required: `Authorization: Bearer <token>` or `X-API-Key: <token>`\n",
    )
        .into_response()
}
