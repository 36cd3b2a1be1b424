//! `ExportLogsServiceRequest` from protobuf.

use super::common::{
    any_value, key_value, once, repeated, request, resource_group, scope_group, Group,
};
use super::reader::{Fallback, Fast, Reader, I32, I64, LEN, VARINT};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

pub(crate) fn decode(buf: &[u8]) -> Fast<ExportLogsServiceRequest> {
    let resource_logs = request(buf, resource_logs)?;
    Ok(ExportLogsServiceRequest { resource_logs })
}

fn resource_logs(buf: &[u8], r: &mut ResourceLogs) -> Fast<()> {
    let g = Group {
        about: &mut r.resource,
        children: &mut r.scope_logs,
        schema_url: &mut r.schema_url,
    };
    resource_group(buf, g, scope_logs)
}

fn scope_logs(buf: &[u8], s: &mut ScopeLogs) -> Fast<()> {
    let g = Group {
        about: &mut s.scope,
        children: &mut s.log_records,
        schema_url: &mut s.schema_url,
    };
    scope_group(buf, g, log_record)
}

fn log_record(buf: &[u8], record: &mut LogRecord) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes] = r.count([6])?;
    while !r.is_empty() {
        match r.key()? {
            (1, I64) => record.time_unix_nano = r.fixed64()?,
            (2, VARINT) => record.severity_number = r.varint()? as i32,
            (3, LEN) => record.severity_text = r.string()?,
            (5, LEN) => once(&mut record.body, r.bytes()?, any_value)?,
            (6, LEN) => repeated(&mut record.attributes, n_attributes, r.bytes()?, key_value)?,
            (7, VARINT) => record.dropped_attributes_count = r.varint()? as u32,
            (8, I32) => record.flags = r.fixed32()?,
            (9, LEN) => record.trace_id = r.vec()?,
            (10, LEN) => record.span_id = r.vec()?,
            (11, I64) => record.observed_time_unix_nano = r.fixed64()?,
            (12, LEN) => record.event_name = r.string()?,
            (1..=3 | 5..=12, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}
