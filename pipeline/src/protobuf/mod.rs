//! Decoding OTLP logs and traces requests from protobuf, faster than prost's generated code and into
//! the same types.
//!
//! Decoding is most of what a collector spends per item. prost grows every repeated field by pushing
//! (a log record's attributes are reallocated and copied three or four times) and goes through a
//! generic `Buf` for every varint. These decoders read one contiguous slice, count each repeated field
//! ahead so every vector is allocated once at its final size, and decode fields with a match on
//! number and wire type.
//!
//! They are not a second protobuf implementation to trust: anything they do not decode exactly as
//! prost would (malformed input, groups, a singular message sent twice, which prost would merge,
//! values nested too deep) makes them step aside, and prost decodes the whole request instead. What
//! they do decode is checked against prost, byte for byte, by the tests here and a fuzz target.

mod common;
mod logs;
mod reader;
#[cfg(test)]
mod tests;
mod traces;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// An OTLP logs request, as `prost::Message::decode` would return it.
pub fn logs(buf: &[u8]) -> Result<ExportLogsServiceRequest, prost::DecodeError> {
    logs::decode(buf).or_else(|_| prost::Message::decode(buf))
}

/// An OTLP traces request, as `prost::Message::decode` would return it.
pub fn traces(buf: &[u8]) -> Result<ExportTraceServiceRequest, prost::DecodeError> {
    traces::decode(buf).or_else(|_| prost::Message::decode(buf))
}
