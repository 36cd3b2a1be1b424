//! A batch → RowBinary rows for a [`Layout`], written straight from the OTLP structures: ids hex-encoded
//! into the buffer, string values copied once, no intermediate row of `String`s.
//!
//! This module holds the [`Encoder`] and the cell writer every signal shares; each signal's rows
//! (which OTLP value fills which column) are in their own file:
//! - `logs`: one row per log record.
//! - `spans`: one row per span, with its events and links.
//! - `metrics`: one row per data point, in the table of its metric type, with its exemplars.

mod logs;
mod metrics;
mod spans;
#[cfg(test)]
mod tests;

use super::columns::{Column, Kind};
use super::rowbinary as rb;
use super::Layout;
use metrics::exemplar_value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{summary_data_point::ValueAtQuantile, Exemplar};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};

/// One cell, borrowed from the OTLP batch.
enum Field<'a> {
    Time(u64),
    Bytes(&'a [u8]),
    Id(&'a [u8]),
    U8(u8),
    U64(u64),
    Any(Option<&'a AnyValue>),
    Attrs(&'a [KeyValue]),
    Events(&'a [Event]),
    Links(&'a [Link]),
    U32(u32),
    I32(i32),
    F64(f64),
    ArrU64(&'a [u64]),
    ArrF64(&'a [f64]),
    Exemplars(&'a [Exemplar]),
    Quantiles(&'a [ValueAtQuantile]),
}

/// Reusable state: the scratch string for non-string values.
#[derive(Default)]
pub struct Encoder {
    scratch: String,
}

impl Encoder {
    fn map(&mut self, kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(out, kv.key.as_bytes());
            rb::string(
                out,
                rb::value_text(kv.value.as_ref(), &mut self.scratch).as_bytes(),
            );
        }
    }

    fn keys(kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(out, kv.key.as_bytes());
        }
    }

    fn values(&mut self, kvs: &[KeyValue], out: &mut Vec<u8>) {
        rb::varint(out, kvs.len() as u64);
        for kv in kvs {
            rb::string(
                out,
                rb::value_text(kv.value.as_ref(), &mut self.scratch).as_bytes(),
            );
        }
    }

    /// Attributes of each element: one `Map` per element, or (portable) parallel key and value arrays.
    fn nested_attrs<'a, T: 'a>(
        &mut self,
        items: &'a [T],
        attrs: impl Fn(&'a T) -> &'a [KeyValue],
        layout: Layout,
        out: &mut Vec<u8>,
    ) {
        rb::varint(out, items.len() as u64);
        match layout {
            Layout::Modern => items.iter().for_each(|i| self.map(attrs(i), out)),
            Layout::Portable => {
                items.iter().for_each(|i| Self::keys(attrs(i), out));
                rb::varint(out, items.len() as u64);
                items.iter().for_each(|i| self.values(attrs(i), out));
            }
        }
    }

    #[inline]
    fn write<F>(&mut self, c: &Column<F>, cell: Field<'_>, layout: Layout, out: &mut Vec<u8>) {
        match (cell, c.kind, layout) {
            (Field::Time(ns), Kind::Time, Layout::Modern) => rb::i64(out, ns as i64),
            (Field::Time(ns), Kind::Time, Layout::Portable) => {
                rb::u64(out, ns);
                rb::u32(out, (ns / 1_000_000_000).min(u64::from(u32::MAX)) as u32);
            }
            (Field::Bytes(b), _, _) => rb::string(out, b),
            (Field::Id(id), _, _) => rb::hex_id(out, id),
            (Field::U8(v), _, _) => rb::u8(out, v),
            (Field::Any(v), _, _) => {
                rb::string(out, rb::value_text(v, &mut self.scratch).as_bytes())
            }
            (Field::U64(v), _, _) => rb::u64(out, v),
            (Field::Attrs(kvs), _, Layout::Modern) => self.map(kvs, out),
            (Field::Attrs(kvs), _, Layout::Portable) => {
                Self::keys(kvs, out);
                self.values(kvs, out);
            }
            (Field::Events(events), _, _) => {
                rb::varint(out, events.len() as u64);
                for e in events {
                    match layout {
                        Layout::Modern => rb::i64(out, e.time_unix_nano as i64),
                        Layout::Portable => rb::u64(out, e.time_unix_nano),
                    }
                }
                rb::varint(out, events.len() as u64);
                for e in events {
                    rb::string(out, e.name.as_bytes());
                }
                self.nested_attrs(events, |e| &e.attributes, layout, out);
            }
            (Field::Links(links), _, _) => {
                rb::varint(out, links.len() as u64);
                links.iter().for_each(|l| rb::hex_id(out, &l.trace_id));
                rb::varint(out, links.len() as u64);
                links.iter().for_each(|l| rb::hex_id(out, &l.span_id));
                rb::varint(out, links.len() as u64);
                links
                    .iter()
                    .for_each(|l| rb::string(out, l.trace_state.as_bytes()));
                self.nested_attrs(links, |l| &l.attributes, layout, out);
            }
            (Field::U32(v), _, _) => rb::u32(out, v),
            (Field::I32(v), _, _) => out.extend_from_slice(&v.to_le_bytes()),
            (Field::F64(v), _, _) => out.extend_from_slice(&v.to_le_bytes()),
            (Field::ArrU64(v), _, _) => {
                rb::varint(out, v.len() as u64);
                v.iter().for_each(|x| rb::u64(out, *x));
            }
            (Field::ArrF64(v), _, _) => {
                rb::varint(out, v.len() as u64);
                v.iter()
                    .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
            }
            (Field::Exemplars(ex), _, _) => {
                if layout == Layout::Modern {
                    rb::varint(out, ex.len() as u64);
                    ex.iter()
                        .for_each(|e| self.map(&e.filtered_attributes, out));
                } else {
                    self.nested_attrs(ex, |e| &e.filtered_attributes, layout, out);
                }
                rb::varint(out, ex.len() as u64);
                for e in ex {
                    match layout {
                        Layout::Modern => rb::i64(out, e.time_unix_nano as i64),
                        Layout::Portable => rb::u64(out, e.time_unix_nano),
                    }
                }
                rb::varint(out, ex.len() as u64);
                ex.iter()
                    .for_each(|e| out.extend_from_slice(&exemplar_value(e).to_le_bytes()));
                rb::varint(out, ex.len() as u64);
                ex.iter().for_each(|e| rb::hex_id(out, &e.span_id));
                rb::varint(out, ex.len() as u64);
                ex.iter().for_each(|e| rb::hex_id(out, &e.trace_id));
            }
            (Field::Quantiles(q), _, _) => {
                rb::varint(out, q.len() as u64);
                q.iter()
                    .for_each(|v| out.extend_from_slice(&v.quantile.to_le_bytes()));
                rb::varint(out, q.len() as u64);
                q.iter()
                    .for_each(|v| out.extend_from_slice(&v.value.to_le_bytes()));
            }
            (Field::Time(ns), _, _) => rb::u64(out, ns),
        }
    }
}

/// `service.name` of a resource when it is a string; empty otherwise.
fn service_name(resource: Option<&Resource>) -> &[u8] {
    weir_pipeline::attrs::service_name(resource).as_bytes()
}
