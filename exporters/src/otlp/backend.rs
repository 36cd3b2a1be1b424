//! One forwarding target: its client (OTLP/gRPC or OTLP/HTTP), one send attempt with the OTLP
//! retry rules, and its health — consecutive failures eject it for a while, so its keys move to the
//! others, and the first success after that brings it back.

use crate::exporter::{ExportError, Retry};
use crate::http::HttpClient;
use bytes::{Buf, BufMut, Bytes};
use http_body_util::Full;
use prost::Message;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic_types::StatusExt;
use weir_config::{OtlpCompression, OtlpExporter, OtlpProtocol, SignalKind};
use weir_pipeline::memory::sending::Held;

/// Copies of a request's body each send attempt makes: over gRPC tonic copies it into its frame
/// buffer, and compresses from there into another when compression is on; hyper sends the body
/// over HTTP as it is.
pub fn attempt_copies(protocol: OtlpProtocol, compression: OtlpCompression) -> usize {
    match (protocol, compression) {
        (OtlpProtocol::Grpc, OtlpCompression::None) => 1,
        (OtlpProtocol::Grpc, _) => 2,
        (OtlpProtocol::Http, _) => 0,
    }
}

/// Sends bytes encoded by the exporter; reads only `partial_success.rejected_*` of the answer.
#[derive(Clone, Copy)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = u64;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;
    fn encoder(&mut self) -> BytesCodec {
        BytesCodec
    }
    fn decoder(&mut self) -> BytesCodec {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = u64;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, tonic::Status> {
        Ok(Some(
            rejected(&src.copy_to_bytes(src.remaining())).unwrap_or(0),
        ))
    }
}

/// `partial_success.rejected_*`: field 1 of field 1 in every OTLP export response.
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    message: String,
}

/// `partial_success.rejected_*` of an OTLP answer; `None` when the body is not one.
fn rejected(body: &[u8]) -> Option<u64> {
    let r = ExportResponse::decode(body).ok()?;
    Some(r.partial_success.map_or(0, |p| p.rejected.max(0) as u64))
}

enum Upstream {
    Grpc {
        grpc: tonic::client::Grpc<tonic::transport::Channel>,
        path: PathAndQuery,
        metadata: tonic::metadata::MetadataMap,
        /// Copies of the body each attempt makes ([`attempt_copies`]).
        copies: usize,
    },
    Http {
        client: HttpClient,
        uri: String,
        headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
        encoding: Option<&'static str>,
    },
}

pub struct Backend {
    pub addr: String,
    /// The rendezvous identity: a hash of `addr`.
    pub hash: u64,
    client: Upstream,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    eject_after: u32,
    eject_for: Duration,
    exporter: String,
}

