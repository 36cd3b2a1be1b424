//! The Loki exporter against the conformance receiver (`testing/loki-receiver`), and the receiver
//! itself against the reference's test vectors.

use bytes::Bytes;
use http_body_util::Full;
use loki_receiver::{Fault, Limits, Receiver};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir_exporters::loki::proto::{EntryAdapter, PushRequest, StreamAdapter, Timestamp};
use weir_exporters::loki::Loki;
use weir_exporters::{deliver, DeliveryMetrics, DeliverySettings, Exporter, Retry};
use weir_pipeline::metrics::Registry;
use weir_pipeline::queue::Limits as QueueLimits;
use weir_pipeline::{bounded, fixtures, Batch, Logs};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let client = weir_exporters::http::client(None).unwrap();
    let mut req = hyper::Request::post(format!("{url}/loki/api/v1/push"))
        .header("Content-Length", body.len());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = weir_exporters::http::send(
        &client,
        req.body(Full::new(Bytes::from(body))).unwrap(),
        "receiver",
    )
    .await
    .unwrap();
    (
        resp.status.as_u16(),
        String::from_utf8_lossy(&resp.body).to_string(),
    )
}

const JSON: (&str, &str) = ("Content-Type", "application/json");
const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");

fn json_push(ts: u64) -> Vec<u8> {
    format!(r#"{{"streams":[{{"stream":{{"foo":"bar2"}},"values":[["{ts}","fizzbuzz"]]}}]}}"#)
        .into_bytes()
}

fn proto_push(labels: &str, line: &str, ts: u64) -> Vec<u8> {
    PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.into(),
            entries: vec![EntryAdapter {
                timestamp: Some(Timestamp::from_nanos(ts)),
                line: line.into(),
                structured_metadata: vec![],
            }],
        }],
    }
    .encode_to_vec()
}

fn snappy(b: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(b).unwrap()
}

