//! OTLP values as text, as the OpenTelemetry Collector's exporters write them: strings as they are,
//! ints and doubles in their shortest form, bools as `true`/`false`, bytes as base64, arrays and maps
//! as compact JSON. Shared by the ClickHouse columns and Loki's lines and metadata.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use std::fmt::Write as _;

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

pub fn json_string(s: &str, out: &mut String) -> std::fmt::Result {
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

pub fn base64(bytes: &[u8], out: &mut String) {
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
