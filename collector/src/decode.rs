//! Turning an OTLP/HTTP body into a request: content type, content encoding, size limits.
//!
//! Decompression reads through a `take(limit + 1)` guard, so a compression bomb costs at most the
//! configured decompressed size in memory before it is refused.

use std::io::Read;
use weir_pipeline::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Protobuf,
    Json,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// Why a body was refused; each maps to one HTTP status and one metric reason.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    UnsupportedMediaType(String),
    UnsupportedEncoding(String),
    TooLarge(usize),
    Malformed(String),
}

impl BodyError {
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::UnsupportedMediaType(_) => "unsupported_media_type",
            BodyError::UnsupportedEncoding(_) => "unsupported_encoding",
            BodyError::TooLarge(_) => "too_large",
            BodyError::Malformed(_) => "malformed",
        }
    }

    pub fn message(&self) -> String {
        match self {
            BodyError::UnsupportedMediaType(t) => format!(
                "unsupported Content-Type {t:?}: use application/x-protobuf or application/json"
            ),
            BodyError::UnsupportedEncoding(e) => {
                format!("unsupported Content-Encoding {e:?}: use gzip, zstd or none")
            }
            BodyError::TooLarge(limit) => {
                format!("request body exceeds the limit of {limit} bytes")
            }
            BodyError::Malformed(m) => m.clone(),
        }
    }
}

/// The request format from `Content-Type`, ignoring parameters such as `charset`.
pub fn format(content_type: Option<&str>) -> Result<Format, BodyError> {
    let raw = content_type.unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(BodyError::UnsupportedMediaType(raw.to_string())),
    }
}

/// Decompresses per `Content-Encoding`, refusing output beyond `max_decompressed` bytes.
pub fn decompress(
    encoding: Option<&str>,
    body: bytes::Bytes,
    max_decompressed: usize,
) -> Result<bytes::Bytes, BodyError> {
    let enc = encoding.unwrap_or("").trim().to_ascii_lowercase();
    match enc.as_str() {
        "" | "identity" => {
            if body.len() > max_decompressed {
                return Err(BodyError::TooLarge(max_decompressed));
            }
            Ok(body)
        }
        "gzip" | "x-gzip" => read_bounded(
            flate2::read::MultiGzDecoder::new(&body[..]),
            max_decompressed,
            "gzip",
        ),
        "zstd" => {
            let decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| BodyError::Malformed(format!("invalid zstd body: {e}")))?;
            read_bounded(decoder, max_decompressed, "zstd")
        }
        other => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

fn read_bounded(reader: impl Read, limit: usize, what: &str) -> Result<bytes::Bytes, BodyError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::Malformed(format!("invalid {what} body: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge(limit));
    }
    Ok(out.into())
}

/// Decodes an export request; returns it with its size (the decompressed body length).
pub fn request<S: Signal>(
    format: Format,
    body: &[u8],
    signal: &str,
) -> Result<S::Request, BodyError> {
    match format {
        Format::Protobuf => S::decode(body)
            .map_err(|e| BodyError::Malformed(format!("malformed OTLP {signal} protobuf: {e}"))),
        // Decoded JSON dies with its batch just as protobuf does: same arena.
        Format::Json => weir_pipeline::memory::arena::scope(|| serde_json::from_slice(body))
            .map_err(|e| {
                BodyError::Malformed(format!("malformed OTLP/JSON {signal} request: {e}"))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use weir_pipeline::{Logs, Traces};

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(
            format(Some("application/json; charset=utf-8")),
            Ok(Format::Json)
        );
        assert_eq!(format(Some("application/x-protobuf")), Ok(Format::Protobuf));
        assert!(matches!(
            format(Some("text/plain")),
            Err(BodyError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            format(None),
            Err(BodyError::UnsupportedMediaType(_))
        ));
    }

    fn gzip(data: &[u8]) -> bytes::Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn gzip_and_zstd_bombs_stop_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let g = gzip(&zeros);
        assert!(g.len() < 64 * 1024);
        assert_eq!(
            decompress(Some("gzip"), g.clone(), 1 << 20),
            Err(BodyError::TooLarge(1 << 20))
        );
        assert_eq!(
            decompress(Some("gzip"), g, 10 << 20).unwrap().len(),
            10 << 20
        );
        let z: bytes::Bytes = zstd::encode_all(&zeros[..], 3).unwrap().into();
        assert_eq!(
            decompress(Some("zstd"), z, 1 << 20),
            Err(BodyError::TooLarge(1 << 20))
        );
    }

    #[test]
    fn corrupt_compressed_bodies_are_malformed() {
        let bad: bytes::Bytes = b"not gzip at all".to_vec().into();
        assert!(matches!(
            decompress(Some("gzip"), bad.clone(), 1 << 20),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            decompress(Some("zstd"), bad.clone(), 1 << 20),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            decompress(Some("br"), bad, 1 << 20),
            Err(BodyError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn otlp_json_uses_hex_ids_and_string_int64() {
        let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
          "name":"op","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
          "attributes":[{"key":"n","value":{"intValue":"42"}}],"unknownField":true}]}]}]}"#;
        let r = request::<Traces>(Format::Json, json, "traces").unwrap();
        let span = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    }

    #[test]
    fn garbage_and_invalid_utf8_are_malformed_with_a_reason() {
        let e = request::<Logs>(Format::Protobuf, &[0xff, 0xff, 0xff], "logs").unwrap_err();
        assert!(
            e.message().contains("malformed OTLP logs protobuf"),
            "{e:?}"
        );
        // Field 1 (resource_logs) → field 2 (scope_logs) → field 2 (log_records) → severity_text (3) = 0xC3 0x28.
        let bad_utf8 = [0x0a, 0x08, 0x12, 0x06, 0x12, 0x04, 0x1a, 0x02, 0xc3, 0x28];
        let e = request::<Logs>(Format::Protobuf, &bad_utf8, "logs").unwrap_err();
        assert!(matches!(e, BodyError::Malformed(_)), "{e:?}");
        let e = request::<Logs>(Format::Json, b"{\"resourceLogs\": [", "logs").unwrap_err();
        assert!(e.message().contains("OTLP/JSON"), "{e:?}");
    }
}