#[tokio::test]
async fn receiver_follows_the_reference_vectors() {
    let r = Receiver::start(Limits::default()).await;
    let url = r.url();
    let now = now_ns();
    assert_eq!(post(&url, &[JSON], json_push(now)).await.0, 204);
    let (status, body) = post(&url, &[JSON], json_push(1_570_818_238_000_000_000)).await;
    assert_eq!(status, 400);
    assert!(body.contains("timestamp too old"), "{body}");
    assert_eq!(
        post(&url, &[], json_push(now)).await,
        (400, "mime: no media type\n".into())
    );
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&json_push(now + 1)).unwrap();
        e.finish().unwrap()
    };
    assert_eq!(
        post(&url, &[JSON, ("Content-Encoding", "gzip")], gz)
            .await
            .0,
        204
    );
    assert_eq!(
        post(
            &url,
            &[JSON, ("Content-Encoding", "snappy")],
            snappy(&json_push(now))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        post(&url, &[JSON, ("Content-Encoding", "zstd")], json_push(now))
            .await
            .0,
        400
    );
    let dotted =
        format!(r#"{{"streams":[{{"stream":{{"service.name":"x"}},"values":[["{now}","a"]]}}]}}"#);
    let (status, body) = post(&url, &[JSON], dotted.into_bytes()).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("couldn't parse labels"), "{body}");
    let number_ts = r#"{"streams":[{"stream":{"a":"b"},"values":[[123,"a"]]}]}"#;
    assert_eq!(post(&url, &[JSON], number_ts.into()).await.0, 400);
    let number_sm =
        format!(r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["{now}","a",{{"k":1}}]]}}]}}"#);
    assert_eq!(post(&url, &[JSON], number_sm.into_bytes()).await.0, 400);

    // Snappy framed is refused, block is accepted.
    let framed = {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(&proto_push("{a=\"b\"}", "x", now)).unwrap();
        w.into_inner().unwrap()
    };
    assert_eq!(
        post(&url, &[PB], framed).await,
        (400, "snappy: corrupt input\n".into())
    );
    assert_eq!(
        post(&url, &[PB], snappy(&proto_push("{a=\"b\"}", "x", now)))
            .await
            .0,
        204
    );
    let (status, body) = post(&url, &[PB], snappy(&proto_push("{ab\"", "x", now))).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("couldn't parse labels: 1:"), "{body}");

    let sixteen: String = (0..16)
        .map(|i| format!("l{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(", ");
    let (status, body) = post(
        &url,
        &[PB],
        snappy(&proto_push(&format!("{{{sixteen}}}"), "x", now)),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("has 16 label names; limit 15"), "{body}");

    // Two streams, one with a 300 KB line: 400, and the valid one is stored.
    let mut two =
        PushRequest::decode(proto_push("{ok=\"1\"}", "fine", now + 5).as_slice()).unwrap();
    two.streams.extend(
        PushRequest::decode(proto_push("{big=\"1\"}", &"x".repeat(300_000), now).as_slice())
            .unwrap()
            .streams,
    );
    let (status, body) = post(&url, &[PB], snappy(&two.encode_to_vec())).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("max entry size '262144' bytes exceeded"),
        "{body}"
    );
    assert_eq!(
        r.streams("fake")["{ok=\"1\", service_name=\"unknown_service\"}"].len(),
        1
    );

    assert_eq!(
        post(&url, &[JSON], br#"{"streams":[]}"#.to_vec()).await.0,
        422
    );
    assert_eq!(
        post(
            &url,
            &[JSON],
            br#"{"streams":[{"stream":{"a":"b"},"values":[]}]}"#.to_vec()
        )
        .await
        .0,
        204
    );
}

#[tokio::test]
async fn receiver_enforces_tenants_rate_and_stream_limits() {
    let r = Receiver::start(Limits {
        auth_enabled: true,
        burst_bytes: 1000.0,
        rate_bytes_per_sec: 1.0,
        max_streams_per_tenant: 2,
        ..Limits::default()
    })
    .await;
    let url = r.url();
    let now = now_ns();
    assert_eq!(
        post(&url, &[PB], snappy(&proto_push("{a=\"1\"}", "x", now))).await,
        (401, "no org id\n".into())
    );
    assert_eq!(
        post(
            &url,
            &[PB, ("X-Scope-OrgID", "a/b")],
            snappy(&proto_push("{a=\"1\"}", "x", now))
        )
        .await
        .0,
        400
    );
    let t = ("X-Scope-OrgID", "team-1");
    assert_eq!(
        post(
            &url,
            &[PB, t],
            snappy(&proto_push("{a=\"1\"}", &"x".repeat(2000), now))
        )
        .await
        .0,
        429
    );
    assert_eq!(
        r.entry_count("team-1"),
        0,
        "a rate-limited push stores nothing"
    );
    assert_eq!(
        post(&url, &[PB, t], snappy(&proto_push("{a=\"1\"}", "x", now)))
            .await
            .0,
        204
    );
    assert_eq!(
        post(&url, &[PB, t], snappy(&proto_push("{a=\"2\"}", "x", now)))
            .await
            .0,
        204
    );
    let (status, body) = post(&url, &[PB, t], snappy(&proto_push("{a=\"3\"}", "x", now))).await;
    assert_eq!(status, 429);
    assert!(
        body.contains("maximum active stream limit exceeded"),
        "{body}"
    );
    // An identical entry is dropped silently; one more than 1h behind the stream's newest is refused.
    assert_eq!(
        post(&url, &[PB, t], snappy(&proto_push("{a=\"1\"}", "x", now)))
            .await
            .0,
        204
    );
    assert_eq!(
        r.streams("team-1")["{a=\"1\", service_name=\"unknown_service\"}"].len(),
        1
    );
    let (status, body) = post(
        &url,
        &[PB, t],
        snappy(&proto_push("{a=\"1\"}", "old", now - 2 * 3_600_000_000_000)),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("entry too far behind"), "{body}");
}

/// Records timestamped now (Loki refuses anything older than a week), with trace context and attributes.
fn recent_logs(resources: usize, per: usize) -> Vec<ResourceLogs> {
    let mut logs = fixtures::resource_logs(resources, per);
    let now = now_ns();
    for (i, r) in logs
        .iter_mut()
        .flat_map(|r| r.scope_logs.iter_mut())
        .flat_map(|s| s.log_records.iter_mut())
        .enumerate()
    {
        // Newest first, so the exporter's per-stream sort is what puts them in order.
        r.time_unix_nano = now - i as u64 * 1000;
    }
    logs
}

fn loki_config(url: &str, extra: &str) -> weir_config::LokiExporter {
    let yaml = format!("exporters:\n  l:\n    loki: {{endpoint: \"{url}\"{extra}}}\n");
    weir_config::parse(&yaml, "test", |_| None)
        .unwrap()
        .exporters["l"]
        .loki
        .clone()
        .unwrap()
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        max_items: 100_000,
        max_bytes: usize::MAX,
        max_age: Duration::from_millis(10),
        max_in_flight: 2,
        timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(20),
        durable: false,
    }
}

