//! Totals as OTLP: one `ResourceMetrics` per `service.name`, holding a cumulative monotonic Sum of
//! calls and a cumulative Histogram of durations in milliseconds, labelled as the OpenTelemetry
//! Collector's spanmetrics connector labels them (`span.name`, `span.kind`, `status.code`, then the
//! configured dimensions), so dashboards built for it read these unchanged.

use super::key::SeriesKey;
use super::shard::Cell;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Set on the one series that spans beyond `max_series` fold into, as the connector marks it.
pub const OVERFLOW_ATTRIBUTE: &str = "otel.metric.overflow";

/// What a flush emits: every series' totals, plus the overflow series once it has counted a span.
pub struct Snapshot {
    pub series: Vec<(Arc<SeriesKey>, Cell)>,
    pub overflow: Option<Cell>,
}

/// Names and layout shared by every flush.
pub(crate) struct Names<'a> {
    pub calls: &'a str,
    pub duration: &'a str,
    pub dimensions: &'a [String],
    pub bounds_ms: &'a [f64],
    pub start_unix_nano: u64,
}

impl Names<'_> {
    pub fn resource_metrics(&self, snapshot: Snapshot, now_unix_nano: u64) -> Vec<ResourceMetrics> {
        let mut by_service: BTreeMap<&str, (Vec<NumberDataPoint>, Vec<HistogramDataPoint>)> =
            BTreeMap::new();
        let overflow = snapshot.overflow.map(|c| {
            let attributes = vec![kv(OVERFLOW_ATTRIBUTE, any_value::Value::BoolValue(true))];
            (attributes, c)
        });
        let series = snapshot
            .series
            .iter()
            .map(|(k, c)| (&*k.service, self.attributes(k), c));
        let overflow = overflow.iter().map(|(a, c)| ("", a.clone(), c));
        for (service, attributes, cell) in series.chain(overflow) {
            let (calls, durations) = by_service.entry(service).or_default();
            calls.push(NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: self.start_unix_nano,
                time_unix_nano: now_unix_nano,
                value: Some(number_data_point::Value::AsInt(cell.calls as i64)),
                ..Default::default()
            });
            durations.push(HistogramDataPoint {
                attributes,
                start_time_unix_nano: self.start_unix_nano,
                time_unix_nano: now_unix_nano,
                count: cell.calls,
                sum: Some(cell.sum_ns as f64 / 1e6),
                bucket_counts: cell.buckets.to_vec(),
                explicit_bounds: self.bounds_ms.to_vec(),
                ..Default::default()
            });
        }
        let cumulative = AggregationTemporality::Cumulative as i32;
        by_service
            .into_iter()
            .map(|(service, (calls, durations))| ResourceMetrics {
                resource: Some(Resource {
                    attributes: (!service.is_empty())
                        .then(|| kv("service.name", string(service)))
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "weir.span_metrics".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics: vec![
                        Metric {
                            name: self.calls.into(),
                            description: "Spans seen before sampling; errors carry status.code STATUS_CODE_ERROR.".into(),
                            unit: "1".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: calls,
                                aggregation_temporality: cumulative,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: self.duration.into(),
                            description: "Span durations (end minus start) before sampling.".into(),
                            unit: "ms".into(),
                            data: Some(Data::Histogram(Histogram {
                                data_points: durations,
                                aggregation_temporality: cumulative,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect()
    }

    fn attributes(&self, k: &SeriesKey) -> Vec<KeyValue> {
        let kind = SpanKind::try_from(k.kind).unwrap_or(SpanKind::Unspecified);
        let status = StatusCode::try_from(k.status).unwrap_or(StatusCode::Unset);
        let mut a = Vec::with_capacity(3 + k.dims.len());
        a.push(kv("span.name", string(&k.name)));
        a.push(kv("span.kind", string(kind.as_str_name())));
        a.push(kv("status.code", string(status.as_str_name())));
        for (name, v) in self.dimensions.iter().zip(k.dims.iter()) {
            if let Some(v) = v {
                a.push(kv(name, v.clone()));
            }
        }
        a
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_string())
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
