//! Metric data points → rows of the five `otel_metrics_*` tables: each point goes to the table of its
//! metric's type, carrying what surrounds it (resource, scope, metric, temporality) and its exemplars.

use super::{service_name, Encoder, Field};
use crate::clickhouse::columns::{Column, MetricTable, PointField};
use crate::clickhouse::Layout;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// One metric data point with what surrounds it.
struct PointCtx<'a> {
    resource: Option<&'a Resource>,
    resource_schema: &'a str,
    service: &'a [u8],
    scope: Option<&'a InstrumentationScope>,
    scope_schema: &'a str,
    metric: &'a Metric,
    /// Sum only: temporality and monotonicity live on the metric, not the point.
    temporality: i32,
    monotonic: bool,
}

enum Point<'a> {
    Number(&'a NumberDataPoint),
    Histogram(&'a HistogramDataPoint),
    Exponential(&'a ExponentialHistogramDataPoint),
    Summary(&'a SummaryDataPoint),
}

impl Encoder {
    /// Appends one row per data point to the buffer of its table (in [`MetricTable::ALL`] order);
    /// returns the rows written per table.
    pub fn metrics(
        &mut self,
        resources: &[ResourceMetrics],
        layout: Layout,
        out: &mut [Vec<u8>; 5],
    ) -> [usize; 5] {
        let mut rows = [0; 5];
        for rm in resources {
            let resource = rm.resource.as_ref();
            let service = service_name(resource);
            for sm in &rm.scope_metrics {
                for metric in &sm.metrics {
                    let mut ctx = PointCtx {
                        resource,
                        resource_schema: &rm.schema_url,
                        service,
                        scope: sm.scope.as_ref(),
                        scope_schema: &sm.schema_url,
                        metric,
                        temporality: 0,
                        monotonic: false,
                    };
                    let (table, points): (MetricTable, Vec<Point<'_>>) = match &metric.data {
                        Some(Data::Gauge(g)) => (
                            MetricTable::Gauge,
                            g.data_points.iter().map(Point::Number).collect(),
                        ),
                        Some(Data::Sum(s)) => {
                            ctx.temporality = s.aggregation_temporality;
                            ctx.monotonic = s.is_monotonic;
                            (
                                MetricTable::Sum,
                                s.data_points.iter().map(Point::Number).collect(),
                            )
                        }
                        Some(Data::Histogram(h)) => {
                            ctx.temporality = h.aggregation_temporality;
                            (
                                MetricTable::Histogram,
                                h.data_points.iter().map(Point::Histogram).collect(),
                            )
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            ctx.temporality = h.aggregation_temporality;
                            (
                                MetricTable::ExponentialHistogram,
                                h.data_points.iter().map(Point::Exponential).collect(),
                            )
                        }
                        Some(Data::Summary(s)) => (
                            MetricTable::Summary,
                            s.data_points.iter().map(Point::Summary).collect(),
                        ),
                        None => continue,
                    };
                    let i = table as usize;
                    for point in &points {
                        for c in table.columns() {
                            let cell = point_cell(c, &ctx, point);
                            self.write(c, cell, layout, &mut out[i]);
                        }
                        rows[i] += 1;
                    }
                }
            }
        }
        rows
    }
}

#[inline]
fn point_cell<'a>(c: &Column<PointField>, x: &PointCtx<'a>, p: &Point<'a>) -> Field<'a> {
    const NONE: &[KeyValue] = &[];
    let (attributes, start, time, flags) = match p {
        Point::Number(n) => (
            &n.attributes,
            n.start_time_unix_nano,
            n.time_unix_nano,
            n.flags,
        ),
        Point::Histogram(h) => (
            &h.attributes,
            h.start_time_unix_nano,
            h.time_unix_nano,
            h.flags,
        ),
        Point::Exponential(h) => (
            &h.attributes,
            h.start_time_unix_nano,
            h.time_unix_nano,
            h.flags,
        ),
        Point::Summary(s) => (
            &s.attributes,
            s.start_time_unix_nano,
            s.time_unix_nano,
            s.flags,
        ),
    };
    let exemplars: &[Exemplar] = match p {
        Point::Number(n) => &n.exemplars,
        Point::Histogram(h) => &h.exemplars,
        Point::Exponential(h) => &h.exemplars,
        Point::Summary(_) => &[],
    };
    match c.field {
        PointField::ResourceAttributes => Field::Attrs(x.resource.map_or(NONE, |r| &r.attributes)),
        PointField::ResourceSchemaUrl => Field::Bytes(x.resource_schema.as_bytes()),
        PointField::ScopeName => Field::Bytes(x.scope.map_or(&[][..], |s| s.name.as_bytes())),
        PointField::ScopeVersion => Field::Bytes(x.scope.map_or(&[][..], |s| s.version.as_bytes())),
        PointField::ScopeAttributes => Field::Attrs(x.scope.map_or(NONE, |s| &s.attributes)),
        PointField::ScopeDroppedAttrCount => {
            Field::U32(x.scope.map_or(0, |s| s.dropped_attributes_count))
        }
        PointField::ScopeSchemaUrl => Field::Bytes(x.scope_schema.as_bytes()),
        PointField::ServiceName => Field::Bytes(x.service),
        PointField::MetricName => Field::Bytes(x.metric.name.as_bytes()),
        PointField::MetricDescription => Field::Bytes(x.metric.description.as_bytes()),
        PointField::MetricUnit => Field::Bytes(x.metric.unit.as_bytes()),
        PointField::Attributes => Field::Attrs(attributes),
        PointField::StartTimeUnix => Field::Time(start),
        PointField::TimeUnix => Field::Time(time),
        PointField::Flags => Field::U32(flags),
        PointField::Exemplars => Field::Exemplars(exemplars),
        PointField::AggregationTemporality => Field::I32(x.temporality),
        PointField::IsMonotonic => Field::U8(u8::from(x.monotonic)),
        PointField::Value => Field::F64(match p {
            Point::Number(n) => match n.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => 0.0,
            },
            _ => 0.0,
        }),
        PointField::Count => Field::U64(match p {
            Point::Histogram(h) => h.count,
            Point::Exponential(h) => h.count,
            Point::Summary(s) => s.count,
            Point::Number(_) => 0,
        }),
        PointField::Sum => Field::F64(match p {
            Point::Histogram(h) => h.sum.unwrap_or_default(),
            Point::Exponential(h) => h.sum.unwrap_or_default(),
            Point::Summary(s) => s.sum,
            Point::Number(_) => 0.0,
        }),
        PointField::Min => Field::F64(match p {
            Point::Histogram(h) => h.min.unwrap_or_default(),
            Point::Exponential(h) => h.min.unwrap_or_default(),
            _ => 0.0,
        }),
        PointField::Max => Field::F64(match p {
            Point::Histogram(h) => h.max.unwrap_or_default(),
            Point::Exponential(h) => h.max.unwrap_or_default(),
            _ => 0.0,
        }),
        PointField::BucketCounts => Field::ArrU64(match p {
            Point::Histogram(h) => &h.bucket_counts,
            _ => &[],
        }),
        PointField::ExplicitBounds => Field::ArrF64(match p {
            Point::Histogram(h) => &h.explicit_bounds,
            _ => &[],
        }),
        PointField::Scale => Field::I32(match p {
            Point::Exponential(h) => h.scale,
            _ => 0,
        }),
        PointField::ZeroCount => Field::U64(match p {
            Point::Exponential(h) => h.zero_count,
            _ => 0,
        }),
        PointField::PositiveOffset => Field::I32(match p {
            Point::Exponential(h) => h.positive.as_ref().map_or(0, |b| b.offset),
            _ => 0,
        }),
        PointField::PositiveBucketCounts => Field::ArrU64(match p {
            Point::Exponential(h) => h.positive.as_ref().map_or(&[][..], |b| &b.bucket_counts),
            _ => &[],
        }),
        PointField::NegativeOffset => Field::I32(match p {
            Point::Exponential(h) => h.negative.as_ref().map_or(0, |b| b.offset),
            _ => 0,
        }),
        PointField::NegativeBucketCounts => Field::ArrU64(match p {
            Point::Exponential(h) => h.negative.as_ref().map_or(&[][..], |b| &b.bucket_counts),
            _ => &[],
        }),
        PointField::ValueAtQuantiles => Field::Quantiles(match p {
            Point::Summary(s) => &s.quantile_values,
            _ => &[],
        }),
    }
}

pub(super) fn exemplar_value(e: &Exemplar) -> f64 {
    match e.value {
        Some(exemplar::Value::AsDouble(d)) => d,
        Some(exemplar::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}
