//! OTLP/gRPC receiver (tonic). One generic service serves all three signals.
//!
//! It uses its own codec rather than the generated one so that a malformed message is
//! `INVALID_ARGUMENT` with prost's reason (tonic's default says `INTERNAL`), and so the encoded size of
//! the request, its weight in the intake queue, comes for free from the frame length.

use crate::auth::{Auth, Tenant};
use crate::decode::Format;
use crate::durable::record::{Encoding, Raw};
use crate::intake::{Intake, IntakeFor};
use crate::receive::{Refused, Transport, RETRY_AFTER};
use crate::shutdown::ShutdownSignal;
use crate::wire::Wire;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use weir_config::GrpcReceiver;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::{Logs, Metrics, Traces};

/// A decoded request, its size in memory (measured while decoding), and — in durable mode — the bytes
/// themselves, so the log stores what arrived instead of encoding it again.
pub struct Received<S: Wire> {
    request: S::Request,
    bytes: usize,
    encoded: usize,
    raw: Option<bytes::Bytes>,
}

struct OtlpCodec<S> {
    malformed: Counter,
    keep_raw: bool,
    _signal: PhantomData<S>,
}

struct OtlpDecoder<S> {
    malformed: Counter,
    keep_raw: bool,
    _signal: PhantomData<S>,
}

impl<S: Wire> Decoder for OtlpDecoder<S> {
    type Item = Received<S>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Received<S>>, Status> {
        let encoded = bytes::Buf::remaining(buf);
        // Split off the receive buffer (not copied) and decoded as one slice: prost reading through
        // tonic's buffer pays a bounds-checked `advance` per varint, a fifth of the receive cost.
        let raw = bytes::Buf::copy_to_bytes(buf, encoded);
        let (decoded, bytes) = weir_pipeline::memory::measured_or(encoded, || S::decode(&raw[..]));
        let raw = self.keep_raw.then_some(raw);
        match decoded.map(|r| (r, raw)) {
            Ok((request, raw)) => Ok(Some(Received {
                request,
                bytes,
                encoded,
                raw,
            })),
            Err(e) => {
                self.malformed.inc();
                Err(Status::invalid_argument(format!(
                    "malformed OTLP {} request: {e}",
                    S::KIND.as_str()
                )))
            }
        }
    }
}

impl<S: Wire> Codec for OtlpCodec<S> {
    type Encode = S::Response;
    type Decode = Received<S>;
    type Encoder = tonic_prost::ProstEncoder<S::Response>;
    type Decoder = OtlpDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }
    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder {
            malformed: self.malformed.clone(),
            keep_raw: self.keep_raw,
            _signal: PhantomData,
        }
    }
}

/// The gRPC service for signal `S`.
pub struct OtlpService<S> {
    intake: Arc<Intake>,
    /// Token → tenant, when ingest requires authentication.
    auth: Option<Arc<Auth>>,
    max_message_bytes: usize,
    malformed: Counter,
    too_large: Counter,
    _signal: PhantomData<S>,
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        OtlpService {
            intake: self.intake.clone(),
            auth: self.auth.clone(),
            max_message_bytes: self.max_message_bytes,
            malformed: self.malformed.clone(),
            too_large: self.too_large.clone(),
            _signal: PhantomData,
        }
    }
}

struct Export<S>(Arc<Intake>, Option<Arc<Auth>>, PhantomData<S>);

impl<S: Wire> UnaryService<Received<S>> for Export<S>
where
    Intake: IntakeFor<S>,
{
    type Response = S::Response;
    type Future = BoxFuture<Response<S::Response>, Status>;

    fn call(&mut self, request: Request<Received<S>>) -> Self::Future {
        let (intake, auth) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let tenant = request.extensions().get::<Tenant>().cloned();
            let stamp = crate::tenant::Stamp::for_request(auth.as_deref(), tenant.as_ref());
            let Received {
                request,
                bytes,
                encoded,
                raw,
            } = request.into_inner();
            intake.memory.observe(bytes + encoded);
            let raw = raw.map(|body| Raw {
                body,
                format: Format::Protobuf,
                encoding: Encoding::None,
            });
            match IntakeFor::<S>::get(&*intake)
                .accept(request, bytes, encoded, Transport::Grpc, stamp, raw)
                .await
            {
                Ok(a) => Ok(Response::new(S::response(a.rejected, a.message))),
                Err(Refused::Full) => Err(Status::with_error_details(
                    Code::ResourceExhausted,
                    "weir is full (intake queue or durable log); retry after the indicated delay",
                    ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
                )),
                Err(Refused::Closed) => Err(Status::unavailable(
                    "weir is shutting down; retry on another instance",
                )),
                Err(Refused::Unavailable) => Err(Status::unavailable(
                    "weir's durable log cannot write to disk; retry later",
                )),
                Err(Refused::TooLarge) => Err(Status::invalid_argument(
                    "request larger than one durable log record may be; send smaller requests",
                )),
                Err(Refused::NoPipeline) => Err(Status::unimplemented(format!(
                    "no exporter in this weir takes {}",
                    S::KIND.as_str()
                ))),
            }
        })
    }
}

