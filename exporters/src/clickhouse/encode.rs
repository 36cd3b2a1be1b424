//! A batch → RowBinary rows for a [`Layout`], written straight from the OTLP structures: ids hex-encoded
//! into the buffer, string values copied once, no intermediate row of `String`s.

use super::columns::{
    Column, Kind, LogField, MetricTable, PointField, SpanField, LOG_COLUMNS, SPAN_COLUMNS,
};
use super::rowbinary as rb;
use super::Layout;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, summary_data_point::ValueAtQuantile, Exemplar,
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

/// One cell, borrowed from the OTLP batch.
enum Cell<'a> {
    Time(u64),
    Bytes(&'a [u8]),
    Id(&'a [u8]),
    U8(u8),
    U64(u64),
    Any(Option<&'a AnyValue>),
    Attrs(&'a [KeyValue]),
    Events(&'a [Event]),
    Links(&'a [Link]),
    U32(u32),
    I32(i32),
    F64(f64),
    ArrU64(&'a [u64]),
    ArrF64(&'a [f64]),
    Exemplars(&'a [Exemplar]),
    Quantiles(&'a [ValueAtQuantile]),
}

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

/// Reusable state: the scratch string for non-string values.
#[derive(Default)]
pub struct Encoder {
    scratch: String,
}

impl Encoder {
    /// Appends one row per log record to `out`; returns the number of rows.
    pub fn logs(&mut self, resources: &[ResourceLogs], layout: Layout, out: &mut Vec<u8>) -> usize {
        let mut rows = 0;
        for rl in resources {
            let resource = rl.resource.as_ref();
            let service = service_name(resource);
            for sl in &rl.scope_logs {
                for record in &sl.log_records {
                    for c in LOG_COLUMNS {
                        let cell = log_cell(
                            c,
                            rl,
                            resource,
                            service,
                            sl.scope.as_ref(),
                            &sl.schema_url,
                            record,
                        );
                        self.write(c, cell, layout, out);
                    }
                    rows += 1;
                }
            }
        }
        rows
    }

    /// Appends one row per span to `out`; returns the number of rows.
    pub fn spans(
        &mut self,
        resources: &[ResourceSpans],
        layout: Layout,
        out: &mut Vec<u8>,
    ) -> usize {
        let mut rows = 0;
        for rs in resources {
            let resource = rs.resource.as_ref();
            let service = service_name(resource);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    for c in SPAN_COLUMNS {
                        let cell = span_cell(c, resource, service, ss.scope.as_ref(), span);
                        self.write(c, cell, layout, out);
                    }
                    rows += 1;
                }
            }
        }
        rows
    }

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

    fn map(&mut self, kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(out, kv.key.as_bytes());
            rb::string(
                out,
                rb::value_text(kv.value.as_ref(), &mut self.scratch).as_bytes(),
            );
        }
    }

    fn keys(kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(out, kv.key.as_bytes());
        }
    }

    fn values(&mut self, kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(
                out,
                rb::value_text(kv.value.as_ref(), &mut self.scratch).as_bytes(),
            );
        }
    }

    /// Attributes of each element: one `Map` per element, or (portable) parallel key and value arrays.
    fn nested_attrs<'a, T: 'a>(
        &mut self,
        items: &'a [T],
        attrs: impl Fn(&'a T) -> &'a [KeyValue],
        layout: Layout,
        out: &mut Vec<u8>,
    ) {
        rb::varint(out, items.len() as u64);
        match layout {
            Layout::Modern => items.iter().for_each(|i| self.map(attrs(i), out)),
            Layout::Portable => {
                items.iter().for_each(|i| Self::keys(attrs(i), out));
                rb::varint(out, items.len() as u64);
                items.iter().for_each(|i| self.values(attrs(i), out));
            }
        }
    }

    fn write<F>(&mut self, c: &Column<F>, cell: Cell<'_>, layout: Layout, out: &mut Vec<u8>) {
        match (cell, c.kind, layout) {
            (Cell::Time(ns), Kind::Time, Layout::Modern) => rb::i64(out, ns as i64),
            (Cell::Time(ns), Kind::Time, Layout::Portable) => {
                rb::u64(out, ns);
                rb::u32(out, (ns / 1_000_000_000).min(u64::from(u32::MAX)) as u32);
            }
            (Cell::Bytes(b), _, _) => rb::string(out, b),
            (Cell::Id(id), _, _) => rb::hex_id(out, id),
            (Cell::U8(v), _, _) => rb::u8(out, v),
            (Cell::Any(v), _, _) => {
                rb::string(out, rb::value_text(v, &mut self.scratch).as_bytes())
            }
            (Cell::U64(v), _, _) => rb::u64(out, v),
            (Cell::Attrs(kvs), _, Layout::Modern) => self.map(kvs, out),
            (Cell::Attrs(kvs), _, Layout::Portable) => {
                Self::keys(kvs, out);
                self.values(kvs, out);
            }
            (Cell::Events(events), _, _) => {
                rb::varint(out, events.len() as u64);
                for e in events {
                    match layout {
                        Layout::Modern => rb::i64(out, e.time_unix_nano as i64),
                        Layout::Portable => rb::u64(out, e.time_unix_nano),
                    }
                }
                rb::varint(out, events.len() as u64);
                for e in events {
                    rb::string(out, e.name.as_bytes());
                }
                self.nested_attrs(events, |e| &e.attributes, layout, out);
            }
            (Cell::Links(links), _, _) => {
                rb::varint(out, links.len() as u64);
                links.iter().for_each(|l| rb::hex_id(out, &l.trace_id));
                rb::varint(out, links.len() as u64);
                links.iter().for_each(|l| rb::hex_id(out, &l.span_id));
                rb::varint(out, links.len() as u64);
                links
                    .iter()
                    .for_each(|l| rb::string(out, l.trace_state.as_bytes()));
                self.nested_attrs(links, |l| &l.attributes, layout, out);
            }
            (Cell::U32(v), _, _) => rb::u32(out, v),
            (Cell::I32(v), _, _) => out.extend_from_slice(&v.to_le_bytes()),
            (Cell::F64(v), _, _) => out.extend_from_slice(&v.to_le_bytes()),
            (Cell::ArrU64(v), _, _) => {
                rb::varint(out, v.len() as u64);
                v.iter().for_each(|x| rb::u64(out, *x));
            }
            (Cell::ArrF64(v), _, _) => {
                rb::varint(out, v.len() as u64);
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            (Cell::Exemplars(ex), _, _) => {
                if layout == Layout::Modern {
                    rb::varint(out, ex.len() as u64);
                    ex.iter()
                        .for_each(|e| self.map(&e.filtered_attributes, out));
                } else {
                    self.nested_attrs(ex, |e| &e.filtered_attributes, layout, out);
                }
                rb::varint(out, ex.len() as u64);
                for e in ex {
                    match layout {
                        Layout::Modern => rb::i64(out, e.time_unix_nano as i64),
                        Layout::Portable => rb::u64(out, e.time_unix_nano),
                    }
                }
                rb::varint(out, ex.len() as u64);
                ex.iter()
                    .for_each(|e| out.extend_from_slice(&exemplar_value(e).to_le_bytes()));
                rb::varint(out, ex.len() as u64);
                ex.iter().for_each(|e| rb::hex_id(out, &e.span_id));
                rb::varint(out, ex.len() as u64);
                ex.iter().for_each(|e| rb::hex_id(out, &e.trace_id));
            }
            (Cell::Quantiles(q), _, _) => {
                rb::varint(out, q.len() as u64);
                q.iter()
                    .for_each(|v| out.extend_from_slice(&v.quantile.to_le_bytes()));
                rb::varint(out, q.len() as u64);
                q.iter()
                    .for_each(|v| out.extend_from_slice(&v.value.to_le_bytes()));
            }
            (Cell::Time(ns), _, _) => rb::u64(out, ns),
        }
    }
}

fn log_cell<'a>(
    c: &Column<LogField>,
    rl: &'a ResourceLogs,
    resource: Option<&'a Resource>,
    service: &'a [u8],
    scope: Option<&'a InstrumentationScope>,
    scope_schema: &'a str,
    r: &'a LogRecord,
) -> Cell<'a> {
    const NONE: &[KeyValue] = &[];
    match c.field {
        LogField::Timestamp => Cell::Time(if r.time_unix_nano != 0 {
            r.time_unix_nano
        } else {
            r.observed_time_unix_nano
        }),
        LogField::TraceId => Cell::Id(&r.trace_id),
        LogField::SpanId => Cell::Id(&r.span_id),
        LogField::TraceFlags => Cell::U8((r.flags & 0xff) as u8),
        LogField::SeverityText => Cell::Bytes(r.severity_text.as_bytes()),
        LogField::SeverityNumber => Cell::U8(r.severity_number.clamp(0, 255) as u8),
        LogField::ServiceName => Cell::Bytes(service),
        LogField::Body => Cell::Any(r.body.as_ref()),
        LogField::ResourceSchemaUrl => Cell::Bytes(rl.schema_url.as_bytes()),
        LogField::ResourceAttributes => Cell::Attrs(resource.map_or(NONE, |r| &r.attributes)),
        LogField::ScopeSchemaUrl => Cell::Bytes(scope_schema.as_bytes()),
        LogField::ScopeName => Cell::Bytes(scope.map_or(&[][..], |s| s.name.as_bytes())),
        LogField::ScopeVersion => Cell::Bytes(scope.map_or(&[][..], |s| s.version.as_bytes())),
        LogField::ScopeAttributes => Cell::Attrs(scope.map_or(NONE, |s| &s.attributes)),
        LogField::LogAttributes => Cell::Attrs(&r.attributes),
    }
}

fn span_cell<'a>(
    c: &Column<SpanField>,
    resource: Option<&'a Resource>,
    service: &'a [u8],
    scope: Option<&'a InstrumentationScope>,
    s: &'a Span,
) -> Cell<'a> {
    const NONE: &[KeyValue] = &[];
    match c.field {
        SpanField::Timestamp => Cell::Time(s.start_time_unix_nano),
        SpanField::TraceId => Cell::Id(&s.trace_id),
        SpanField::SpanId => Cell::Id(&s.span_id),
        SpanField::ParentSpanId => Cell::Id(&s.parent_span_id),
        SpanField::TraceState => Cell::Bytes(s.trace_state.as_bytes()),
        SpanField::SpanName => Cell::Bytes(s.name.as_bytes()),
        SpanField::SpanKind => Cell::Bytes(span_kind(s.kind).as_bytes()),
        SpanField::ServiceName => Cell::Bytes(service),
        SpanField::ResourceAttributes => Cell::Attrs(resource.map_or(NONE, |r| &r.attributes)),
        SpanField::ScopeName => Cell::Bytes(scope.map_or(&[][..], |s| s.name.as_bytes())),
        SpanField::ScopeVersion => Cell::Bytes(scope.map_or(&[][..], |s| s.version.as_bytes())),
        SpanField::SpanAttributes => Cell::Attrs(&s.attributes),
        SpanField::Duration => {
            Cell::U64(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano))
        }
        SpanField::StatusCode => Cell::Bytes(status_code(s).as_bytes()),
        SpanField::StatusMessage => Cell::Bytes(
            s.status
                .as_ref()
                .map_or(&[][..], |st| st.message.as_bytes()),
        ),
        SpanField::Events => Cell::Events(&s.events),
        SpanField::Links => Cell::Links(&s.links),
    }
}

fn point_cell<'a>(c: &Column<PointField>, x: &PointCtx<'a>, p: &Point<'a>) -> Cell<'a> {
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
        PointField::ResourceAttributes => Cell::Attrs(x.resource.map_or(NONE, |r| &r.attributes)),
        PointField::ResourceSchemaUrl => Cell::Bytes(x.resource_schema.as_bytes()),
        PointField::ScopeName => Cell::Bytes(x.scope.map_or(&[][..], |s| s.name.as_bytes())),
        PointField::ScopeVersion => Cell::Bytes(x.scope.map_or(&[][..], |s| s.version.as_bytes())),
        PointField::ScopeAttributes => Cell::Attrs(x.scope.map_or(NONE, |s| &s.attributes)),
        PointField::ScopeDroppedAttrCount => {
            Cell::U32(x.scope.map_or(0, |s| s.dropped_attributes_count))
        }
        PointField::ScopeSchemaUrl => Cell::Bytes(x.scope_schema.as_bytes()),
        PointField::ServiceName => Cell::Bytes(x.service),
        PointField::MetricName => Cell::Bytes(x.metric.name.as_bytes()),
        PointField::MetricDescription => Cell::Bytes(x.metric.description.as_bytes()),
        PointField::MetricUnit => Cell::Bytes(x.metric.unit.as_bytes()),
        PointField::Attributes => Cell::Attrs(attributes),
        PointField::StartTimeUnix => Cell::Time(start),
        PointField::TimeUnix => Cell::Time(time),
        PointField::Flags => Cell::U32(flags),
        PointField::Exemplars => Cell::Exemplars(exemplars),
        PointField::AggregationTemporality => Cell::I32(x.temporality),
        PointField::IsMonotonic => Cell::U8(u8::from(x.monotonic)),
        PointField::Value => Cell::F64(match p {
            Point::Number(n) => match n.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                None => 0.0,
            },
            _ => 0.0,
        }),
        PointField::Count => Cell::U64(match p {
            Point::Histogram(h) => h.count,
            Point::Exponential(h) => h.count,
            Point::Summary(s) => s.count,
            Point::Number(_) => 0,
        }),
        PointField::Sum => Cell::F64(match p {
            Point::Histogram(h) => h.sum.unwrap_or_default(),
            Point::Exponential(h) => h.sum.unwrap_or_default(),
            Point::Summary(s) => s.sum,
            Point::Number(_) => 0.0,
        }),
        PointField::Min => Cell::F64(match p {
            Point::Histogram(h) => h.min.unwrap_or_default(),
            Point::Exponential(h) => h.min.unwrap_or_default(),
            _ => 0.0,
        }),
        PointField::Max => Cell::F64(match p {
            Point::Histogram(h) => h.max.unwrap_or_default(),
            Point::Exponential(h) => h.max.unwrap_or_default(),
            _ => 0.0,
        }),
        PointField::BucketCounts => Cell::ArrU64(match p {
            Point::Histogram(h) => &h.bucket_counts,
            _ => &[],
        }),
        PointField::ExplicitBounds => Cell::ArrF64(match p {
            Point::Histogram(h) => &h.explicit_bounds,
            _ => &[],
        }),
        PointField::Scale => Cell::I32(match p {
            Point::Exponential(h) => h.scale,
            _ => 0,
        }),
        PointField::ZeroCount => Cell::U64(match p {
            Point::Exponential(h) => h.zero_count,
            _ => 0,
        }),
        PointField::PositiveOffset => Cell::I32(match p {
            Point::Exponential(h) => h.positive.as_ref().map_or(0, |b| b.offset),
            _ => 0,
        }),
        PointField::PositiveBucketCounts => Cell::ArrU64(match p {
            Point::Exponential(h) => h.positive.as_ref().map_or(&[][..], |b| &b.bucket_counts),
            _ => &[],
        }),
        PointField::NegativeOffset => Cell::I32(match p {
            Point::Exponential(h) => h.negative.as_ref().map_or(0, |b| b.offset),
            _ => 0,
        }),
        PointField::NegativeBucketCounts => Cell::ArrU64(match p {
            Point::Exponential(h) => h.negative.as_ref().map_or(&[][..], |b| &b.bucket_counts),
            _ => &[],
        }),
        PointField::ValueAtQuantiles => Cell::Quantiles(match p {
            Point::Summary(s) => &s.quantile_values,
            _ => &[],
        }),
    }
}

