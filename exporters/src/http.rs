//! The HTTP client every HTTP exporter shares: a pooled hyper client with TCP_NODELAY, TLS for
//! `https://` (rustls), short idle connections (old ClickHouse servers close idle keep-alives after
//! 3 s), and one `send` that turns transport failures into retryable errors.

use crate::exporter::ExportError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::StatusCode;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use weir_config::TlsClient;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled client for `http://` and `https://` URLs; `tls` sets the trusted CAs (the system bundle
/// otherwise), a client certificate, and the name to verify the server against.
pub fn client(tls: Option<&TlsClient>) -> Result<HttpClient, String> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.enforce_http(false);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls_client(tls)?)
        .https_or_http();
    if let Some(name) = tls.and_then(|t| t.server_name.as_deref()) {
        let name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| format!("tls.server_name: {name:?}: {e}"))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http1().wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(https))
}

/// Where Debian and its derivatives keep the system's trusted CAs.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The rustls client config every TLS exporter uses.
pub fn rustls_client(tls: Option<&TlsClient>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let ca_file = tls.and_then(|t| t.ca_file.as_deref());
    let mut roots = rustls::RootCertStore::empty();
    let path = ca_file.unwrap_or(SYSTEM_CAS);
    match CertificateDer::pem_file_iter(path) {
        Ok(certs) => {
            for cert in certs {
                let cert = cert.map_err(|e| format!("tls.ca_file: {path}: {e}"))?;
                // The system bundle may hold certificates rustls cannot use; one bad CA is skipped.
                if let Err(e) = roots.add(cert) {
                    if ca_file.is_some() {
                        return Err(format!("tls.ca_file: {path}: {e}"));
                    }
                }
            }
        }
        Err(e) if ca_file.is_some() => return Err(format!("tls.ca_file: {path}: {e}")),
        Err(_) => {}
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots);
    match tls.map(|t| (&t.cert_file, &t.key_file)) {
        Some((Some(cert), Some(key))) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls.cert_file: {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls.key_file: {key}: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls: client certificate and key do not fit: {e}"))
        }
        Some((None, None)) | None => Ok(builder.with_no_client_auth()),
        Some(_) => Err("tls: set both cert_file and key_file, or neither".into()),
    }
}

/// A response: status, headers and the whole body.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The most of a destination's answer that is read.
const MAX_ANSWER_BYTES: usize = 4 << 20;

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
    // A destination's answer is read whole for its status text; one that streams without end must
    // not grow memory without bound.
    let body = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
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

/// `Retry-After` as delay-seconds or an HTTP-date (a date in the past means now). Anything else —
/// negative, fractional, garbage — is ignored and the backoff decides. The delivery loop caps the wait.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(
        headers.get(hyper::header::RETRY_AFTER)?.to_str().ok()?,
        std::time::SystemTime::now(),
    )
}

fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is still "a very long time", not garbage.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::Duration;

    #[test]
    fn retry_after_takes_seconds_and_dates_and_ignores_garbage() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            p("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            p("Sun, 06 Nov 1994 08:50:07 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("Sun, 06 Nov 1994 08:00:00 GMT"), Some(Duration::ZERO));
        for garbage in ["-5", "1.5", "soon", "", "\u{0}"] {
            assert_eq!(p(garbage), None, "{garbage:?}");
        }
    }
}
