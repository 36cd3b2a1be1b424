//! Spans → `otel_traces` rows: one row per span, with the collector's names for kinds and status codes.

use super::{service_name, Encoder, Field};
use crate::clickhouse::columns::{Column, SpanField, SPAN_COLUMNS};
use crate::clickhouse::Layout;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

impl Encoder {
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
}

#[inline]
fn span_cell<'a>(
    c: &Column<SpanField>,
    resource: Option<&'a Resource>,
    service: &'a [u8],
    scope: Option<&'a InstrumentationScope>,
    s: &'a Span,
) -> Field<'a> {
    const NONE: &[KeyValue] = &[];
    match c.field {
        SpanField::Timestamp => Field::Time(s.start_time_unix_nano),
        SpanField::TraceId => Field::Id(&s.trace_id),
        SpanField::SpanId => Field::Id(&s.span_id),
        SpanField::ParentSpanId => Field::Id(&s.parent_span_id),
        SpanField::TraceState => Field::Bytes(s.trace_state.as_bytes()),
        SpanField::SpanName => Field::Bytes(s.name.as_bytes()),
        SpanField::SpanKind => Field::Bytes(span_kind(s.kind).as_bytes()),
        SpanField::ServiceName => Field::Bytes(service),
        SpanField::ResourceAttributes => Field::Attrs(resource.map_or(NONE, |r| &r.attributes)),
        SpanField::ScopeName => Field::Bytes(scope.map_or(&[][..], |s| s.name.as_bytes())),
        SpanField::ScopeVersion => Field::Bytes(scope.map_or(&[][..], |s| s.version.as_bytes())),
        SpanField::SpanAttributes => Field::Attrs(&s.attributes),
        SpanField::Duration => {
            Field::U64(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano))
        }
        SpanField::StatusCode => Field::Bytes(status_code(s).as_bytes()),
        SpanField::StatusMessage => Field::Bytes(
            s.status
                .as_ref()
                .map_or(&[][..], |st| st.message.as_bytes()),
        ),
        SpanField::Events => Field::Events(&s.events),
        SpanField::Links => Field::Links(&s.links),
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
