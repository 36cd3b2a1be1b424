//! RowBinary primitives (little-endian numbers, LEB128-prefixed strings and arrays) and the text form of
//! OTLP values that the OpenTelemetry Collector's ClickHouse tables store.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::fmt::Write as _;

pub fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub fn u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lowercase hex of an id, as a RowBinary string; empty ids stay empty.
pub fn hex_id(out: &mut Vec<u8>, id: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    varint(out, (id.len() * 2) as u64);
    for b in id {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

/// Writes `value` as the collector's text form into `scratch` (cleared first) and returns it; string
/// values are borrowed instead, so the common case copies once, straight into the row.
pub fn value_text<'a>(value: Option<&'a AnyValue>, scratch: &'a mut String) -> &'a str {
    scratch.clear();
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s,
        None => "",
        Some(other) => {
            write_text(other, scratch);
            scratch
        }
    }
}

fn write_text(v: &Value, out: &mut String) {
    match v {
        Value::StringValue(s) => out.push_str(s),
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::DoubleValue(d) => write_double(*d, out),
        Value::BytesValue(b) => base64(b, out),
        Value::ArrayValue(_) | Value::KvlistValue(_) => {
            let _ = serde_json_text(v, out);
        }
        // Interned string-table references are resolved by the sender; none arrive in OTLP exports.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{d}");
    }
}

/// Arrays and maps become compact JSON of their raw values (ints as numbers, bytes as base64).
fn serde_json_text(v: &Value, out: &mut String) -> std::fmt::Result {
    match v {
        Value::StringValue(s) => json_string(s, out),
        Value::BoolValue(b) => out.write_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => write!(out, "{i}"),
        Value::DoubleValue(d) if d.is_finite() => write!(out, "{d}"),
        Value::DoubleValue(d) => {
            let mut s = String::new();
            write_double(*d, &mut s);
            json_string(&s, out)
        }
        Value::BytesValue(b) => {
            let mut s = String::new();
            base64(b, &mut s);
            json_string(&s, out)
        }
        Value::ArrayValue(a) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_any(Some(item), out)?;
            }
            out.push(']');
            Ok(())
        }
        Value::KvlistValue(kv) => {
            out.push('{');
            for (i, KeyValue { key, value, .. }) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(key, out)?;
                out.push(':');
                json_any(value.as_ref(), out)?;
            }
            out.push('}');
            Ok(())
        }
        #[allow(unreachable_patterns)]
        _ => out.write_str("null"),
    }
}

fn json_any(v: Option<&AnyValue>, out: &mut String) -> std::fmt::Result {
    match v.and_then(|v| v.value.as_ref()) {
        Some(v) => serde_json_text(v, out),
        None => out.write_str("null"),
    }
}

fn json_string(s: &str, out: &mut String) -> std::fmt::Result {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32)?,
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(())
}

fn base64(bytes: &[u8], out: &mut String) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    fn text(v: Value) -> String {
        let mut s = String::new();
        value_text(Some(&any(v)), &mut s).to_string()
    }

    #[test]
    fn varint_and_string_match_the_wire_format() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        string(&mut out, b"hi");
        assert_eq!(out, [2, b'h', b'i']);
        out.clear();
        hex_id(&mut out, &[0xab, 0x01]);
        assert_eq!(out, [4, b'a', b'b', b'0', b'1']);
    }

    #[test]
    fn values_stringify_like_the_collector() {
        assert_eq!(text(Value::IntValue(-42)), "-42");
        assert_eq!(text(Value::DoubleValue(0.5)), "0.5");
        assert_eq!(text(Value::DoubleValue(1e21)), "1000000000000000000000");
        assert_eq!(text(Value::BoolValue(true)), "true");
        assert_eq!(text(Value::BytesValue(b"hello".to_vec())), "aGVsbG8=");
        let arr = Value::ArrayValue(ArrayValue {
            values: vec![
                any(Value::IntValue(1)),
                any(Value::StringValue("a\"b".into())),
            ],
        });
        assert_eq!(text(arr), r#"[1,"a\"b"]"#);
        let map = Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(any(Value::BoolValue(false))),
                ..Default::default()
            }],
        });
        assert_eq!(text(map), r#"{"k":false}"#);
        let mut s = String::new();
        assert_eq!(value_text(None, &mut s), "");
    }
}
