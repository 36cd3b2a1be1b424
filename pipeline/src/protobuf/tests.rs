//! The fast decoders against prost: what they decode must be what prost decodes, and whatever they
//! do not take must still come out as prost has it.

use super::reader::Fallback;
use crate::fixtures;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Status;
use proptest::prelude::*;
use prost::Message;

fn value(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn attr(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value(v),
        key_strindex: 0,
    }
}

/// Every field of every message the decoders know, every value kind, nesting, empties and NaN.
fn every_kind() -> Vec<KeyValue> {
    let nested = Value::KvlistValue(KeyValueList {
        values: vec![
            attr(
                "inner",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(-1)),
                        },
                        AnyValue { value: None },
                        AnyValue {
                            value: Some(Value::StringValue("ü€".into())),
                        },
                    ],
                }),
            ),
            KeyValue {
                key: "no value".into(),
                value: None,
                key_strindex: 7,
            },
        ],
    });
    vec![
        attr("s", Value::StringValue("value".into())),
        attr("empty", Value::StringValue(String::new())),
        attr("b", Value::BoolValue(true)),
        attr("i", Value::IntValue(i64::MIN)),
        attr("d", Value::DoubleValue(f64::NAN)),
        attr("bytes", Value::BytesValue(vec![0, 255, 1])),
        attr("idx", Value::StringValueStrindex(-3)),
        attr("nested", nested),
        attr("empty array", Value::ArrayValue(ArrayValue::default())),
    ]
}

fn full_logs() -> ExportLogsServiceRequest {
    let mut resource_logs = fixtures::resource_logs(2, 3);
    let r = &mut resource_logs[0];
    let resource = r.resource.get_or_insert_with(Default::default);
    resource.dropped_attributes_count = u32::MAX;
    resource.entity_refs.push(EntityRef {
        schema_url: "https://schema".into(),
        r#type: "service".into(),
        id_keys: vec!["service.name".into(), "service.namespace".into()],
        description_keys: vec!["service.version".into()],
    });
    r.schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
    let scope = &mut r.scope_logs[0];
    scope.scope = Some(InstrumentationScope {
        name: "lib".into(),
        version: "1.2".into(),
        attributes: every_kind(),
        dropped_attributes_count: 2,
    });
    scope.schema_url = "s".into();
    let record = &mut scope.log_records[0];
    record.attributes.extend(every_kind());
    record.body = value(Value::KvlistValue(KeyValueList {
        values: every_kind(),
    }));
    record.severity_number = -5;
    record.severity_text = "WARN".into();
    record.dropped_attributes_count = 9;
    record.flags = u32::MAX;
    record.observed_time_unix_nano = u64::MAX;
    record.event_name = "event".into();
    // An empty body is still a body.
    scope.log_records[1].body = Some(AnyValue::default());
    ExportLogsServiceRequest { resource_logs }
}

fn full_traces() -> ExportTraceServiceRequest {
    let mut resource_spans = fixtures::resource_spans(2, 3);
    let span = &mut resource_spans[1].scope_spans[0].spans[0];
    span.attributes.extend(every_kind());
    span.trace_state = "w3c=1".into();
    span.kind = 3;
    span.flags = 0x301;
    span.dropped_attributes_count = 1;
    span.dropped_events_count = 2;
    span.dropped_links_count = 3;
    span.events = vec![
        Event {
            time_unix_nano: 5,
            name: "exception".into(),
            attributes: every_kind(),
            dropped_attributes_count: 4,
        },
        Event::default(),
    ];
    span.links = vec![Link {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        trace_state: "a=b".into(),
        attributes: every_kind(),
        dropped_attributes_count: 6,
        flags: 0x100,
    }];
    span.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    resource_spans[0].scope_spans[0].spans[1].status = Some(Status::default());
    ExportTraceServiceRequest { resource_spans }
}

/// Appends an unknown field of every wire type prost skips (varint, 64-bit, bytes, 32-bit).
fn with_unknown_fields(mut body: Vec<u8>) -> Vec<u8> {
    body.extend_from_slice(&[0xf8, 0x07, 0x96, 0x01]); // field 127, varint 150
    body.extend_from_slice(&[0xf9, 0x07, 1, 2, 3, 4, 5, 6, 7, 8]); // field 127, fixed64
    body.extend_from_slice(&[0xfa, 0x07, 2, 0xff, 0xfe]); // field 127, bytes (not UTF-8)
    body.extend_from_slice(&[0xfd, 0x07, 1, 2, 3, 4]); // field 127, fixed32
    body
}

/// Same outcome as prost: both refuse, or both decode to what encodes to the same bytes (NaN makes
/// `PartialEq` useless for the comparison).
fn same_as_prost<M: Message + Default>(ours: Result<M, prost::DecodeError>, body: &[u8]) {
    match (ours, M::decode(body)) {
        (Ok(a), Ok(b)) => assert_eq!(a.encode_to_vec(), b.encode_to_vec()),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("ours {:?}, prost {:?}", a.is_ok(), b.is_ok()),
    }
}