impl<S: Wire, B> Service<http::Request<B>> for OtlpService<S>
where
    Intake: IntakeFor<S>,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if req.uri().path() != S::GRPC_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        // Checked before the message is read: an unauthenticated client costs no decoding.
        if let Some(auth) = &self.auth {
            let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
            match auth.check(
                Transport::Grpc,
                header("authorization"),
                header("x-api-key"),
            ) {
                Some(tenant) => {
                    req.extensions_mut().insert(tenant);
                }
                None => {
                    return Box::pin(async {
                        Ok(Status::unauthenticated(
                            "a known token is required: `authorization: Bearer <token>` or `x-api-key: <token>`",
                        )
                        .into_http())
                    })
                }
            }
        }
        let svc = Export::<S>(self.intake.clone(), self.auth.clone(), PhantomData);
        let intake = self.intake.clone();
        let too_large = self.too_large.clone();
        let max = self.max_message_bytes;
        let codec = OtlpCodec::<S> {
            malformed: self.malformed.clone(),
            keep_raw: IntakeFor::<S>::get(&*self.intake).durable().is_some(),
            _signal: PhantomData,
        };
        Box::pin(async move {
            // Before the message is read: over the memory limit a request costs nothing but the answer.
            let Some(_admission) =
                IntakeFor::<S>::get(&*intake).admit(&intake.memory, Transport::Grpc, None)
            else {
                return Ok(over_memory_limit().into_http());
            };
            // Taken before the message is read: bounds the request bodies in memory across receivers.
            let Ok(_slot) = intake.request_slots.acquire().await else {
                return Ok(Status::unavailable("weir is shutting down").into_http());
            };
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut grpc = Grpc::new(codec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max), None);
            let mut response = grpc.unary(svc, req).await;
            permanent_size_errors(&mut response, &too_large);
            Ok(response)
        })
    }
}

fn over_memory_limit() -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        "weir is at its memory limit while exporters catch up; retry after the indicated delay",
        ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
    )
}

/// tonic answers a message over the size limit with `OUT_OF_RANGE`, and a decompression bomb with a bare
/// `RESOURCE_EXHAUSTED`; OTLP clients retry both, resending the same oversized request. Neither will ever
/// succeed, so they become `INVALID_ARGUMENT`. Weir's own queue-full answer carries `RetryInfo` details
/// and is left alone.
fn permanent_size_errors(response: &mut http::Response<tonic::body::Body>, too_large: &Counter) {
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let has_details = headers.contains_key("grpc-status-details-bin");
    let size_error = match code {
        Some(c) if c == Code::OutOfRange as i32 => true,
        Some(c) if c == Code::ResourceExhausted as i32 => !has_details,
        _ => false,
    };
    if size_error {
        too_large.inc();
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::InvalidArgument as i32),
        );
    }
}

impl NamedService for OtlpService<Traces> {
    const NAME: &'static str = <Traces as Wire>::GRPC_SERVICE;
}
impl NamedService for OtlpService<Logs> {
    const NAME: &'static str = <Logs as Wire>::GRPC_SERVICE;
}
impl NamedService for OtlpService<Metrics> {
    const NAME: &'static str = <Metrics as Wire>::GRPC_SERVICE;
}

fn service<S: Wire>(
    intake: &Arc<Intake>,
    auth: &Option<Arc<Auth>>,
    cfg: &GrpcReceiver,
    registry: &Registry,
) -> OtlpService<S> {
    OtlpService {
        intake: intake.clone(),
        auth: auth.clone(),
        max_message_bytes: cfg.max_request_bytes.as_usize(),
        malformed: crate::receive::refused_requests(
            registry,
            S::KIND.as_str(),
            "grpc",
            "malformed",
        ),
        too_large: crate::receive::refused_requests(
            registry,
            S::KIND.as_str(),
            "grpc",
            "too_large",
        ),
        _signal: PhantomData,
    }
}

/// Binds now (so a taken port fails start-up) and returns the server future, which serves until
/// `shutdown` fires and in-flight requests have been answered.
pub async fn bind(
    cfg: &GrpcReceiver,
    intake: Arc<Intake>,
    auth: Option<Arc<Auth>>,
    registry: &Registry,
    shutdown: ShutdownSignal,
) -> anyhow::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let addr: SocketAddr = cfg.endpoint.parse()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("receivers.grpc: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(cfg.max_concurrent_streams)
        .add_service(service::<Traces>(&intake, &auth, cfg, registry))
        .add_service(service::<Logs>(&intake, &auth, cfg, registry))
        .add_service(service::<Metrics>(&intake, &auth, cfg, registry));
    let server: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match &cfg.tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            Box::pin(async move {
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, shutdown.wait())
                    .await
                {
                    tracing::error!(error = %e, "gRPC receiver failed");
                }
            })
        }
        Some(t) => {
            const PATH: &str = "receivers.grpc.tls";
            let tls = crate::tls::Tls::start(t, &[b"h2"], PATH).map_err(anyhow::Error::msg)?;
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::ReceiverStream::new(tls.accept(listener, PATH)),
                |(conn, _)| Ok::<_, std::io::Error>(conn),
            );
            Box::pin(async move {
                let _reloading = tls;
                if let Err(e) = router
                    .serve_with_incoming_shutdown(incoming, shutdown.wait())
                    .await
                {
                    tracing::error!(error = %e, "gRPC receiver failed");
                }
            })
        }
    };
    Ok((local, server))
}