impl Backend {
    pub fn new(
        addr: &str,
        cfg: &OtlpExporter,
        signal: SignalKind,
        exporter: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let tls = cfg.tls.is_some() || addr.starts_with("https://");
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.to_string()
        } else if tls {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        };
        let client = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let mut endpoint = tonic::transport::Endpoint::from_shared(base.clone())
                    .map_err(|e| format!("`{addr}`: {e}"))?
                    .tcp_nodelay(true)
                    .connect_timeout(Duration::from_secs(5))
                    // A peer that hangs keeps its socket open: without pings the channel would keep
                    // sending into that connection, every attempt timing out, and never reconnect.
                    .http2_keep_alive_interval(keepalive(timeout))
                    .keep_alive_timeout(keepalive(timeout))
                    .keep_alive_while_idle(true);
                if tls {
                    endpoint = endpoint
                        .tls_config(grpc_tls(cfg.tls.as_ref())?)
                        .map_err(|e| format!("tls: {e}"))?;
                }
                let channel = endpoint.connect_lazy();
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc = match cfg.compression {
                    OtlpCompression::Gzip => grpc.send_compressed(CompressionEncoding::Gzip),
                    OtlpCompression::Zstd => grpc.send_compressed(CompressionEncoding::Zstd),
                    OtlpCompression::None => grpc,
                };
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &cfg.headers {
                    let key =
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                            .map_err(|_| format!("header name `{k}` is not valid gRPC metadata"))?;
                    let value = v
                        .parse()
                        .map_err(|_| format!("header `{k}` has an invalid value"))?;
                    metadata.insert(key, value);
                }
                let path = match signal {
                    SignalKind::Traces => {
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                    }
                    SignalKind::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    SignalKind::Metrics => {
                        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
                    }
                };
                Upstream::Grpc {
                    grpc,
                    path: PathAndQuery::from_static(path),
                    metadata,
                    copies: attempt_copies(cfg.protocol, cfg.compression),
                }
            }
            OtlpProtocol::Http => {
                let headers = cfg
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        Ok((
                            k.parse()
                                .map_err(|_| format!("header name `{k}` is not valid"))?,
                            v.parse()
                                .map_err(|_| format!("header `{k}` has an invalid value"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?;
                Upstream::Http {
                    client: crate::http::client(cfg.tls.as_ref())?,
                    uri: format!("{}/v1/{}", base.trim_end_matches('/'), signal.as_str()),
                    headers,
                    encoding: match cfg.compression {
                        OtlpCompression::None => None,
                        OtlpCompression::Gzip => Some("gzip"),
                        OtlpCompression::Zstd => Some("zstd"),
                    },
                }
            }
        };
        Ok(Backend {
            addr: addr.to_string(),
            hash: super::route::fnv(addr.as_bytes()),
            client,
            failures: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            eject_after: cfg.eject_after.max(1),
            eject_for: cfg.eject_for.0,
            exporter: exporter.to_string(),
        })
    }

    /// Compresses a protobuf body for the wire when this backend speaks HTTP (gRPC compresses inside
    /// tonic).
    pub fn wire_body(&self, body: &Bytes) -> Result<Bytes, ExportError> {
        let Upstream::Http {
            encoding: Some(encoding),
            ..
        } = &self.client
        else {
            return Ok(body.clone());
        };
        let compressed = match *encoding {
            "gzip" => {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(body)
                    .and_then(|()| e.finish())
                    .map_err(|e| ExportError::permanent("encode", e.to_string()))?
            }
            _ => zstd::encode_all(&body[..], 1)
                .map_err(|e| ExportError::permanent("encode", e.to_string()))?,
        };
        Ok(Bytes::from(compressed))
    }

    pub fn alive(&self, now: Instant) -> bool {
        self.ejected_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|until| until <= now)
    }

    fn succeeded(&self) {
        if self.failures.swap(0, Ordering::AcqRel) >= self.eject_after {
            tracing::info!(exporter = %self.exporter, backend = %self.addr, "backend is back; its keys return to it");
        }
        *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn failed(&self, error: &ExportError) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.eject_after {
            *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Instant::now() + self.eject_for);
            if n == self.eject_after {
                tracing::warn!(exporter = %self.exporter, backend = %self.addr, error = %error, "backend ejected after {n} failed attempts; its keys move to the others");
            }
        }
    }

    /// What a 2xx answer says was rejected. A body that is neither empty nor an OTLP response (a
    /// captive portal's page, a proxy's error page served with 200) does not prove the request reached
    /// a collector, so it is retried rather than counted as sent.
    fn accepted_answer(&self, resp: &crate::http::Response) -> Result<u64, ExportError> {
        let body = &resp.body[..];
        let json = resp
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"));
        if body.is_empty() || (json && serde_json::from_slice::<serde_json::Value>(body).is_ok()) {
            return Ok(0);
        }
        rejected(body).ok_or_else(|| {
            ExportError::retryable(
                "bad_answer",
                format!(
                    "{} answered {} with a body that is not an OTLP response: {:?}",
                    self.addr,
                    resp.status,
                    String::from_utf8_lossy(&body[..body.len().min(120)])
                ),
            )
        })
    }

    /// One attempt; records the outcome in the backend's health.
    pub async fn send(&self, body: Bytes, timeout: Duration) -> Result<(), ExportError> {
        let result = match tokio::time::timeout(timeout, self.attempt(body)).await {
            Ok(r) => r,
            Err(_) => Err(ExportError::retryable(
                "timeout",
                format!("{} did not answer in {timeout:?}", self.addr),
            )),
        };
        match &result {
            Ok(()) => self.succeeded(),
            Err(e) if e.retry != Retry::Never => self.failed(e),
            Err(_) => {}
        }
        result
    }

    async fn attempt(&self, body: Bytes) -> Result<(), ExportError> {
        let rejected = match &self.client {
            Upstream::Grpc {
                grpc,
                path,
                metadata,
                copies,
            } => {
                let mut grpc = grpc.clone();
                grpc.ready().await.map_err(|e| {
                    ExportError::retryable("network", format!("{} unreachable: {e}", self.addr))
                })?;
                // Made as the request is framed, after the receivers admitted the data, and alive
                // until the attempt ends (not while waiting for a connection).
                let _copies = Held::new(body.len() * copies);
                let mut request = tonic::Request::new(body);
                *request.metadata_mut() = metadata.clone();
                grpc.unary(request, path.clone(), BytesCodec)
                    .await
                    .map_err(|s| status_error(&self.addr, &s))?
                    .into_inner()
            }
            Upstream::Http {
                client,
                uri,
                headers,
                encoding,
            } => {
                let mut req = hyper::Request::post(uri.as_str())
                    .header("content-type", "application/x-protobuf");
                if let Some(e) = encoding {
                    req = req.header("content-encoding", *e);
                }
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let req = req
                    .body(Full::new(body))
                    .map_err(|e| ExportError::permanent("encode", e.to_string()))?;
                let resp = crate::http::send(client, req, &self.addr).await?;
                let status = resp.status.as_u16();
                match status {
                    200..=299 => self.accepted_answer(&resp)?,
                    429 | 502 | 503 | 504 => {
                        return Err(ExportError::retry_after(
                            "http_retryable",
                            format!("{} answered {status}", self.addr),
                            crate::http::retry_after(&resp.headers),
                        ))
                    }
                    _ => {
                        return Err(ExportError::permanent(
                            "rejected",
                            format!(
                                "{} answered {status}: {}",
                                self.addr,
                                String::from_utf8_lossy(&resp.body)
                            ),
                        ))
                    }
                }
            }
        };
        if rejected > 0 {
            tracing::warn!(exporter = %self.exporter, backend = %self.addr, rejected, "the backend accepted the request but rejected some items (partial_success)");
        }
        Ok(())
    }
}

