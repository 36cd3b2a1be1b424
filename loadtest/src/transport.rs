//! Sending one pre-encoded request over OTLP/gRPC or OTLP/HTTP, and what the target said: accepted
//! (minus any items its `partial_success` rejected), refused (a retryable status: the target pushed
//! back), or failed.

use crate::workload::{LoadSignal, Payload};
use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use prost::Message;
use serde::Serialize;
use std::io::Write;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Where and how to send.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Target {
    /// OTLP endpoint: `http://host:4317` for gRPC, `http://host:4318` for HTTP (the signal's path is
    /// appended).
    #[arg(
        long,
        default_value = "http://127.0.0.1:4317",
        env = "WEIR_LOADTEST_ENDPOINT"
    )]
    pub endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` items were refused inside it (`partial_success`).
    Accepted { rejected: u64 },
    /// The target pushed back (RESOURCE_EXHAUSTED, UNAVAILABLE, 429, 503): retryable.
    Refused,
    /// Anything else: a transport error, a timeout, a permanent error status.
    Failed,
}

/// `partial_success.rejected_*` of an OTLP export response: field 1 of field 1 for every signal.
#[derive(Clone, PartialEq, Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
}

fn rejected(body: &[u8]) -> u64 {
    ExportResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected.max(0) as u64)
}

/// Sends bytes encoded once up front; decodes only the partial-success count of the answer.
#[derive(Clone, Copy)]
struct Preencoded;

impl Codec for Preencoded {
    type Encode = Bytes;
    type Decode = u64;
    type Encoder = Preencoded;
    type Decoder = Preencoded;
    fn encoder(&mut self) -> Preencoded {
        Preencoded
    }
    fn decoder(&mut self) -> Preencoded {
        Preencoded
    }
}

impl Encoder for Preencoded {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Preencoded {
    type Item = u64;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<u64>, tonic::Status> {
        let body = src.copy_to_bytes(src.remaining());
        Ok(Some(rejected(&body)))
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A connection to the target; cheap to clone (gRPC multiplexes over HTTP/2, HTTP pools).
#[derive(Clone)]
pub enum Connection {
    Grpc {
        grpc: tonic::client::Grpc<tonic::transport::Channel>,
        path: PathAndQuery,
        timeout: std::time::Duration,
    },
    Http {
        client: HttpClient,
        uri: hyper::Uri,
        encoding: Option<&'static str>,
        timeout: std::time::Duration,
    },
}

impl Connection {
    pub async fn connect(target: &Target, signal: LoadSignal) -> anyhow::Result<Connection> {
        let timeout = std::time::Duration::from_secs_f64(target.timeout);
        match target.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(target.endpoint.clone())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", target.endpoint))?;
                let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(1 << 20);
                match target.compression {
                    Compression::Gzip => grpc = grpc.send_compressed(CompressionEncoding::Gzip),
                    Compression::Zstd => grpc = grpc.send_compressed(CompressionEncoding::Zstd),
                    Compression::None => {}
                }
                let path = match signal {
                    LoadSignal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    LoadSignal::Traces => {
                        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                    }
                };
                Ok(Connection::Grpc {
                    grpc,
                    path: PathAndQuery::from_static(path),
                    timeout,
                })
            }
            Protocol::Http => {
                let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
                connector.set_nodelay(true);
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(connector);
                let path = match signal {
                    LoadSignal::Logs => "/v1/logs",
                    LoadSignal::Traces => "/v1/traces",
                };
                let uri = format!("{}{path}", target.endpoint.trim_end_matches('/')).parse()?;
                Ok(Connection::Http {
                    client,
                    uri,
                    encoding: match target.compression {
                        Compression::None => None,
                        Compression::Gzip => Some("gzip"),
                        Compression::Zstd => Some("zstd"),
                    },
                    timeout,
                })
            }
        }
    }

    /// HTTP bodies are compressed here, once, before the clock starts; gRPC compresses per message
    /// inside tonic.
    pub fn prepare(&self, payloads: Vec<Payload>) -> anyhow::Result<Vec<Payload>> {
        let Connection::Http {
            encoding: Some(encoding),
            ..
        } = self
        else {
            return Ok(payloads);
        };
        payloads
            .into_iter()
            .map(|p| {
                let body = match *encoding {
                    "gzip" => {
                        let mut e =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        e.write_all(&p.body)?;
                        e.finish()?
                    }
                    _ => zstd::encode_all(&p.body[..], 1)?,
                };
                Ok(Payload {
                    body: Bytes::from(body),
                    items: p.items,
                })
            })
            .collect()
    }

    pub async fn send(&mut self, payload: &Payload) -> Outcome {
        match self {
            Connection::Grpc {
                grpc,
                path,
                timeout,
            } => {
                let call = async {
                    grpc.ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    grpc.unary(
                        tonic::Request::new(payload.body.clone()),
                        path.clone(),
                        Preencoded,
                    )
                    .await
                };
                match tokio::time::timeout(*timeout, call).await {
                    Ok(Ok(response)) => Outcome::Accepted {
                        rejected: response.into_inner(),
                    },
                    Ok(Err(status)) => match status.code() {
                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable => {
                            Outcome::Refused
                        }
                        _ => Outcome::Failed,
                    },
                    Err(_) => Outcome::Failed,
                }
            }
            Connection::Http {
                client,
                uri,
                encoding,
                timeout,
            } => {
                let mut request = hyper::Request::post(uri.clone())
                    .header("content-type", "application/x-protobuf");
                if let Some(e) = encoding {
                    request = request.header("content-encoding", *e);
                }
                let Ok(request) = request.body(Full::new(payload.body.clone())) else {
                    return Outcome::Failed;
                };
                let call = async {
                    let response = client.request(request).await.ok()?;
                    let status = response.status();
                    let body = response.into_body().collect().await.ok()?.to_bytes();
                    Some((status, body))
                };
                match tokio::time::timeout(*timeout, call).await {
                    Ok(Some((status, body))) if status.is_success() => Outcome::Accepted {
                        rejected: rejected(&body),
                    },
                    Ok(Some((status, _))) if status == 429 || status == 503 || status == 502 => {
                        Outcome::Refused
                    }
                    _ => Outcome::Failed,
                }
            }
        }
    }
}