/// Runs one batch through the real delivery loop into the receiver.
async fn deliver_batch(loki: Loki, logs: Vec<ResourceLogs>) -> DeliveryMetrics {
    let registry = Registry::new();
    let metrics = DeliveryMetrics::new(&registry, "l", "logs");
    let (tx, rx) = bounded(QueueLimits {
        max_items: 1_000_000,
        max_bytes: usize::MAX,
    });
    tx.try_send(Batch::<Logs>::measured(logs)).unwrap();
    drop(tx);
    deliver(
        "l".into(),
        Arc::new(loki),
        rx,
        settings(),
        metrics.clone(),
        std::future::pending(),
    )
    .await;
    metrics
}

#[tokio::test]
async fn logs_arrive_with_labels_metadata_lines_and_sorted_streams() {
    let r = Receiver::start(Limits::default()).await;
    let cfg = loki_config(&r.url(), ", severity_label: true, max_request_bytes: 2KiB");
    let mut logs = recent_logs(2, 20);
    logs[0].scope_logs[0].log_records[0].body = Some(AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![fixtures::kv("user", "ana"), fixtures::kv_int("n", 3)],
        })),
    });
    logs[0].scope_logs[0].log_records[1]
        .attributes
        .push(fixtures::kv("note", "line\nbreak \"quoted\""));
    let registry = Registry::new();
    let m = deliver_batch(Loki::new(&cfg, &registry, "l"), logs.clone()).await;
    assert_eq!(m.sent_items.get(), 40);
    assert!(m.sent_requests.get() > 1, "2 KiB requests split the batch");
    let streams = r.streams("fake");
    assert_eq!(r.entry_count("fake"), 40);
    let key = "{deployment_environment=\"production\", k8s_pod_name=\"checkout-0-7d9f8b6c4-x2x00\", level=\"error\", service_name=\"checkout-0\", service_namespace=\"shop\"}";
    let errors = &streams[key];
    assert!(
        errors.windows(2).all(|w| w[0].ts <= w[1].ts),
        "each stream sorted by time"
    );
    let first = &logs[0].scope_logs[0].log_records[0];
    let e = errors
        .iter()
        .find(|e| e.ts == first.time_unix_nano as i128)
        .unwrap();
    assert_eq!(e.line, r#"{"user":"ana","n":3}"#);
    let sm: std::collections::HashMap<_, _> = e.metadata.iter().cloned().collect();
    assert_eq!(
        sm["trace_id"],
        first
            .trace_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    assert_eq!(sm["severity_text"], "ERROR");
    assert_eq!(sm["severity_number"], "17");
    assert_eq!(sm["code_function"], "process_order");
    assert_eq!(
        sm["host_name"], "node-000",
        "resource attributes that are not labels become metadata"
    );
    let info_key = key.replace("level=\"error\"", "level=\"info\"");
    let noted = streams[&info_key]
        .iter()
        .find(|e| e.metadata.iter().any(|(k, _)| k == "note"))
        .unwrap();
    assert!(noted
        .metadata
        .contains(&("note".into(), "line\nbreak \"quoted\"".into())));
    assert!(
        !noted.metadata.iter().any(|(k, _)| k == "span_id"),
        "records without trace context carry none"
    );
}

#[tokio::test]
async fn retries_follow_lokis_rules() {
    let r = Receiver::start(Limits::default()).await;
    r.inject([
        Fault::Status {
            code: 429,
            retry_after: Some(1),
            body: "slow down".into(),
        },
        Fault::Status {
            code: 429,
            retry_after: None,
            body: "slow down".into(),
        },
        Fault::Status {
            code: 503,
            retry_after: None,
            body: "busy".into(),
        },
        Fault::Reset,
    ]);
    let registry = Registry::new();
    let started = Instant::now();
    let m = deliver_batch(
        Loki::new(&loki_config(&r.url(), ""), &registry, "l"),
        recent_logs(1, 10),
    )
    .await;
    // Retry-After is honoured up to the policy's max_backoff (200 ms here), never beyond.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(1),
        "Retry-After: 1 was honoured up to max_backoff: {waited:?}"
    );
    assert_eq!(m.retries.get(), 4);
    assert_eq!(m.sent_items.get(), 10);
    assert_eq!(r.entry_count("fake"), 10, "nothing lost, nothing twice");
    let statuses: Vec<u16> = r.requests().iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses, [429, 429, 503, 0, 204]);

    // A 400 (here a partial acceptance) is final.
    r.inject([Fault::Status {
        code: 400,
        retry_after: None,
        body: "1 errors like: line too long".into(),
    }]);
    let m = deliver_batch(
        Loki::new(&loki_config(&r.url(), ""), &registry, "l"),
        recent_logs(1, 3),
    )
    .await;
    assert_eq!(m.retries.get(), 0);
    assert_eq!(m.failed("rejected").get(), 3);
}

