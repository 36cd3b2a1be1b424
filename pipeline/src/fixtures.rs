//! Realistic OTLP batches for tests and benchmarks: several services, typical attribute sets, ids that
//! are valid and distinct. Deterministic, so failures reproduce.

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

const BASE_NANOS: u64 = 1_764_000_000_000_000_000;

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(i: usize) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", &format!("checkout-{}", i % 7)),
            kv("service.namespace", "shop"),
            kv("deployment.environment", "production"),
            kv(
                "k8s.pod.name",
                &format!("checkout-{}-7d9f8b6c4-x2x{i:02}", i % 7),
            ),
            kv("host.name", &format!("node-{:03}", i % 50)),
        ],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "weir.fixtures".into(),
        version: "1.0.0".into(),
        ..Default::default()
    })
}

/// A 16-byte trace id that is never all zero and differs for every `(r, n)`.
pub fn trace_id(r: usize, n: usize) -> Vec<u8> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(r as u64 + 1).to_be_bytes());
    id[8..].copy_from_slice(&((n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).to_be_bytes());
    id.to_vec()
}

pub fn span_id(r: usize, n: usize) -> Vec<u8> {
    ((r as u64) << 32 | n as u64 | 1 << 63)
        .to_be_bytes()
        .to_vec()
}

pub fn resource_spans(resources: usize, spans_per_resource: usize) -> Vec<ResourceSpans> {
    (0..resources)
        .map(|r| ResourceSpans {
            resource: resource(r),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: (0..spans_per_resource)
                    .map(|n| Span {
                        trace_id: trace_id(r, n / 4),
                        span_id: span_id(r, n),
                        parent_span_id: if n % 4 == 0 {
                            vec![]
                        } else {
                            span_id(r, n - n % 4)
                        },
                        name: format!("GET /api/v1/cart/{}", n % 13),
                        kind: span::SpanKind::Server as i32,
                        start_time_unix_nano: BASE_NANOS + n as u64 * 1_000_000,
                        end_time_unix_nano: BASE_NANOS + n as u64 * 1_000_000 + 250_000,
                        attributes: vec![
                            kv("http.request.method", "GET"),
                            kv("url.path", &format!("/api/v1/cart/{}", n % 13)),
                            kv_int(
                                "http.response.status_code",
                                if n % 50 == 0 { 500 } else { 200 },
                            ),
                            kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                        ],
                        status: Some(Status {
                            code: if n % 50 == 0 { 2 } else { 0 },
                            ..Default::default()
                        }),
                        flags: 0x301,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}

pub fn resource_logs(resources: usize, records_per_resource: usize) -> Vec<ResourceLogs> {
    (0..resources)
        .map(|r| ResourceLogs {
            resource: resource(r),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: (0..records_per_resource)
                    .map(|n| LogRecord {
                        time_unix_nano: BASE_NANOS + n as u64 * 1_000,
                        observed_time_unix_nano: BASE_NANOS + n as u64 * 1_000 + 10,
                        severity_number: if n % 10 == 0 { 17 } else { 9 },
                        severity_text: if n % 10 == 0 { "ERROR" } else { "INFO" }.into(),
                        body: Some(AnyValue {
                            value: Some(Value::StringValue(format!(
                                "order {n} processed for customer {} in {} ms",
                                r * 1000 + n,
                                n % 97
                            ))),
                        }),
                        attributes: vec![
                            kv("code.function", "process_order"),
                            kv_int("order.items", (n % 9) as i64),
                        ],
                        trace_id: if n % 2 == 0 { trace_id(r, n) } else { vec![] },
                        span_id: if n % 2 == 0 { span_id(r, n) } else { vec![] },
                        flags: if n % 2 == 0 { 1 } else { 0 },
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}

/// `points_per_resource` data points, split between a gauge and a cumulative sum.
pub fn resource_metrics(resources: usize, points_per_resource: usize) -> Vec<ResourceMetrics> {
    let point = |n: usize| NumberDataPoint {
        attributes: vec![kv("cpu", &format!("{}", n % 4))],
        time_unix_nano: BASE_NANOS + n as u64,
        value: Some(number_data_point::Value::AsDouble(n as f64 * 0.5)),
        ..Default::default()
    };
    (0..resources)
        .map(|r| {
            let half = points_per_resource / 2;
            ResourceMetrics {
                resource: resource(r),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics: vec![
                        Metric {
                            name: "system.cpu.utilization".into(),
                            unit: "1".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: (0..half).map(point).collect(),
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "http.server.requests".into(),
                            unit: "{request}".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: (half..points_per_resource).map(point).collect(),
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}