#[test]
fn the_fast_path_takes_every_field_and_value_kind() {
    let logs = full_logs().encode_to_vec();
    let fast = super::logs::decode(&logs).expect("fast path");
    assert_eq!(fast.encode_to_vec(), logs);
    let traces = full_traces().encode_to_vec();
    let fast = super::traces::decode(&traces).expect("fast path");
    assert_eq!(fast.encode_to_vec(), traces);
}

#[test]
fn repeated_fields_are_allocated_once_at_their_size() {
    let body = full_logs().encode_to_vec();
    let fast = super::logs::decode(&body).unwrap();
    for r in &fast.resource_logs {
        assert_eq!(r.scope_logs.capacity(), r.scope_logs.len());
        for s in &r.scope_logs {
            assert_eq!(s.log_records.capacity(), s.log_records.len());
            for l in &s.log_records {
                assert_eq!(l.attributes.capacity(), l.attributes.len());
            }
        }
    }
}

#[test]
fn unknown_fields_are_skipped_as_prost_skips_them() {
    let body = with_unknown_fields(full_logs().encode_to_vec());
    let fast = super::logs::decode(&body).expect("fast path");
    assert_eq!(fast.encode_to_vec(), full_logs().encode_to_vec());
    let body = with_unknown_fields(full_traces().encode_to_vec());
    assert!(super::traces::decode(&body).is_ok());
    same_as_prost(super::traces(&body), &body);
}

#[test]
fn what_prost_would_merge_or_refuse_is_left_to_prost() {
    // A resource sent twice: prost merges the two; the fast path steps aside.
    let one = ExportLogsServiceRequest {
        resource_logs: fixtures::resource_logs(1, 1),
    };
    let mut rl = one.resource_logs[0].encode_to_vec();
    let resource = one.resource_logs[0]
        .resource
        .as_ref()
        .unwrap()
        .encode_to_vec();
    rl.push(0x0a);
    prost::encoding::encode_varint(resource.len() as u64, &mut rl);
    rl.extend_from_slice(&resource);
    let mut body = vec![0x0a];
    prost::encoding::encode_varint(rl.len() as u64, &mut body);
    body.extend_from_slice(&rl);
    assert_eq!(super::logs::decode(&body).err(), Some(Fallback));
    let merged = super::logs(&body).unwrap();
    assert_eq!(
        merged.resource_logs[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .len(),
        2 * one.resource_logs[0]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .len()
    );
    same_as_prost(super::logs(&body), &body);

    // A group (wire type 3/4) as an unknown field: prost skips it.
    let mut grouped = full_logs().encode_to_vec();
    grouped.extend_from_slice(&[0xfb, 0x07, 0x08, 0x01, 0xfc, 0x07]); // field 127 group { 1: 1 }
    assert_eq!(super::logs::decode(&grouped).err(), Some(Fallback));
    same_as_prost(super::logs(&grouped), &grouped);

    // Invalid UTF-8 in a string: prost refuses, with its own message.
    let bad = [0x0a, 0x05, 0x1a, 0x03, 0xff, 0xfe, 0xfd];
    assert!(super::logs(&bad).is_err());
    same_as_prost(super::logs(&bad), &bad);

    // A known field with the wrong wire type.
    let wrong = [0x09, 1, 2, 3, 4, 5, 6, 7, 8];
    same_as_prost(super::logs(&wrong), &wrong);
    same_as_prost(super::traces(&wrong), &wrong);
}

#[test]
fn values_nested_deeper_than_the_fast_path_goes_are_prost_s() {
    let mut v = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 0..40 {
        v = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    let mut logs = ExportLogsServiceRequest {
        resource_logs: fixtures::resource_logs(1, 1),
    };
    logs.resource_logs[0].scope_logs[0].log_records[0].body = Some(v);
    let body = logs.encode_to_vec();
    assert_eq!(super::logs::decode(&body).err(), Some(Fallback));
    same_as_prost(super::logs(&body), &body);
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..8usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if body.is_empty() {
            break;
        }
        let n = body.len();
        match m {
            Mutation::Flip(i, b) => body[i % n] ^= b | 1,
            Mutation::Truncate(i) => body.truncate(i % n),
            Mutation::Insert(i, bytes) => {
                let at = i % n;
                body.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(i, k) => {
                let at = i % n;
                body.drain(at..(at + k).min(n));
            }
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn mutated_bodies_decode_as_prost_decodes_them(
        traces in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let base = if traces { full_traces().encode_to_vec() } else { full_logs().encode_to_vec() };
        let body = mutate(base, &mutations);
        if traces {
            same_as_prost(super::traces(&body), &body);
        } else {
            same_as_prost(super::logs(&body), &body);
        }
    }

    #[test]
    fn random_bytes_decode_as_prost_decodes_them(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        same_as_prost(super::logs(&body), &body);
        same_as_prost(super::traces(&body), &body);
    }
}

/// One field as raw wire bytes: any number, any of the four wire types prost reads, any payload —
/// so known fields arrive with the wrong wire type, singular ones arrive twice, and so on.
fn raw_field() -> impl Strategy<Value = Vec<u8>> {
    let payload = prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..12),
        // A valid AnyValue, KeyValue and Status, so a duplicated message field decodes and merges.
        Just(
            AnyValue {
                value: Some(Value::StringValue("dup".into()))
            }
            .encode_to_vec()
        ),
        Just(attr("k", Value::IntValue(1)).encode_to_vec()),
        Just(
            ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::IntValue(2))
                }]
            }
            .encode_to_vec()
        ),
    ];
    (
        1u32..=20,
        prop_oneof![Just(0u8), Just(1), Just(2), Just(5)],
        any::<u64>(),
        payload,
    )
        .prop_map(|(field, wire, number, payload)| {
            let mut out = Vec::new();
            prost::encoding::encode_varint(u64::from(field << 3 | u32::from(wire)), &mut out);
            match wire {
                0 => prost::encoding::encode_varint(number, &mut out),
                1 => out.extend_from_slice(&number.to_le_bytes()),
                5 => out.extend_from_slice(&(number as u32).to_le_bytes()),
                _ => {
                    prost::encoding::encode_varint(payload.len() as u64, &mut out);
                    out.extend_from_slice(&payload);
                }
            }
            out
        })
}

