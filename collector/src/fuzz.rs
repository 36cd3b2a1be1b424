//! Fuzzing the intake's parsers with proptest: whatever bytes arrive (raw, mutated from valid requests,
//! or as compressed bodies) decoding answers with a value or an error, never a panic, and never
//! allocates beyond the configured limits. Case counts scale with `WEIR_FUZZ_CASES`.

use crate::decode::{decompress, request, BodyError, Format};
use crate::wire::Wire;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use proptest::prelude::*;
use weir_pipeline::{fixtures, Logs, Metrics, Traces};

const LIMIT: usize = 1 << 20;

fn cases() -> u32 {
    std::env::var("WEIR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Decodes `body` both ways as signal `S`, and runs the intake's malformed-id filter on what decodes.
fn decode_all<S: Wire>(body: &[u8]) {
    for format in [Format::Protobuf, Format::Json] {
        if let Ok(req) = request::<S>(format, body, "fuzz") {
            let mut resources = S::into_resources(req);
            let _ = S::drop_malformed(&mut resources);
        }
    }
}

fn valid_bodies() -> Vec<Vec<u8>> {
    use prost::Message;
    let traces = ExportTraceServiceRequest {
        resource_spans: fixtures::resource_spans(2, 3),
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: fixtures::resource_logs(2, 3),
    };
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: fixtures::resource_metrics(1, 2),
    };
    vec![
        traces.encode_to_vec(),
        logs.encode_to_vec(),
        metrics.encode_to_vec(),
        serde_json::to_vec(&traces).unwrap(),
        serde_json::to_vec(&logs).unwrap(),
        serde_json::to_vec(&metrics).unwrap(),
    ]
}

/// A valid request with bytes flipped, cut, or spliced in.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..6usize,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(which, flips, cut, splice)| {
            let mut b = valid_bodies().swap_remove(which);
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            let at = cut.index(b.len() + 1);
            b.truncate(at.max(b.len() * 3 / 4));
            let at = cut.index(b.len() + 1);
            b.splice(at..at, splice);
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_all::<Traces>(&body);
        decode_all::<Logs>(&body);
        decode_all::<Metrics>(&body);
    }

    #[test]
    fn mutated_requests_never_panic(body in mutated()) {
        decode_all::<Traces>(&body);
        decode_all::<Logs>(&body);
        decode_all::<Metrics>(&body);
    }

    #[test]
    fn compressed_garbage_is_refused_within_the_limit(
        body in prop::collection::vec(any::<u8>(), 0..512),
        gzip_header in any::<bool>(),
        encoding in prop::sample::select(vec!["gzip", "zstd", "identity", "br"]),
    ) {
        let mut body = body;
        if gzip_header {
            // Gets past the magic check into the inflater proper.
            body.splice(0..0, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        }
        match decompress(Some(encoding), body.into(), LIMIT) {
            Ok(out) => prop_assert!(out.len() <= LIMIT),
            Err(BodyError::TooLarge(l)) => prop_assert_eq!(l, LIMIT),
            Err(_) => {}
        }
    }

    #[test]
    fn json_shaped_input_never_panics(s in r#"\{("[a-zA-Z]{1,12}":(\[|\{|"[0-9a-fA-F]{0,40}"|-?[0-9]{1,25}|true|null|\]|\}|,)){0,30}"#) {
        decode_all::<Traces>(s.as_bytes());
        decode_all::<Logs>(s.as_bytes());
        decode_all::<Metrics>(s.as_bytes());
    }
}

#[test]
fn fixtures_decode_so_the_mutations_start_from_valid_requests() {
    for (i, b) in valid_bodies().iter().enumerate() {
        let format = if i < 3 {
            Format::Protobuf
        } else {
            Format::Json
        };
        let ok = match i % 3 {
            0 => request::<Traces>(format, b, "t").is_ok(),
            1 => request::<Logs>(format, b, "l").is_ok(),
            _ => request::<Metrics>(format, b, "m").is_ok(),
        };
        assert!(ok, "body {i}");
    }
}
