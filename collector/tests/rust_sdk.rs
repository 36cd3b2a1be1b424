//! The Rust OpenTelemetry SDK (`opentelemetry-otlp`, gRPC with gzip) sends traces, logs and metrics
//! through the real `weir` binary; every span, record and point arrives in the file exporter intact.

mod common;

use common::Weir;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Compression, WithExportConfig, WithTonicConfig};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::collections::BTreeMap;

fn resource() -> Resource {
    Resource::builder()
        .with_service_name("rust-sdk-test")
        .with_attribute(KeyValue::new("deployment.environment", "ci"))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_traces_logs_and_metrics_arrive_intact() {
    let weir = Weir::start();
    let url = weir.grpc_url();

    let span_exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(&url)
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(span_exporter)
        .with_resource(resource())
        .build();
    let log_exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(&url)
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let logger_provider = SdkLoggerProvider::builder()
        .with_batch_exporter(log_exporter)
        .with_resource(resource())
        .build();
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(&url)
        .with_compression(Compression::Gzip)
        .build()
        .unwrap();
    let meter_provider = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter)
        .with_resource(resource())
        .build();

    let tracer = tracer_provider.tracer("weir-test");
    let logger = logger_provider.logger("weir-test");
    let meter = meter_provider.meter("weir-test");
    let counter = meter.u64_counter("orders").build();

    const N: usize = 200;
    let mut sent_spans = BTreeMap::new();
    let mut sent_logs = BTreeMap::new();
    for i in 0..N {
        let mut span = tracer
            .span_builder(format!("op-{i}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("i", i as i64),
                KeyValue::new("path", format!("/p/{i}")),
            ])
            .start(&tracer);
        let ctx = span.span_context().clone();
        sent_spans.insert(
            ctx.span_id().to_string(),
            (ctx.trace_id().to_string(), format!("op-{i}")),
        );
        let mut record = logger.create_log_record();
        record.set_body(AnyValue::from(format!("log line {i} ✓")));
        record.set_severity_number(Severity::Warn);
        record.add_attribute("i", i as i64);
        record.set_trace_context(ctx.trace_id(), ctx.span_id(), Some(ctx.trace_flags()));
        logger.emit(record);
        sent_logs.insert(
            i as i64,
            (format!("log line {i} ✓"), ctx.trace_id().to_string()),
        );
        span.end();
        counter.add(1, &[KeyValue::new("shard", (i % 4) as i64)]);
        let _ = opentelemetry::Context::current().span();
    }
    tokio::task::spawn_blocking(move || {
        tracer_provider.shutdown().unwrap();
        logger_provider.shutdown().unwrap();
        meter_provider.shutdown().unwrap();
    })
    .await
    .unwrap();

    assert_eq!(
        weir.wait_for(N, Weir::span_count),
        N,
        "spans; log:\n{}",
        weir.log()
    );
    assert_eq!(weir.wait_for(N, Weir::log_count), N, "logs");

    let mut got_spans = BTreeMap::new();
    for rs in weir.traces().iter().flat_map(|r| r.resource_spans.clone()) {
        let res = rs.resource.unwrap();
        assert!(res.attributes.iter().any(|kv| kv.key == "service.name"
            && kv.value.as_ref().and_then(|v| v.value.clone())
                == Some(Value::StringValue("rust-sdk-test".into()))));
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            let i = span.attributes.iter().find(|kv| kv.key == "i").unwrap();
            assert!(matches!(
                i.value.as_ref().unwrap().value,
                Some(Value::IntValue(_))
            ));
            got_spans.insert(
                hex::encode(&span.span_id),
                (hex::encode(&span.trace_id), span.name.clone()),
            );
        }
    }
    assert_eq!(
        got_spans, sent_spans,
        "every span id, trace id and name identical"
    );

    let mut got_logs = BTreeMap::new();
    for rl in weir.logs().iter().flat_map(|r| r.resource_logs.clone()) {
        for rec in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            let Some(Value::IntValue(i)) = rec
                .attributes
                .iter()
                .find(|kv| kv.key == "i")
                .unwrap()
                .value
                .clone()
                .unwrap()
                .value
            else {
                panic!("attribute i is not an int");
            };
            let Some(Value::StringValue(body)) = rec.body.clone().unwrap().value else {
                panic!("body is not a string");
            };
            assert_eq!(rec.severity_number, Severity::Warn as i32);
            got_logs.insert(i, (body, hex::encode(&rec.trace_id)));
        }
    }
    assert_eq!(
        got_logs, sent_logs,
        "every log body, attribute and trace id identical"
    );

    let total: f64 = weir
        .metrics_out()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == "orders")
        .filter_map(|m| match &m.data {
            Some(Data::Sum(s)) => Some(s.data_points.iter().map(|p| match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v as f64,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v)) => v,
                None => 0.0,
            }).collect::<Vec<_>>()),
            _ => None,
        })
        .map(|points| points.iter().sum::<f64>())
        .fold(0.0, f64::max);
    assert_eq!(
        total, N as f64,
        "cumulative counter across 4 shards reaches N"
    );
    assert_eq!(
        weir.metric(
            "weir_receiver_accepted_items_total",
            &["signal=\"traces\"", "transport=\"grpc\""]
        ),
        N as f64
    );
}