fn exemplar_value(e: &Exemplar) -> f64 {
    match e.value {
        Some(exemplar::Value::AsDouble(d)) => d,
        Some(exemplar::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

/// The collector's names for span kinds.
fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "Internal",
        2 => "Server",
        3 => "Client",
        4 => "Producer",
        5 => "Consumer",
        _ => "Unspecified",
    }
}

fn status_code(s: &Span) -> &'static str {
    match s.status.as_ref().map_or(0, |st| st.code) {
        1 => "Ok",
        2 => "Error",
        _ => "Unset",
    }
}

/// `service.name` of a resource when it is a string; empty otherwise.
fn service_name(resource: Option<&Resource>) -> &[u8] {
    weir_pipeline::attrs::service_name(resource).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipeline::fixtures;

    #[test]
    fn one_row_per_record_and_portable_is_longer_by_the_split_columns() {
        let logs = fixtures::resource_logs(2, 3);
        let mut e = Encoder::default();
        let (mut modern, mut portable) = (Vec::new(), Vec::new());
        assert_eq!(e.logs(&logs, Layout::Modern, &mut modern), 6);
        assert_eq!(e.logs(&logs, Layout::Portable, &mut portable), 6);
        // Portable adds a 4-byte DateTime per row and a second count varint per attribute column.
        assert_eq!(portable.len(), modern.len() + 6 * (4 + 3));
    }

    #[test]
    fn first_row_bytes_start_with_timestamp_and_hex_trace_id() {
        let logs = fixtures::resource_logs(1, 1);
        let mut out = Vec::new();
        Encoder::default().logs(&logs, Layout::Modern, &mut out);
        let r = &logs[0].scope_logs[0].log_records[0];
        assert_eq!(&out[..8], &(r.time_unix_nano as i64).to_le_bytes());
        assert_eq!(out[8], 32);
        assert_eq!(&out[9..41], hex_lower(&r.trace_id).as_bytes());
    }

    fn hex_lower(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
