//! Attribute lookups and updates every part of Weir shares: a string attribute by key, a resource's
//! `service.name`, a scalar as text, and setting a key in place.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The value of `key` when it is a string.
pub fn string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| string_value(&kv.value))
}

/// The text of a value when it is a string.
pub fn string_value(v: &Option<AnyValue>) -> Option<&str> {
    match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// A resource's attributes; none without a resource.
pub fn of(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map_or(&[], |r| r.attributes.as_slice())
}

/// A string resource attribute, or `""`.
pub fn resource_string<'a>(resource: Option<&'a Resource>, key: &str) -> &'a str {
    string(of(resource), key).unwrap_or("")
}

/// `service.name` of a resource when it is a string, or `""`.
pub fn service_name(resource: Option<&Resource>) -> &str {
    resource_string(resource, "service.name")
}

/// A value as the text rules compare, mask or hash: strings as they are, numbers and booleans
/// printed, bytes as hex, arrays and maps in debug form.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::ArrayValue(_) | Value::KvlistValue(_) => format!("{v:?}"),
        _ => String::new(),
    }
}

/// Whether `key` holds `want`; a non-string value is compared as its text.
pub fn equals(attributes: &[KeyValue], key: &str, want: &str) -> bool {
    let Some(v) = attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    else {
        return false;
    };
    match v {
        Value::StringValue(s) => s == want,
        other => scalar_text(other) == want,
    }
}

/// Sets `key` to a string value, replacing an earlier value of the same key.
pub fn set_string(attributes: &mut Vec<KeyValue>, key: &str, value: &str) {
    set(attributes, key, Value::StringValue(value.to_string()));
}

/// Sets `key` to `value`, replacing an earlier value of the same key.
pub fn set(attributes: &mut Vec<KeyValue>, key: &str, value: Value) {
    let value = Some(AnyValue { value: Some(value) });
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{kv, kv_int};

    #[test]
    fn lookups_find_strings_and_compare_scalars_as_text() {
        let mut attrs = vec![kv("service.name", "shop"), kv_int("http.status_code", 500)];
        assert_eq!(string(&attrs, "service.name"), Some("shop"));
        assert_eq!(string(&attrs, "http.status_code"), None);
        assert!(equals(&attrs, "http.status_code", "500"));
        assert!(!equals(&attrs, "missing", ""));
        let resource = Resource {
            attributes: attrs.clone(),
            ..Default::default()
        };
        assert_eq!(service_name(Some(&resource)), "shop");
        assert_eq!(service_name(None), "");
        set_string(&mut attrs, "service.name", "cart");
        set_string(&mut attrs, "new", "x");
        assert_eq!(string(&attrs, "service.name"), Some("cart"));
        assert_eq!(attrs.len(), 3);
        assert_eq!(scalar_text(&Value::BytesValue(vec![0xab, 1])), "ab01");
    }
}
