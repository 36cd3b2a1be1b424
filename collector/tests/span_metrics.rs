//! Span metrics through the real binary, fed by the Rust OpenTelemetry SDK: while head sampling keeps
//! 1 % of traces, the exported calls, error calls and duration histogram count every span sent, and a
//! clean shutdown flushes what the last interval counted.

mod common;

use common::{Options, Weir};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue as Kv};
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

const TRACES_PER_SERVICE: usize = 500;
const SERVICES: [&str; 2] = ["checkout", "cart"];
/// Root plus two children per trace.
const SPANS: usize = SERVICES.len() * TRACES_PER_SERVICE * 3;
/// Trace `i % 7 == 0` has one failing child.
const ERRORS: usize = SERVICES.len() * TRACES_PER_SERVICE.div_ceil(7);

fn provider(url: &str, service: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .build()
        .unwrap();
    // Room for every span: the SDK's default queue (2048) would drop some, and the counts with them.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(4 * SPANS)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(config)
        .build();
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("deployment.environment", "ci"))
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build()
}

/// A 30 ms server root with two 3 ms client children; durations are set, so buckets are known.
fn send(provider: &SdkTracerProvider, traces: usize) {
    let tracer = provider.tracer("span-metrics-test");
    for i in 0..traces {
        let start = SystemTime::now();
        let mut root = tracer
            .span_builder("GET /orders")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .start(&tracer);
        let parent = Context::new().with_remote_span_context(root.span_context().clone());
        for c in 0..2 {
            let mut child = tracer
                .span_builder("SELECT orders")
                .with_kind(SpanKind::Client)
                .with_start_time(start)
                .start_with_context(&tracer, &parent);
            if i.is_multiple_of(7) && c == 1 {
                child.set_status(Status::error("deadlock"));
            }
            child.end_with_timestamp(start + Duration::from_millis(3));
        }
        root.end_with_timestamp(start + Duration::from_millis(30));
    }
    provider.force_flush().unwrap();
}

