//! Bad input gets the right status and a readable reason, and the collector keeps serving.

mod common;

use common::{gzip, http_request, Weir};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use weir_pipeline::fixtures;

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn valid_logs() -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: fixtures::resource_logs(1, 3),
    }
    .encode_to_vec()
}

fn status_message(body: &[u8]) -> String {
    tonic_types::Status::decode(body)
        .map(|s| s.message)
        .unwrap_or_default()
}

/// Bytes of a LogsService request whose severity_text is not UTF-8.
const INVALID_UTF8: [u8; 10] = [0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x1a, 0x02, 0xc3, 0x28];

#[test]
fn http_bad_input_gets_the_right_status_and_weir_keeps_serving() {
    let weir = Weir::start();
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        http_request(weir.http, "POST", "/v1/logs", headers, body).unwrap()
    };

    let r = post(&[PB], b"\xff\xff\xff\xffgarbage");
    assert_eq!(r.status, 400);
    assert!(
        status_message(&r.body).contains("malformed OTLP logs protobuf"),
        "{:?}",
        r.body
    );

    let r = post(&[JSON], b"{\"resourceLogs\": [ {");
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["code"], 3);
    assert!(v["message"].as_str().unwrap().contains("OTLP/JSON"));

    let r = post(&[("Content-Type", "text/plain")], b"hello");
    assert_eq!(r.status, 415);
    assert!(status_message(&r.body).contains("text/plain"));

    let r = post(&[PB, ("Content-Encoding", "br")], &valid_logs());
    assert_eq!(r.status, 415);

    let r = post(&[PB], &INVALID_UTF8);
    assert_eq!(r.status, 400, "invalid UTF-8 in a string field");

    // Over max_request_bytes (1 MiB) as sent.
    let r = post(&[PB], &vec![0u8; 2 << 20]);
    assert_eq!(r.status, 413);

    // A 64 MiB gzip bomb that is only ~64 KiB on the wire; max_decompressed_bytes is 4 MiB.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = post(&[PB, ("Content-Encoding", "gzip")], &bomb);
    assert_eq!(r.status, 413);
    let zbomb = zstd::encode_all(&vec![0u8; 64 << 20][..], 3).unwrap();
    let r = post(&[PB, ("Content-Encoding", "zstd")], &zbomb);
    assert_eq!(r.status, 413);

    let r = post(&[PB, ("Content-Encoding", "gzip")], b"not gzip");
    assert_eq!(r.status, 400);

    let r = http_request(weir.http, "POST", "/v1/nothing", &[PB], b"").unwrap();
    assert_eq!(r.status, 404);
    let r = http_request(weir.http, "GET", "/v1/logs", &[], b"").unwrap();
    assert_eq!(r.status, 405);

    // Still serving, and the good request is delivered.
    let r = post(&[PB, ("Content-Encoding", "gzip")], &gzip(&valid_logs()));
    assert_eq!(r.status, 200);
    assert_eq!(weir.wait_for(3, Weir::log_count), 3);
    assert!(
        weir.metric(
            "weir_receiver_refused_requests_total",
            &["reason=\"malformed\""]
        ) >= 4.0
    );
    assert_eq!(
        weir.metric(
            "weir_receiver_refused_requests_total",
            &["reason=\"too_large\""]
        ),
        3.0,
        "oversized body, gzip bomb, zstd bomb"
    );
}

#[test]
fn http_rejects_malformed_ids_via_partial_success() {
    let weir = Weir::start();
    let mut spans = fixtures::resource_spans(1, 4);
    spans[0].scope_spans[0].spans[2].trace_id = vec![7; 5];
    let body = ExportTraceServiceRequest {
        resource_spans: spans,
    }
    .encode_to_vec();
    let r = http_request(weir.http, "POST", "/v1/traces", &[PB], &body).unwrap();
    assert_eq!(r.status, 200);
    let resp = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    let partial = resp.partial_success.expect("partial_success set");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial
        .error_message
        .contains("trace_id must be 16 bytes (got 5)"));
    assert_eq!(weir.wait_for(3, Weir::span_count), 3);
    assert_eq!(
        weir.metric(
            "weir_receiver_refused_items_total",
            &["reason=\"malformed_id\"", "signal=\"traces\""]
        ),
        1.0
    );
}

#[tokio::test]
async fn grpc_bad_input_is_invalid_argument_and_weir_keeps_serving() {
    let weir = Weir::start();
    // Raw garbage through a gRPC frame: send bytes that are not a valid message using a codec-free path.
    let channel = tonic::transport::Endpoint::from_shared(weir.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    );
    let err = raw
        .unary::<Vec<u8>, Vec<u8>, _>(
            tonic::Request::new(INVALID_UTF8.to_vec()),
            path.clone(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("malformed OTLP logs"),
        "{}",
        err.message()
    );

    // A gzip bomb over gRPC: 64 MiB of zeros against the 16 MiB default message limit.
    let mut client = LogsServiceClient::new(channel.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    let mut huge = fixtures::resource_logs(1, 1);
    huge[0].scope_logs[0].log_records[0].severity_text = "x".repeat(64 << 20);
    let err = client
        .export(ExportLogsServiceRequest {
            resource_logs: huge.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a bomb is not retryable: {err:?}"
    );

    // Uncompressed and over the limit: tonic says OUT_OF_RANGE (retryable in OTLP); weir makes it final.
    huge[0].scope_logs[0].log_records[0].severity_text = "x".repeat(17 << 20);
    let mut plain = LogsServiceClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
    let err = plain
        .export(ExportLogsServiceRequest {
            resource_logs: huge,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        weir.metric(
            "weir_receiver_refused_requests_total",
            &["transport=\"grpc\"", "reason=\"too_large\""]
        ),
        2.0
    );

    let mut traces = TraceServiceClient::new(channel).send_compressed(CompressionEncoding::Zstd);
    let resp = traces
        .export(ExportTraceServiceRequest {
            resource_spans: fixtures::resource_spans(2, 5),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.partial_success.is_none());
    assert_eq!(weir.wait_for(10, Weir::span_count), 10);
}

/// Passes bytes through untouched so a test can put any payload in a gRPC frame.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}
