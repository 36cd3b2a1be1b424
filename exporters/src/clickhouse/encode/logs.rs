//! Log records → `otel_logs` rows: one row per record, its time falling back to the observed time.

use super::{service_name, Encoder, Field};
use crate::clickhouse::columns::{Column, LogField, LOG_COLUMNS};
use crate::clickhouse::Layout;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;

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
}

#[inline]
fn log_cell<'a>(
    c: &Column<LogField>,
    rl: &'a ResourceLogs,
    resource: Option<&'a Resource>,
    service: &'a [u8],
    scope: Option<&'a InstrumentationScope>,
    scope_schema: &'a str,
    r: &'a LogRecord,
) -> Field<'a> {
    const NONE: &[KeyValue] = &[];
    match c.field {
        LogField::Timestamp => Field::Time(if r.time_unix_nano != 0 {
            r.time_unix_nano
        } else {
            r.observed_time_unix_nano
        }),
        LogField::TraceId => Field::Id(&r.trace_id),
        LogField::SpanId => Field::Id(&r.span_id),
        LogField::TraceFlags => Field::U8((r.flags & 0xff) as u8),
        LogField::SeverityText => Field::Bytes(r.severity_text.as_bytes()),
        LogField::SeverityNumber => Field::U8(r.severity_number.clamp(0, 255) as u8),
        LogField::ServiceName => Field::Bytes(service),
        LogField::Body => Field::Any(r.body.as_ref()),
        LogField::ResourceSchemaUrl => Field::Bytes(rl.schema_url.as_bytes()),
        LogField::ResourceAttributes => Field::Attrs(resource.map_or(NONE, |r| &r.attributes)),
        LogField::ScopeSchemaUrl => Field::Bytes(scope_schema.as_bytes()),
        LogField::ScopeName => Field::Bytes(scope.map_or(&[][..], |s| s.name.as_bytes())),
        LogField::ScopeVersion => Field::Bytes(scope.map_or(&[][..], |s| s.version.as_bytes())),
        LogField::ScopeAttributes => Field::Attrs(scope.map_or(NONE, |s| &s.attributes)),
        LogField::LogAttributes => Field::Attrs(&r.attributes),
    }
}