fn wrap(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(field << 3 | 2), &mut out);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A raw field inserted at each level of a logs request (`extra[i]` at level i, outermost first:
/// request, resource logs, resource, scope logs, scope, record, attribute, value).
fn logs_with(extra: &[Vec<u8>; 8]) -> Vec<u8> {
    let one = &fixtures::resource_logs(1, 1)[0];
    // An array, so that a second array in the same value is one prost merges into it.
    let array = ArrayValue {
        values: vec![AnyValue {
            value: Some(Value::StringValue("v".into())),
        }],
    };
    let value = cat(&[
        &AnyValue {
            value: Some(Value::ArrayValue(array)),
        }
        .encode_to_vec(),
        &extra[7],
    ]);
    let kv = cat(&[&wrap(1, b"key"), &wrap(2, &value), &extra[6]]);
    let record = cat(&[
        &extra[5],
        &one.scope_logs[0].log_records[0].encode_to_vec(),
        &wrap(6, &kv),
    ]);
    let scope = cat(&[
        &one.scope_logs[0]
            .scope
            .clone()
            .unwrap_or_default()
            .encode_to_vec(),
        &extra[4],
    ]);
    let scope_logs = cat(&[
        &wrap(1, &scope),
        &wrap(2, &record),
        &extra[3],
        &wrap(2, &record),
    ]);
    let resource = cat(&[&extra[2], &one.resource.clone().unwrap().encode_to_vec()]);
    let resource_logs = cat(&[&wrap(1, &resource), &extra[1], &wrap(2, &scope_logs)]);
    cat(&[&wrap(1, &resource_logs), &extra[0]])
}

/// The same for traces: request, resource spans, scope spans, span, event, link, status, attribute.
fn traces_with(extra: &[Vec<u8>; 8]) -> Vec<u8> {
    let one = &fixtures::resource_spans(1, 1)[0];
    let kv = cat(&[
        &attr("k", Value::BoolValue(true)).encode_to_vec(),
        &extra[7],
    ]);
    let event = cat(&[
        &Event {
            time_unix_nano: 1,
            name: "e".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        &extra[4],
        &wrap(3, &kv),
    ]);
    let link = cat(&[
        &extra[5],
        &Link {
            trace_id: vec![1; 16],
            ..Default::default()
        }
        .encode_to_vec(),
    ]);
    let status = cat(&[
        &Status {
            message: "m".into(),
            code: 1,
        }
        .encode_to_vec(),
        &extra[6],
    ]);
    let mut base = one.scope_spans[0].spans[0].clone();
    base.status = None;
    let span = cat(&[
        &base.encode_to_vec(),
        &extra[3],
        &wrap(11, &event),
        &wrap(13, &link),
        &wrap(15, &status),
        &wrap(9, &kv),
    ]);
    let scope_spans = cat(&[&wrap(2, &span), &extra[2]]);
    let resource_spans = cat(&[
        &wrap(1, &one.resource.clone().unwrap().encode_to_vec()),
        &wrap(2, &scope_spans),
        &extra[1],
    ]);
    cat(&[&extra[0], &wrap(1, &resource_spans)])
}

fn extras() -> impl Strategy<Value = [Vec<u8>; 8]> {
    let slot = prop_oneof![3 => Just(Vec::new()), 1 => raw_field()];
    [
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot.clone(),
        slot,
    ]
}

#[test]
fn without_extra_fields_the_fast_path_decodes_both() {
    let none: [Vec<u8>; 8] = Default::default();
    assert!(super::logs::decode(&logs_with(&none)).is_ok());
    assert!(super::traces::decode(&traces_with(&none)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_field_anywhere_decodes_as_prost_decodes_it(logs in extras(), traces in extras()) {
        let body = logs_with(&logs);
        same_as_prost(super::logs(&body), &body);
        let body = traces_with(&traces);
        same_as_prost(super::traces(&body), &body);
    }
}
