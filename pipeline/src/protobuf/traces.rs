//! `ExportTraceServiceRequest` from protobuf.

use super::common::{key_value, once, repeated, request, resource_group, scope_group, Group};
use super::reader::{Fallback, Fast, Reader, I32, I64, LEN, VARINT};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub(crate) fn decode(buf: &[u8]) -> Fast<ExportTraceServiceRequest> {
    let resource_spans = request(buf, resource_spans)?;
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn resource_spans(buf: &[u8], r: &mut ResourceSpans) -> Fast<()> {
    let g = Group {
        about: &mut r.resource,
        children: &mut r.scope_spans,
        schema_url: &mut r.schema_url,
    };
    resource_group(buf, g, scope_spans)
}

fn scope_spans(buf: &[u8], s: &mut ScopeSpans) -> Fast<()> {
    let g = Group {
        about: &mut s.scope,
        children: &mut s.spans,
        schema_url: &mut s.schema_url,
    };
    scope_group(buf, g, span)
}

fn span(buf: &[u8], span: &mut Span) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes, n_events, n_links] = r.count([9, 11, 13])?;
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => span.trace_id = r.vec()?,
            (2, LEN) => span.span_id = r.vec()?,
            (3, LEN) => span.trace_state = r.string()?,
            (4, LEN) => span.parent_span_id = r.vec()?,
            (5, LEN) => span.name = r.string()?,
            (6, VARINT) => span.kind = r.varint()? as i32,
            (7, I64) => span.start_time_unix_nano = r.fixed64()?,
            (8, I64) => span.end_time_unix_nano = r.fixed64()?,
            (9, LEN) => repeated(&mut span.attributes, n_attributes, r.bytes()?, key_value)?,
            (10, VARINT) => span.dropped_attributes_count = r.varint()? as u32,
            (11, LEN) => repeated(&mut span.events, n_events, r.bytes()?, event)?,
            (12, VARINT) => span.dropped_events_count = r.varint()? as u32,
            (13, LEN) => repeated(&mut span.links, n_links, r.bytes()?, link)?,
            (14, VARINT) => span.dropped_links_count = r.varint()? as u32,
            (15, LEN) => once(&mut span.status, r.bytes()?, status)?,
            (16, I32) => span.flags = r.fixed32()?,
            (1..=16, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn event(buf: &[u8], event: &mut Event) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes] = r.count([3])?;
    while !r.is_empty() {
        match r.key()? {
            (1, I64) => event.time_unix_nano = r.fixed64()?,
            (2, LEN) => event.name = r.string()?,
            (3, LEN) => repeated(&mut event.attributes, n_attributes, r.bytes()?, key_value)?,
            (4, VARINT) => event.dropped_attributes_count = r.varint()? as u32,
            (1..=4, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn link(buf: &[u8], link: &mut Link) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes] = r.count([4])?;
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => link.trace_id = r.vec()?,
            (2, LEN) => link.span_id = r.vec()?,
            (3, LEN) => link.trace_state = r.string()?,
            (4, LEN) => repeated(&mut link.attributes, n_attributes, r.bytes()?, key_value)?,
            (5, VARINT) => link.dropped_attributes_count = r.varint()? as u32,
            (6, I32) => link.flags = r.fixed32()?,
            (1..=6, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn status(buf: &[u8], status: &mut Status) -> Fast<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (2, LEN) => status.message = r.string()?,
            (3, VARINT) => status.code = r.varint()? as i32,
            (2..=3, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}