#[tokio::test]
async fn send_classifies_statuses() {
    let r = Receiver::start(Limits::default()).await;
    let registry = Registry::new();
    let loki = Loki::new(&loki_config(&r.url(), ", tenant: acme"), &registry, "l");
    let push = Exporter::<Logs>::encode(&loki, Batch::measured(recent_logs(1, 2)))
        .unwrap()
        .remove(0);
    r.inject([Fault::Status {
        code: 429,
        retry_after: Some(7),
        body: String::new(),
    }]);
    let e = Exporter::<Logs>::send(&loki, &push.request)
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::After(Some(Duration::from_secs(7))));
    r.inject([Fault::Status {
        code: 413,
        retry_after: None,
        body: "too large".into(),
    }]);
    let e = Exporter::<Logs>::send(&loki, &push.request)
        .await
        .unwrap_err();
    assert_eq!(e.retry, Retry::Never);
    assert!(e.message.contains("too large"));
    Exporter::<Logs>::send(&loki, &push.request).await.unwrap();
    assert_eq!(
        r.requests().last().unwrap().0.as_deref(),
        Some("acme"),
        "X-Scope-OrgID sent"
    );
}

#[tokio::test]
async fn a_hundred_thousand_pods_do_not_make_a_hundred_thousand_streams() {
    let r = Receiver::start(Limits::default()).await;
    let registry = Registry::new();
    let loki = Loki::new(&loki_config(&r.url(), ", max_streams: 100"), &registry, "l");
    let mut logs = recent_logs(1, 100_000);
    let records = std::mem::take(&mut logs[0].scope_logs[0].log_records);
    // Make the pod a label per record by putting it on each record's own resource.
    let mut per_pod: Vec<ResourceLogs> = Vec::with_capacity(records.len());
    for (i, rec) in records.into_iter().enumerate() {
        let mut rl = logs[0].clone();
        rl.scope_logs[0].log_records = vec![rec];
        let res = rl.resource.as_mut().unwrap();
        res.attributes.retain(|kv| kv.key != "k8s.pod.name");
        res.attributes.push(KeyValue {
            key: "k8s.pod.name".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(format!("pod-{i}"))),
            }),
            ..Default::default()
        });
        per_pod.push(rl);
    }
    let m = deliver_batch(loki, per_pod).await;
    assert_eq!(m.sent_items.get(), 100_000);
    let streams = r.streams("fake");
    assert!(streams.len() <= 101, "{} streams", streams.len());
    assert!(streams
        .keys()
        .any(|k| k.contains("k8s_pod_name=\"overflow\"")));
    assert_eq!(r.entry_count("fake"), 100_000, "nothing lost to the guard");
    assert!(
        registry
            .render()
            .contains("weir_loki_stream_overflow_total{exporter=\"l\"} 99900\n"),
        "{}",
        "counted"
    );
}

#[tokio::test]
async fn json_encoding_and_labels_beyond_lokis_limit_travel_as_metadata() {
    let r = Receiver::start(Limits::default()).await;
    let keys: Vec<String> = (0..18).map(|i| format!("attr.{i:02}")).collect();
    let cfg = loki_config(
        &r.url(),
        &format!(", encoding: json, resource_labels: [{}]", keys.join(", ")),
    );
    let mut logs = recent_logs(1, 5);
    let res = logs[0].resource.as_mut().unwrap();
    for k in &keys {
        res.attributes.push(fixtures::kv(k, &format!("v-{k}")));
    }
    let registry = Registry::new();
    let m = deliver_batch(Loki::new(&cfg, &registry, "l"), logs).await;
    assert_eq!(m.sent_items.get(), 5, "{:?}", r.requests());
    assert_eq!(
        m.failed("rejected").get(),
        0,
        "Loki would have refused 18 labels"
    );
    let streams = r.streams("fake");
    let (labels, entries) = streams.iter().next().unwrap();
    assert_eq!(labels.matches("attr_").count(), 15, "{labels}");
    assert!(labels.contains("service_name=\"unknown_service\""));
    let sm: std::collections::HashMap<_, _> = entries[0].metadata.iter().cloned().collect();
    assert_eq!(sm["attr_17"], "v-attr.17");
    assert_eq!(entries.len(), 5);
    assert!(entries[0].line.starts_with("order "), "{}", entries[0].line);
}
