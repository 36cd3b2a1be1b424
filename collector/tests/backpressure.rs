//! With a blocked exporter and small queues, clients are told to retry (RESOURCE_EXHAUSTED with
//! RetryInfo, HTTP 429 with Retry-After), memory stays bounded, and once the exporter recovers every
//! acknowledged span is delivered.

mod common;

use common::{
    http_request, mkfifo, rss_kib, span_ids, span_request as request, FifoReader, Options, Weir,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_exporter_pushes_back_then_everything_acknowledged_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fifo = data.join("traces.jsonl");
    mkfifo(&fifo);
    let weir = Weir::start_in(
        dir,
        data,
        Options {
            pipeline: "pipeline:\n  workers: 1\n  intake_queue: {max_items: 200, max_bytes: 1MiB}\n  enqueue_timeout: 50ms\n".into(),
            exporter_extra: "    queue: {max_items: 200, max_bytes: 1MiB, overflow: block}\n    batch: {max_items: 100, max_age: 20ms}\n    max_in_flight: 1\n".into(),
            ..Options::default()
        },
    );
    let mut client = TraceServiceClient::connect(weir.grpc_url()).await.unwrap();

    // Phase 1: the exporter is stuck opening a FIFO nobody reads. Fill everything.
    let mut acknowledged = BTreeSet::new();
    let mut refused = Vec::new();
    for n in 0..40 {
        let req = request(n, 0);
        match client.export(req.clone()).await {
            Ok(_) => acknowledged.extend(span_ids(&req)),
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                let retry = status.get_details_retry_info().expect("RetryInfo attached");
                assert!(retry.retry_delay.unwrap() >= Duration::from_millis(100));
                refused.push(req);
            }
        }
    }
    assert!(!refused.is_empty(), "a blocked exporter must push back");
    // Bound: intake (200) + exporter queue (200) + one request per worker (50) + the batch in flight and
    // the one waiting for its permit (each < 100 + 50).
    assert!(
        acknowledged.len() <= 800,
        "acknowledged beyond the configured bounds: {}",
        acknowledged.len()
    );

    let r = http_request(
        weir.http,
        "POST",
        "/v1/traces",
        &[("Content-Type", "application/x-protobuf")],
        &request(1000, 0).encode_to_vec(),
    )
    .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));

    // Memory stays bounded while clients keep pushing large requests at a full pipeline.
    let before = rss_kib(weir.child.id());
    for n in 0..60 {
        let _ = client.export(request(2000 + n, 8 * 1024)).await;
    }
    let after = rss_kib(weir.child.id());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB under refused load"
    );
    assert!(
        weir.metric(
            "weir_receiver_refused_items_total",
            &["reason=\"queue_full\"", "signal=\"traces\""]
        ) > 0.0
    );

    // Phase 2: the exporter recovers (someone reads the FIFO); clients retry what was refused.
    let reader = FifoReader::start(&fifo);
    let deadline = Instant::now() + Duration::from_secs(60);
    for req in refused {
        loop {
            match client.export(req.clone()).await {
                Ok(_) => {
                    acknowledged.extend(span_ids(&req));
                    break;
                }
                Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(s) => panic!("unexpected refusal after recovery: {s:?}"),
            }
        }
    }
    assert_eq!(acknowledged.len(), 40 * 50);

    let got = reader.wait_for(&acknowledged);
    let missing: Vec<_> = acknowledged.difference(&got).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not delivered (first 5): {missing:?}"
    );
    drop(weir);
    reader.join();
}