fn text(attributes: &[Kv], key: &str) -> String {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The latest exported point of every series: calls, and the histogram's count and buckets.
#[derive(Default, Debug)]
struct Latest {
    calls: BTreeMap<String, (u64, u64)>,
    histograms: BTreeMap<String, (u64, u64, Vec<u64>)>,
}

impl Latest {
    fn read(weir: &Weir) -> Latest {
        let mut latest = Latest::default();
        for rm in weir.metrics_out().iter().flat_map(|r| &r.resource_metrics) {
            let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            let service = text(attrs, "service.name");
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                let series = |a: &[Kv]| {
                    let env = text(a, "deployment.environment");
                    let labels = ["span.name", "span.kind", "status.code"].map(|k| text(a, k));
                    format!("{service}|{}|{env}", labels.join("|"))
                };
                match (&m.data, m.name.as_str()) {
                    (Some(Data::Sum(s)), "traces.span.metrics.calls") => {
                        for p in &s.data_points {
                            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                                panic!("calls are integers: {p:?}")
                            };
                            let e = latest.calls.entry(series(&p.attributes)).or_default();
                            if p.time_unix_nano >= e.0 {
                                *e = (p.time_unix_nano, v as u64);
                            }
                        }
                    }
                    (Some(Data::Histogram(h)), "traces.span.metrics.duration") => {
                        assert_eq!(m.unit, "ms");
                        for p in &h.data_points {
                            let e = latest.histograms.entry(series(&p.attributes)).or_default();
                            if p.time_unix_nano >= e.0 {
                                *e = (p.time_unix_nano, p.count, p.bucket_counts.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        latest
    }

    fn calls(&self, status: &str) -> u64 {
        let status = format!("|{status}|");
        self.calls
            .iter()
            .filter(|(k, _)| status == "||" || k.contains(&status))
            .map(|(_, (_, v))| v)
            .sum()
    }
}

/// Waits until the exported calls reach `want`; returns what was last read.
fn wait_for_calls(weir: &Weir, want: u64) -> Latest {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let latest = Latest::read(weir);
        if latest.calls("") >= want || Instant::now() > deadline {
            return latest;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `extra`: more top-level keys (e.g. `durable:`).
fn sampled_weir(interval: &str, extra: &str) -> Weir {
    Weir::start_with(Options {
        pipeline: format!("{extra}pipeline:\n  workers: 2\n  sample:\n    traces:\n      probability: 0.01\n  span_metrics:\n    interval: {interval}\n    dimensions: [deployment.environment]\n"),
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_every_span_while_sampling_keeps_one_percent() {
    let weir = sampled_weir("200ms", "");
    let url = weir.grpc_url();
    for service in SERVICES {
        let provider = provider(&url, service);
        tokio::task::spawn_blocking(move || send(&provider, TRACES_PER_SERVICE))
            .await
            .unwrap();
    }
    let latest = wait_for_calls(&weir, SPANS as u64);
    assert_eq!(latest.calls(""), SPANS as u64, "{latest:?}\n{}", weir.log());
    assert_eq!(
        latest.calls("STATUS_CODE_ERROR"),
        ERRORS as u64,
        "{latest:?}"
    );
    assert_eq!(latest.calls.len(), 6, "3 series per service: {latest:?}");
    assert!(
        latest.calls.keys().all(|k| k.ends_with("|ci")),
        "the resource dimension is on every series: {latest:?}"
    );
    let count: u64 = latest.histograms.values().map(|(_, c, _)| c).sum();
    assert_eq!(count, SPANS as u64);
    // Default bounds 2, 5, 10, 25, 50 ms, …: children (3 ms) in the second bucket, roots (30 ms) in
    // the fifth.
    let mut buckets = vec![0u64; 13];
    for (_, _, b) in latest.histograms.values() {
        buckets.iter_mut().zip(b).for_each(|(t, n)| *t += n);
    }
    let roots = (SERVICES.len() * TRACES_PER_SERVICE) as u64;
    assert_eq!(buckets[1], 2 * roots, "{buckets:?}");
    assert_eq!(buckets[4], roots, "{buckets:?}");

    // Meanwhile sampling kept about 1 % of the traces, whole.
    let out = |w: &Weir| w.metric("weir_sampled_out_items_total", &["signal=\"traces\""]) as usize;
    let decided = weir.wait_for(SPANS, |w| out(w) + w.span_count());
    assert_eq!(decided, SPANS, "every span was sampled in or out");
    let kept = weir.span_count();
    assert!(
        kept.is_multiple_of(3) && kept <= SPANS / 20,
        "kept {kept} of {SPANS} spans"
    );
    assert_eq!(weir.metric("weir_span_metrics_series", &[]), 6.0);
    assert_eq!(weir.metric("weir_span_metrics_overflow_total", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_the_last_interval_counted() {
    let wal = tempfile::tempdir().unwrap();
    // In durable mode too: the metrics intake is then the durable log's, closed the same late way.
    let durable = format!("durable: {{dir: \"{}\"}}\n", wal.path().display());
    for extra in ["", durable.as_str()] {
        // No periodic flush will come: only the one at shutdown can export these.
        let mut weir = sampled_weir("1h", extra);
        let provider = provider(&weir.grpc_url(), "checkout");
        tokio::task::spawn_blocking(move || send(&provider, 100))
            .await
            .unwrap();
        let accepted = |w: &Weir| {
            w.metric("weir_receiver_accepted_items_total", &["signal=\"traces\""]) as usize
        };
        assert_eq!(weir.wait_for(300, accepted), 300);
        assert!(Latest::read(&weir).calls.is_empty());
        assert!(weir.terminate().success(), "{extra}: {}", weir.log());
        let latest = Latest::read(&weir);
        assert_eq!(latest.calls(""), 300, "{extra}: {latest:?}\n{}", weir.log());
        assert_eq!(latest.calls("STATUS_CODE_ERROR"), 15);
    }
}

#[test]
fn a_reload_says_span_metrics_changes_need_a_restart() {
    let weir = Weir::start_with(Options {
        pipeline: "reload: {watch: false}\npipeline:\n  span_metrics: {interval: 1h}\n".into(),
        ..Options::default()
    });
    let path = weir.dir.path().join("weir.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("interval: 1h", "interval: 2h")).unwrap();
    let r = common::http_request(weir.admin, "POST", "/admin/reload", &[], b"").unwrap();
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 200, "{body}");
    assert!(body.contains("span_metrics settings changed too"), "{body}");
}

#[test]
fn check_refuses_span_metrics_without_a_metrics_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir.yaml");
    std::fs::write(
        &path,
        "pipeline:\n  span_metrics: {}\nexporters:\n  t: {blackhole: {}, signals: [traces, logs]}\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("pipeline.span_metrics: emits metrics into the metrics pipeline"),
        "{stderr}"
    );
}
