//! The OTLP messages logs and traces share: attributes and values, resources, scopes, and the
//! resource → scope → item nesting both signals use.
//!
//! Every decoder fills a message in place (`&mut T`) instead of returning one: returning these
//! structs by value through a `Result` cost more than decoding most of them.

use super::reader::{Fallback, Fast, Reader, I64, LEN, VARINT};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Values nested deeper than this (arrays of maps of arrays …) are left to prost, whose own
/// recursion limit then decides.
const MAX_DEPTH: usize = 16;

/// A decoder of one message from its bytes, into a default value of it.
pub(super) type Decode<T> = fn(&[u8], &mut T) -> Fast<()>;

/// Decodes a singular message field. A second occurrence would be merged into the first by prost,
/// which this decoder leaves to prost.
#[inline]
pub(super) fn once<T: Default>(slot: &mut Option<T>, bytes: &[u8], decode: Decode<T>) -> Fast<()> {
    if slot.is_some() {
        return Err(Fallback);
    }
    decode(bytes, slot.insert(T::default()))
}

/// Decodes one occurrence of a repeated message field, `expected` of them in all (see
/// [`Reader::count`]): the vector is allocated once, at that size.
#[inline]
pub(super) fn repeated<T: Default>(
    into: &mut Vec<T>,
    expected: usize,
    bytes: &[u8],
    decode: Decode<T>,
) -> Fast<()> {
    if into.capacity() == 0 {
        into.reserve_exact(expected);
    }
    into.push(T::default());
    let last = into.len() - 1;
    decode(bytes, &mut into[last])
}

pub(super) fn key_value(buf: &[u8], kv: &mut KeyValue) -> Fast<()> {
    nested_key_value(buf, 0, kv)
}

fn nested_key_value(buf: &[u8], depth: usize, kv: &mut KeyValue) -> Fast<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => kv.key = r.string()?,
            (2, LEN) => {
                if kv.value.is_some() {
                    return Err(Fallback);
                }
                nested_any_value(r.bytes()?, depth, kv.value.insert(AnyValue::default()))?
            }
            (3, VARINT) => kv.key_strindex = r.varint()? as i32,
            (1..=3, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

pub(super) fn any_value(buf: &[u8], value: &mut AnyValue) -> Fast<()> {
    nested_any_value(buf, 0, value)
}

fn nested_any_value(buf: &[u8], depth: usize, any: &mut AnyValue) -> Fast<()> {
    if depth > MAX_DEPTH {
        return Err(Fallback);
    }
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let v = match r.key()? {
            (1, LEN) => Value::StringValue(r.string()?),
            (2, VARINT) => Value::BoolValue(r.varint()? != 0),
            (3, VARINT) => Value::IntValue(r.varint()? as i64),
            (4, I64) => Value::DoubleValue(f64::from_bits(r.fixed64()?)),
            (5, LEN) => Value::ArrayValue(array(r.bytes()?, depth + 1)?),
            (6, LEN) => Value::KvlistValue(kv_list(r.bytes()?, depth + 1)?),
            (7, LEN) => Value::BytesValue(r.vec()?),
            (8, VARINT) => Value::StringValueStrindex(r.varint()? as i32),
            (1..=8, _) => return Err(Fallback),
            (_, wire) => {
                r.skip(wire)?;
                continue;
            }
        };
        // prost merges a repeated oneof member into the one before it; that is prost's to do.
        if any.value.replace(v).is_some() {
            return Err(Fallback);
        }
    }
    Ok(())
}

fn array(buf: &[u8], depth: usize) -> Fast<ArrayValue> {
    let values = nested_values(buf, depth, nested_any_value)?;
    Ok(ArrayValue { values })
}

fn kv_list(buf: &[u8], depth: usize) -> Fast<KeyValueList> {
    let values = nested_values(buf, depth, nested_key_value)?;
    Ok(KeyValueList { values })
}

/// The values of an array or map value (field 1, repeated), each one level deeper.
fn nested_values<T: Default>(
    buf: &[u8],
    depth: usize,
    decode: fn(&[u8], usize, &mut T) -> Fast<()>,
) -> Fast<Vec<T>> {
    let mut r = Reader::new(buf);
    let [n] = r.count([1])?;
    let mut values = Vec::with_capacity(n);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => {
                values.push(T::default());
                let last = values.len() - 1;
                decode(r.bytes()?, depth, &mut values[last])?
            }
            (1, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(values)
}

fn resource(buf: &[u8], resource: &mut Resource) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes, n_refs] = r.count([1, 3])?;
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => repeated(
                &mut resource.attributes,
                n_attributes,
                r.bytes()?,
                key_value,
            )?,
            (2, VARINT) => resource.dropped_attributes_count = r.varint()? as u32,
            (3, LEN) => repeated(&mut resource.entity_refs, n_refs, r.bytes()?, entity_ref)?,
            (1..=3, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn entity_ref(buf: &[u8], entity: &mut EntityRef) -> Fast<()> {
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => entity.schema_url = r.string()?,
            (2, LEN) => entity.r#type = r.string()?,
            (3, LEN) => entity.id_keys.push(r.string()?),
            (4, LEN) => entity.description_keys.push(r.string()?),
            (1..=4, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

fn scope(buf: &[u8], scope: &mut InstrumentationScope) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n_attributes] = r.count([3])?;
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => scope.name = r.string()?,
            (2, LEN) => scope.version = r.string()?,
            (3, LEN) => repeated(&mut scope.attributes, n_attributes, r.bytes()?, key_value)?,
            (4, VARINT) => scope.dropped_attributes_count = r.varint()? as u32,
            (1..=4, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

/// `ResourceLogs` and `ResourceSpans`, `ScopeLogs` and `ScopeSpans`: the message they are about
/// (field 1: a resource, a scope), their repeated children (field 2), a schema URL (field 3).
pub(super) struct Group<'a, D, T> {
    pub(super) about: &'a mut Option<D>,
    pub(super) children: &'a mut Vec<T>,
    pub(super) schema_url: &'a mut String,
}

fn group<D: Default, T: Default>(
    buf: &[u8],
    g: Group<'_, D, T>,
    about: Decode<D>,
    child: Decode<T>,
) -> Fast<()> {
    let mut r = Reader::new(buf);
    let [n] = r.count([2])?;
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => once(g.about, r.bytes()?, about)?,
            (2, LEN) => repeated(g.children, n, r.bytes()?, child)?,
            (3, LEN) => *g.schema_url = r.string()?,
            (1..=3, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(())
}

/// A resource with its scope groups.
pub(super) fn resource_group<T: Default>(
    buf: &[u8],
    g: Group<'_, Resource, T>,
    child: Decode<T>,
) -> Fast<()> {
    group(buf, g, resource, child)
}

/// A scope with its items.
pub(super) fn scope_group<T: Default>(
    buf: &[u8],
    g: Group<'_, InstrumentationScope, T>,
    child: Decode<T>,
) -> Fast<()> {
    group(buf, g, scope, child)
}

/// A request: its repeated resource groups (field 1), unknown fields skipped.
pub(super) fn request<T: Default>(buf: &[u8], child: Decode<T>) -> Fast<Vec<T>> {
    let mut r = Reader::new(buf);
    let [n] = r.count([1])?;
    let mut resources = Vec::new();
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => repeated(&mut resources, n, r.bytes()?, child)?,
            (1, _) => return Err(Fallback),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(resources)
}
