//! The HTTP client every HTTP exporter shares: a pooled hyper client with TCP_NODELAY, short idle
//! connections (old ClickHouse servers close idle keep-alives after 3 s), and one `post` that turns
//! transport failures into retryable errors.

use crate::exporter::ExportError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector)
}

/// A response: status, headers and the whole body.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends `req`; a failure to connect, send or read is retryable (`reason = "network"`).
pub async fn send(
    client: &HttpClient,
    req: hyper::Request<Full<Bytes>>,
    peer: &str,
) -> Result<Response, ExportError> {
    let resp = client
        .request(req)
        .await
        .map_err(|e| ExportError::retryable("network", format!("{peer} unreachable: {e}")))?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| ExportError::retryable("network", format!("reading {peer}'s answer: {e}")))?
        .to_bytes();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `Retry-After` in seconds (the HTTP-date form is rare among telemetry backends; it is ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}
