//! Which backend an item goes to: a 64-bit key per item (its trace id, or its resource), and
//! rendezvous hashing of that key over the live backends — every sender that sees the same backends
//! picks the same one, and a membership change moves only the keys of the backend that came or went
//! (about 1/N of them).

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use weir_config::Routing;
use weir_pipeline::{Logs, Metrics, Signal, Traces};

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash step.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The backend (index into `backends`' hashes) with the highest score for `key`.
pub fn pick(key: u64, backends: &[u64]) -> usize {
    backends
        .iter()
        .enumerate()
        .max_by_key(|(_, b)| mix(key ^ **b))
        .map_or(0, |(i, _)| i)
}

fn trace_key(trace_id: &[u8]) -> Option<u64> {
    (trace_id.len() == 16 && trace_id.iter().any(|b| *b != 0)).then(|| fnv(trace_id))
}

fn service(resource: Option<&Resource>) -> &str {
    weir_pipeline::attrs::service_name(resource)
}

fn resource_key(resource: Option<&Resource>, routing: Routing) -> u64 {
    match routing {
        Routing::Resource => {
            let mut attrs: Vec<&KeyValue> =
                resource.into_iter().flat_map(|r| &r.attributes).collect();
            attrs.sort_by(|a, b| a.key.cmp(&b.key));
            attrs.iter().fold(0, |h, kv| {
                mix(h ^ fnv(kv.key.as_bytes()) ^ fnv(format!("{:?}", kv.value).as_bytes()))
            })
        }
        _ => fnv(service(resource).as_bytes()),
    }
}

/// Splits a batch's resources among `n` backends; `choose` maps a key to a backend index.
pub trait OtlpRoute: Signal {
    fn split(
        resources: Vec<Self::Resource>,
        routing: Routing,
        n: usize,
        choose: &dyn Fn(u64) -> usize,
    ) -> Vec<Vec<Self::Resource>>;
}

/// Items under one resource that may go to different backends: the resource and scope are copied
/// (without items) for each backend that gets some.
macro_rules! split_items {
    ($resources:expr, $n:expr, $choose:expr, $routing:expr, $scopes:ident, $items:ident, $key:expr) => {{
        let mut out: Vec<Vec<_>> = (0..$n).map(|_| Vec::new()).collect();
        for mut r in $resources {
            let fallback = resource_key(r.resource.as_ref(), $routing);
            let scopes = std::mem::take(&mut r.$scopes);
            if $routing != Routing::TraceId {
                let b = $choose(fallback);
                r.$scopes = scopes;
                out[b].push(r);
                continue;
            }
            let mut parts: Vec<Option<_>> = (0..$n).map(|_| None).collect();
            for mut s in scopes {
                let items = std::mem::take(&mut s.$items);
                let mut per: Vec<Vec<_>> = (0..$n).map(|_| Vec::new()).collect();
                for item in items {
                    let key: Option<u64> = $key(&item);
                    per[$choose(key.unwrap_or(fallback))].push(item);
                }
                for (b, items) in per.into_iter().enumerate() {
                    if items.is_empty() {
                        continue;
                    }
                    let mut scope = s.clone();
                    scope.$items = items;
                    parts[b]
                        .get_or_insert_with(|| {
                            let mut skeleton = r.clone();
                            skeleton.$scopes = Vec::new();
                            skeleton
                        })
                        .$scopes
                        .push(scope);
                }
            }
            for (b, part) in parts.into_iter().enumerate() {
                if let Some(part) = part {
                    out[b].push(part);
                }
            }
        }
        out
    }};
}

impl OtlpRoute for Traces {
    fn split(
        resources: Vec<ResourceSpans>,
        routing: Routing,
        n: usize,
        choose: &dyn Fn(u64) -> usize,
    ) -> Vec<Vec<ResourceSpans>> {
        split_items!(
            resources,
            n,
            choose,
            routing,
            scope_spans,
            spans,
            |s: &opentelemetry_proto::tonic::trace::v1::Span| trace_key(&s.trace_id)
        )
    }
}

impl OtlpRoute for Logs {
    fn split(
        resources: Vec<ResourceLogs>,
        routing: Routing,
        n: usize,
        choose: &dyn Fn(u64) -> usize,
    ) -> Vec<Vec<ResourceLogs>> {
        split_items!(
            resources,
            n,
            choose,
            routing,
            scope_logs,
            log_records,
            |r: &opentelemetry_proto::tonic::logs::v1::LogRecord| trace_key(&r.trace_id)
        )
    }
}

impl OtlpRoute for Metrics {
    /// Data points carry no trace: metrics always go by resource.
    fn split(
        resources: Vec<ResourceMetrics>,
        routing: Routing,
        n: usize,
        choose: &dyn Fn(u64) -> usize,
    ) -> Vec<Vec<ResourceMetrics>> {
        let routing = if routing == Routing::TraceId {
            Routing::Service
        } else {
            routing
        };
        let mut out: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        for r in resources {
            out[choose(resource_key(r.resource.as_ref(), routing))].push(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_moves_about_one_nth_of_the_keys() {
        let three: Vec<u64> = ["a:1", "b:1", "c:1"]
            .iter()
            .map(|s| fnv(s.as_bytes()))
            .collect();
        let four: Vec<u64> = ["a:1", "b:1", "c:1", "d:1"]
            .iter()
            .map(|s| fnv(s.as_bytes()))
            .collect();
        let keys: Vec<u64> = (0..40_000u64).map(mix).collect();
        let mut counts = [0usize; 3];
        let mut moved = 0;
        for k in &keys {
            let before = pick(*k, &three);
            counts[before] += 1;
            let after = pick(*k, &four);
            if after != before {
                assert_eq!(after, 3, "keys only move to the new backend");
                moved += 1;
            }
        }
        for c in counts {
            assert!(
                (c as f64 - 40_000.0 / 3.0).abs() < 600.0,
                "balanced: {counts:?}"
            );
        }
        let share = moved as f64 / 40_000.0;
        assert!((share - 0.25).abs() < 0.02, "moved {share}");
    }
}
