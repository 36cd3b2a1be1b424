//! `weir-loadtest`: sends OTLP load to any OTLP/gRPC endpoint and reports what it sustained.
//!
//! Today it has one mode, closed loop: `--connections` clients each send pre-encoded log requests as fast
//! as the target answers, for `--duration`, and the tool reports acknowledged items/s, refusals and
//! request latency percentiles. Payloads are encoded once before the clock starts, so the generator is
//! never the bottleneck. Open-loop, sweep, HTTP and charts arrive with the load-test issue.

use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::Message;
use std::time::{Duration, Instant};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use weir_pipeline::fixtures;

const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// Sends bytes encoded once up front and ignores the response body: the generator does no per-request
/// encoding work.
#[derive(Clone, Copy)]
struct Preencoded;

impl Codec for Preencoded {
    type Encode = Bytes;
    type Decode = ();
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
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(()))
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "weir-loadtest",
    about = "Closed-loop OTLP/gRPC log load against any OTLP endpoint."
)]
struct Args {
    /// OTLP/gRPC endpoint.
    #[arg(
        long,
        default_value = "http://127.0.0.1:4317",
        env = "WEIR_LOADTEST_ENDPOINT"
    )]
    endpoint: String,
    /// Concurrent connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Log records per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// How long to send, e.g. 10 (seconds).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Compress requests: none, gzip or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
}

#[derive(Default)]
struct Tally {
    acked_items: u64,
    refused_requests: u64,
    latencies_us: Vec<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let compression = match args.compression.as_str() {
        "none" => None,
        "gzip" => Some(CompressionEncoding::Gzip),
        "zstd" => Some(CompressionEncoding::Zstd),
        other => anyhow::bail!("--compression: unknown {other:?} (none, gzip, zstd)"),
    };
    let resources = args.batch.div_ceil(100).max(1);
    let request = Bytes::from(
        ExportLogsServiceRequest {
            resource_logs: fixtures::resource_logs(resources, args.batch / resources),
        }
        .encode_to_vec(),
    );
    let items_per_request = (args.batch / resources * resources) as u64;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())?
            .tcp_nodelay(true)
            .connect()
            .await?;
        let mut client = tonic::client::Grpc::new(channel);
        if let Some(c) = compression {
            client = client.send_compressed(c);
        }
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let sent = async {
                    client
                        .ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    client
                        .unary(
                            tonic::Request::new(request.clone()),
                            PathAndQuery::from_static(LOGS_EXPORT),
                            Preencoded,
                        )
                        .await
                };
                match sent.await {
                    Ok(_) => {
                        tally.acked_items += items_per_request;
                        tally.latencies_us.push(t.elapsed().as_micros() as u64);
                    }
                    Err(_) => {
                        tally.refused_requests += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        let t = t.await?;
        total.acked_items += t.acked_items;
        total.refused_requests += t.refused_requests;
        total.latencies_us.extend(t.latencies_us);
    }
    let secs = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let v = &total.latencies_us;
        if v.is_empty() {
            0.0
        } else {
            v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0
        }
    };
    println!(
        "closed loop: {} connections × {} records/request for {:.1}s\n  acknowledged: {} items ({:.0} items/s)\n  refused requests: {}\n  latency ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        args.connections,
        items_per_request,
        secs,
        total.acked_items,
        total.acked_items as f64 / secs,
        total.refused_requests,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
