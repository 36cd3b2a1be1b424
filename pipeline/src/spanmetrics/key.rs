//! Series keys. A span is looked up by a key that borrows from the span ([`KeyRef`]); only a series
//! seen for the first time is copied into an owned [`SeriesKey`]. Both hash and compare through one
//! trait-object view, which is how std's `HashMap` accepts a borrowed compound key, so the hot path
//! never allocates to ask.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// What identifies a series, whether owned or borrowed from a span.
pub(crate) trait AsKey {
    fn service(&self) -> &str;
    fn name(&self) -> &str;
    fn kind(&self) -> i32;
    fn status(&self) -> i32;
    fn dims(&self) -> usize;
    fn dim(&self, i: usize) -> Option<&Value>;
}

impl Hash for dyn AsKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.service().hash(h);
        self.name().hash(h);
        h.write_i32(self.kind());
        h.write_i32(self.status());
        for i in 0..self.dims() {
            hash_value(self.dim(i), h);
        }
    }
}

impl PartialEq for dyn AsKey + '_ {
    fn eq(&self, o: &Self) -> bool {
        self.kind() == o.kind()
            && self.status() == o.status()
            && self.name() == o.name()
            && self.service() == o.service()
            && self.dims() == o.dims()
            && (0..self.dims()).all(|i| same_value(self.dim(i), o.dim(i)))
    }
}

impl Eq for dyn AsKey + '_ {}

/// A series' identity as stored: what its data points are labelled with.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesKey {
    pub service: Box<str>,
    pub name: Box<str>,
    /// `SpanKind` as its protobuf number, 0 when unknown.
    pub kind: i32,
    /// `StatusCode` as its protobuf number, 0 when unknown.
    pub status: i32,
    /// One per configured dimension, in order; `None` where the span and its resource lack the key.
    pub dims: Box<[Option<Value>]>,
}

impl AsKey for SeriesKey {
    fn service(&self) -> &str {
        &self.service
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> i32 {
        self.kind
    }
    fn status(&self) -> i32 {
        self.status
    }
    fn dims(&self) -> usize {
        self.dims.len()
    }
    fn dim(&self, i: usize) -> Option<&Value> {
        self.dims[i].as_ref()
    }
}

/// A key borrowed from a span and its resource.
#[derive(Clone, Copy)]
pub(crate) struct KeyRef<'a> {
    pub service: &'a str,
    pub name: &'a str,
    pub kind: i32,
    pub status: i32,
    pub dims: &'a [Option<&'a Value>],
}

impl KeyRef<'_> {
    pub fn owned(self) -> SeriesKey {
        SeriesKey {
            service: self.service.into(),
            name: self.name.into(),
            kind: self.kind,
            status: self.status,
            dims: self.dims.iter().map(|d| d.cloned()).collect(),
        }
    }
}

impl AsKey for KeyRef<'_> {
    fn service(&self) -> &str {
        self.service
    }
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> i32 {
        self.kind
    }
    fn status(&self) -> i32 {
        self.status
    }
    fn dims(&self) -> usize {
        self.dims.len()
    }
    fn dim(&self, i: usize) -> Option<&Value> {
        self.dims[i]
    }
}

/// A shared owned key: one allocation per series, however many shards hold it.
#[derive(Debug, Clone)]
pub(crate) struct Series(pub Arc<SeriesKey>);

impl Hash for Series {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (&*self.0 as &dyn AsKey).hash(h)
    }
}

impl PartialEq for Series {
    fn eq(&self, o: &Self) -> bool {
        (&*self.0 as &dyn AsKey) == (&*o.0 as &dyn AsKey)
    }
}

impl Eq for Series {}

impl<'a> Borrow<dyn AsKey + 'a> for Series {
    fn borrow(&self) -> &(dyn AsKey + 'a) {
        &*self.0
    }
}

/// Arrays and maps hash alike (they are rare as dimensions); equality still tells them apart.
fn hash_value<H: Hasher>(v: Option<&Value>, h: &mut H) {
    match v {
        None => h.write_u8(0),
        Some(Value::StringValue(s)) => {
            h.write_u8(1);
            s.hash(h)
        }
        Some(Value::BoolValue(b)) => {
            h.write_u8(2);
            b.hash(h)
        }
        Some(Value::IntValue(i)) => {
            h.write_u8(3);
            i.hash(h)
        }
        Some(Value::DoubleValue(d)) => {
            h.write_u8(4);
            d.to_bits().hash(h)
        }
        Some(Value::BytesValue(b)) => {
            h.write_u8(5);
            b.hash(h)
        }
        Some(_) => h.write_u8(6),
    }
}

/// Doubles compare by bits, so a NaN dimension still finds its series instead of making a new one
/// for every span.
fn same_value(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::DoubleValue(x)), Some(Value::DoubleValue(y))) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}
