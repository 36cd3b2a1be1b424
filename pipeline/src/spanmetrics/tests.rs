//! Series keys, overflow, bucket placement and shard merging; flushes in [`flush`].

use super::*;
use crate::fixtures::{kv, kv_int};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, ResourceMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

mod flush;

const MS: u64 = 1_000_000;

fn config(yaml: &str) -> SpanMetricsConfig {
    let text = format!(
        "pipeline:\n  span_metrics: {yaml}\nexporters: {{f: {{file: {{path: /tmp/x}}}}}}\n"
    );
    weir_config::parse(&text, "t", |_| None)
        .unwrap()
        .pipeline
        .span_metrics
        .unwrap()
}

fn metrics(yaml: &str, shards: usize) -> (Arc<SpanMetrics>, Arc<Registry>) {
    let registry = Registry::new();
    (SpanMetrics::new(&config(yaml), &registry, shards), registry)
}

fn span(name: &str, status: i32, ms: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_000 * MS,
        end_time_unix_nano: 1_000 * MS + ms * MS,
        status: Some(Status {
            code: status,
            ..Default::default()
        }),
        attributes,
        ..Default::default()
    }
}

fn resource(service: &str, extra: Vec<KeyValue>, spans: Vec<Span>) -> ResourceSpans {
    let mut attributes = vec![kv("service.name", service)];
    attributes.extend(extra);
    ResourceSpans {
        resource: Some(Resource {
            attributes,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `(service, span.name, status.code, calls)` of every series.
fn calls(m: &SpanMetrics) -> Vec<(String, String, i32, u64)> {
    let mut out: Vec<_> = m
        .snapshot()
        .series
        .iter()
        .map(|(k, c)| (k.service.to_string(), k.name.to_string(), k.status, c.calls))
        .collect();
    out.sort();
    out
}

fn text(v: &Option<Value>) -> String {
    match v {
        Some(Value::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn one_series_per_service_name_kind_status_and_dimension() {
    let (m, _) = metrics("{dimensions: [http.route, deployment.environment]}", 1);
    let env = || vec![kv("deployment.environment", "prod")];
    m.record(&[
        resource(
            "cart",
            env(),
            vec![
                span("GET", 0, 1, vec![kv("http.route", "/a")]),
                span("GET", 0, 1, vec![kv("http.route", "/a")]),
                span("GET", 2, 1, vec![kv("http.route", "/a")]),
                span("GET", 0, 1, vec![kv("http.route", "/b")]),
                // The span's own value wins over its resource's.
                span(
                    "GET",
                    0,
                    1,
                    vec![kv("http.route", "/a"), kv("deployment.environment", "dev")],
                ),
            ],
        ),
        resource("shop", vec![], vec![span("GET", 0, 1, vec![])]),
    ]);
    assert_eq!(m.series(), 5);
    let snapshot = m.snapshot();
    let dims: Vec<(u64, Vec<String>)> = snapshot
        .series
        .iter()
        .map(|(k, c)| (c.calls, k.dims.iter().map(text).collect()))
        .collect();
    let none = "None".to_string();
    assert_eq!(
        dims,
        [
            (2, vec!["/a".into(), "prod".into()]),
            (1, vec!["/a".into(), "prod".into()]),
            (1, vec!["/b".into(), "prod".into()]),
            (1, vec!["/a".into(), "dev".into()]),
            (1, vec![none.clone(), none]),
        ]
    );
    assert_eq!(snapshot.series[1].0.status, 2);
    // A non-string dimension keeps its type.
    let (m, _) = metrics("{dimensions: [http.response.status_code]}", 1);
    let code = |c| vec![kv_int("http.response.status_code", c)];
    m.record(&[resource(
        "a",
        vec![],
        vec![
            span("x", 0, 1, code(200)),
            span("x", 0, 1, code(200)),
            span("x", 0, 1, code(500)),
        ],
    )]);
    assert_eq!(m.series(), 2);
    assert_eq!(m.snapshot().series[1].0.dims[0], Some(Value::IntValue(500)));
}

#[test]
fn series_beyond_max_series_fold_into_the_overflow_series() {
    let (m, registry) = metrics("{max_series: 2}", 2);
    let batch = |names: &[&str]| {
        let spans = names.iter().map(|n| span(n, 0, 1, vec![])).collect();
        vec![resource("svc", vec![], spans)]
    };
    m.record(&batch(&["a", "b", "c", "d", "c"]));
    // Another shard: the known series still count as themselves, new ones overflow too.
    std::thread::scope(|s| {
        s.spawn(|| m.record(&batch(&["a", "e"])));
    });
    assert_eq!(m.series(), 2);
    assert_eq!(
        calls(&m),
        [
            ("svc".into(), "a".into(), 0, 2),
            ("svc".into(), "b".into(), 0, 1)
        ]
    );
    let overflow = m.snapshot().overflow.unwrap();
    assert_eq!(overflow.calls, 4);
    let text = registry.render();
    assert!(
        text.contains("weir_span_metrics_overflow_total 4\n"),
        "{text}"
    );
    assert!(text.contains("weir_span_metrics_series 2\n"), "{text}");
    let rm = m.resource_metrics(SystemTime::now());
    let points = sums(&rm);
    let flagged: Vec<_> = points
        .iter()
        .filter(|(a, _)| a.contains("otel.metric.overflow=true"))
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].1, 4);
}

#[test]
fn durations_land_in_upper_inclusive_buckets() {
    let (m, _) = metrics("{buckets: [5ms, 10ms]}", 1);
    let spans = [1, 5, 7, 10, 11, 3_600_000].map(|ms| span("s", 0, ms, vec![]));
    let mut backwards = span("s", 0, 0, vec![]);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - MS;
    let mut all = spans.to_vec();
    all.push(backwards);
    m.record(&[resource("svc", vec![], all)]);
    let snapshot = m.snapshot();
    let cell = &snapshot.series[0].1;
    // An end before the start counts as zero.
    assert_eq!(&*cell.buckets, &[3, 2, 2]);
    assert_eq!(cell.calls, 7);
    assert_eq!(
        cell.sum_ns,
        u128::from((1 + 5 + 7 + 10 + 11 + 3_600_000) * MS)
    );
    let rm = m.resource_metrics(SystemTime::now());
    let Some(Data::Histogram(h)) = &rm[0].scope_metrics[0].metrics[1].data else {
        panic!("histogram expected")
    };
    assert_eq!(h.data_points[0].explicit_bounds, [5.0, 10.0]);
    assert_eq!(h.data_points[0].bucket_counts, [3, 2, 2]);
    assert_eq!(h.data_points[0].count, 7);
    assert_eq!(h.data_points[0].sum, Some(3_600_034.0));
}
/// `("k=v,…", value)` of every calls data point.
fn sums(rm: &[ResourceMetrics]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for r in rm {
        let service: Vec<_> = r
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(|a| text(&a.value.as_ref().and_then(|v| v.value.clone())))
            .collect();
        for metric in r.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let Some(Data::Sum(sum)) = &metric.data else {
                continue;
            };
            for p in &sum.data_points {
                let labels: Vec<_> = p
                    .attributes
                    .iter()
                    .map(|a| match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::BoolValue(b)) => format!("{}={b}", a.key),
                        v => format!("{}={}", a.key, text(&v.cloned())),
                    })
                    .collect();
                let Some(number_data_point::Value::AsInt(v)) = p.value else {
                    panic!()
                };
                out.push((
                    format!("service={};{}", service.join(""), labels.join(",")),
                    v,
                ));
            }
        }
    }
    out
}

#[test]
fn shards_merge_into_one_series_each() {
    let (m, _) = metrics("{}", 4);
    let batch = vec![resource(
        "svc",
        vec![],
        (0..100)
            .map(|i| span(["a", "b"][i % 2], 0, 1, vec![]))
            .collect(),
    )];
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| (0..50).for_each(|_| m.record(&batch)));
        }
    });
    assert_eq!(m.series(), 2);
    assert_eq!(
        calls(&m),
        [
            ("svc".into(), "a".into(), 0, 20_000),
            ("svc".into(), "b".into(), 0, 20_000)
        ]
    );
}
