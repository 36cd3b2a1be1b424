//! What one log record holds. Usually the request as it arrived (flag `RAW`): protobuf or OTLP/JSON,
//! kept compressed if it came gzip- or zstd-compressed, zstd-compressed here otherwise, with the tenant
//! it was stamped with in the record's metadata — so the log costs no re-encoding, and nothing at all
//! for a zstd client. Replaying a raw record runs the intake's checks again (they are deterministic),
//! so what comes back is exactly what was acknowledged. Without `RAW` the payload is an accepted batch
//! re-encoded ([`weir_pipeline::wal::payload`]).

use crate::decode::{self, Format};
use crate::tenant::Stamp;
use crate::wire::Wire;
use bytes::Bytes;
use weir_pipeline::wal::{payload, Record};
use weir_pipeline::Batch;

/// The request as received.
pub const RAW: u16 = 1 << 8;
/// A raw request in OTLP/JSON (protobuf otherwise).
const JSON: u16 = 1 << 9;
/// A raw request gzip-compressed as it arrived.
const GZIP: u16 = 1 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    None,
    Gzip,
    Zstd,
}

impl Encoding {
    /// From `Content-Encoding`; bodies with other encodings were refused before this.
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("gzip" | "x-gzip") => Encoding::Gzip,
            Some("zstd") => Encoding::Zstd,
            _ => Encoding::None,
        }
    }
}

/// A request body as received, for the log.
pub struct Raw {
    pub body: Bytes,
    pub format: Format,
    pub encoding: Encoding,
}

/// Payload, flags and metadata of the record for `raw`, with the tenant stamp the intake applied.
pub fn encode_raw(raw: Raw, tenant: Stamp<'_>, compress: bool) -> (Bytes, u16, Vec<u8>) {
    let mut flags = RAW;
    if raw.format == Format::Json {
        flags |= JSON;
    }
    let body = match raw.encoding {
        Encoding::Zstd => {
            flags |= payload::ZSTD;
            raw.body
        }
        Encoding::Gzip => {
            flags |= GZIP;
            raw.body
        }
        Encoding::None => match compress.then(|| payload::zstd(&raw.body)).flatten() {
            Some(z) => {
                flags |= payload::ZSTD;
                z.into()
            }
            None => raw.body,
        },
    };
    let meta = tenant.to_meta();
    (body, flags, meta)
}

/// The batch a record stands for; `limit` bounds decompression.
pub fn decode<S: Wire>(r: Record, limit: usize) -> Result<Batch<S>, String> {
    if r.flags & RAW == 0 {
        return payload::decode(&r.payload, r.flags, limit).map_err(|e| e.to_string());
    }
    let encoding = if r.flags & payload::ZSTD != 0 {
        Some("zstd")
    } else if r.flags & GZIP != 0 {
        Some("gzip")
    } else {
        None
    };
    let body =
        decode::decompress(encoding, Bytes::from(r.payload), limit).map_err(|e| e.message())?;
    let format = if r.flags & JSON != 0 {
        Format::Json
    } else {
        Format::Protobuf
    };
    let (request, bytes) = weir_pipeline::memory::measured_or(body.len(), || {
        decode::request::<S>(format, &body, S::KIND.as_str())
    });
    let mut resources = S::into_resources(request.map_err(|e| e.message())?);
    S::drop_malformed(&mut resources);
    Stamp::from_meta(&String::from_utf8_lossy(&r.meta)).apply::<S>(&mut resources);
    Ok(Batch::received(resources, bytes, body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;
    use weir_pipeline::{fixtures, Logs};

    fn record(payload: Bytes, flags: u16, meta: Vec<u8>) -> Record {
        Record {
            seq: 1,
            ts_ms: 0,
            items: 0,
            flags,
            meta,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn raw_records_replay_as_the_intake_accepted_them() {
        let mut resources = fixtures::resource_logs(2, 3);
        // One record with a 3-byte trace id: the intake refused it, and so must the replay.
        resources[0].scope_logs[0].log_records[0].trace_id = vec![1, 2, 3];
        let req = ExportLogsServiceRequest {
            resource_logs: resources,
        };
        let proto = Bytes::from(req.encode_to_vec());
        let json = Bytes::from(serde_json::to_vec(&req).unwrap());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &proto).unwrap();
        let cases = [
            (proto.clone(), Format::Protobuf, Encoding::None, true),
            (proto.clone(), Format::Protobuf, Encoding::None, false),
            (json, Format::Json, Encoding::None, true),
            (
                Bytes::from(gz.finish().unwrap()),
                Format::Protobuf,
                Encoding::Gzip,
                true,
            ),
            (
                Bytes::from(zstd::encode_all(&proto[..], 1).unwrap()),
                Format::Protobuf,
                Encoding::Zstd,
                true,
            ),
        ];
        for (body, format, encoding, compress) in cases {
            let stored_as_received = encoding != Encoding::None;
            let (payload, flags, meta) = encode_raw(
                Raw {
                    body: body.clone(),
                    format,
                    encoding,
                },
                Stamp::Set("weir.tenant", "team-a"),
                compress,
            );
            if stored_as_received {
                assert_eq!(payload, body, "compressed bodies are stored as they came");
            }
            let batch: Batch<Logs> = decode(record(payload, flags, meta), 1 << 20).unwrap();
            assert_eq!(
                batch.items(),
                5,
                "{encoding:?} {format:?}: the malformed record is dropped again"
            );
            for r in &batch.resources {
                let attrs = &r.resource.as_ref().unwrap().attributes;
                assert!(
                    attrs.iter().any(|kv| kv.key == "weir.tenant"),
                    "tenant stamped again"
                );
            }
        }
    }
}
