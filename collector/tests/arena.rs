//! The decode arena in the real binary: nothing is in it until a request is decoded, and requests
//! of either OTLP/HTTP format are decoded into it (the thread that decoded keeps its chunk, which the
//! gauge shows).

mod common;
use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

fn arena_bytes(w: &Weir) -> f64 {
    w.metric("weir_memory_arena_bytes", &[])
}

fn post(w: &Weir, content_type: &str, body: &[u8]) {
    let r = http_request(
        w.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", content_type)],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn otlp_json_is_decoded_into_the_arena() {
    let w = Weir::start();
    assert_eq!(arena_bytes(&w), 0.0, "nothing decoded yet");
    post(
        &w,
        "application/json",
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hello"}}]}]}]}"#,
    );
    assert!(arena_bytes(&w) > 0.0);
}

#[test]
fn otlp_protobuf_is_decoded_into_the_arena() {
    let w = Weir::start();
    assert_eq!(arena_bytes(&w), 0.0, "nothing decoded yet");
    let request: ExportLogsServiceRequest = serde_json::from_str(
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hello"}}]}]}]}"#,
    )
    .unwrap();
    post(&w, "application/x-protobuf", &request.encode_to_vec());
    assert!(arena_bytes(&w) > 0.0);
}