/// How often to ping a gRPC backend, and how long to wait for the answer: the send timeout, within
/// bounds that keep an idle fleet's pings cheap and a hung connection's detection quick.
fn keepalive(timeout: Duration) -> Duration {
    timeout.clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The OTLP rules: only codes that say the server may recover are retried; RetryInfo sets the wait.
/// A status tonic made from a transport failure (it carries the underlying error) is not the server's
/// verdict: a stream refused by a GOAWAY while a gateway shuts down maps to INTERNAL, yet the server
/// never took the request, so it is retried.
fn status_error(addr: &str, s: &tonic::Status) -> ExportError {
    use tonic::Code;
    let message = format!("{addr} answered {:?}: {}", s.code(), s.message());
    if std::error::Error::source(s).is_some() {
        return ExportError::retryable("network", message);
    }
    match s.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::ResourceExhausted
        | Code::Unknown => ExportError::retry_after(
            "grpc_retryable",
            message,
            s.get_details_retry_info().and_then(|r| r.retry_delay),
        ),
        _ => ExportError::permanent("rejected", message),
    }
}

/// tonic's TLS settings from the exporter's: the CA (or the system's), a client identity, a name.
fn grpc_tls(
    tls: Option<&weir_config::TlsClient>,
) -> Result<tonic::transport::ClientTlsConfig, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| format!("tls.{what}: {path}: {e}"))
    };
    let mut c = ClientTlsConfig::new();
    match tls.and_then(|t| t.ca_file.as_deref()) {
        Some(ca) => c = c.ca_certificate(Certificate::from_pem(read("ca_file", ca)?)),
        None => {
            c = c.ca_certificate(Certificate::from_pem(read(
                "ca_file",
                "/etc/ssl/certs/ca-certificates.crt",
            )?))
        }
    }
    if let Some(t) = tls {
        match (&t.cert_file, &t.key_file) {
            (Some(cert), Some(key)) => {
                c = c.identity(Identity::from_pem(
                    read("cert_file", cert)?,
                    read("key_file", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err("tls: set both cert_file and key_file, or neither".into()),
        }
        if let Some(name) = &t.server_name {
            c = c.domain_name(name.clone());
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn a_stream_refused_by_goaway_is_retried_though_tonic_calls_it_internal() {
        let refused = Status::from_error(Box::new(h2::Error::from(h2::Reason::NO_ERROR)));
        assert_eq!(refused.code(), Code::Internal);
        assert_ne!(status_error("gw", &refused).retry, Retry::Never);
        let reset = Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_ne!(status_error("gw", &reset).retry, Retry::Never);
    }

    #[test]
    fn the_servers_own_verdict_follows_the_otlp_rules() {
        assert_eq!(
            status_error("gw", &Status::internal("bug")).retry,
            Retry::Never
        );
        assert_eq!(
            status_error("gw", &Status::invalid_argument("bad")).retry,
            Retry::Never
        );
        assert_ne!(
            status_error("gw", &Status::unavailable("busy")).retry,
            Retry::Never
        );
    }
}
