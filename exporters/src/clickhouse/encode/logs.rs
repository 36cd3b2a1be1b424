//! Log records → `otel_logs` rows: one row per record, its time falling back to the observed time.

use super::{service_name, Cell, Encoder};
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
