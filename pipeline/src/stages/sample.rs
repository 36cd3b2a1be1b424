//! `Sample`: consistent probability sampling, compatible with OpenTelemetry's (OTEP 235).
//!
//! - Spans: randomness R is the 56-bit `rv` from `tracestate` (`ot=rv:…`) when present, else the trace
//!   id's low 56 bits; a span is kept when R ≥ T, with T = (1 − p)·2^56. An upstream threshold
//!   (`ot=th:…`) is respected — the effective threshold is the larger, so a chain of tiers only ever
//!   lowers the probability — and written back as `ot=th:…` on kept spans, other `ot` sub-keys and
//!   vendors' members untouched. Every instance decides the same for the same trace.
//! - Log records: the first matching rule (severity at least / exactly, service) gives p. A record with
//!   a trace id uses its trace's R, so with the same p it shares its trace's fate, and with a higher p a
//!   kept trace always keeps its logs; a record without one draws R from a hash of its timestamp,
//!   severity and body (deterministic). With `tail.logs: with_trace`, a record with a trace id skips
//!   the log rules and rate limits: it follows its trace's head decision here and its tail decision in
//!   the tail sampler.
//!
//! Sampled-out items are counted per signal and rule. With no configuration nothing is sampled away.

use super::ratelimit::{Buckets, RateLimit};
use super::threshold::{ot_values, with_threshold, MAX};
/// The threshold codec lives in [`super::threshold`]; re-exported because [`SamplePolicy`] is written
/// in its terms.
pub use super::threshold::{trace_randomness, Threshold};
use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::{Counter, Registry};
use crate::signal::{Logs, Traces};
use crate::stage::Stage;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

pub(crate) mod policy;
pub use policy::{LogRule, SamplePolicy};

/// Whether a log record names a trace (the tail sampler can hold it with one).
pub fn traced(r: &LogRecord) -> bool {
    r.trace_id.len() == 16 && r.trace_id.iter().any(|b| *b != 0)
}

pub struct Sample {
    policy: HotSwap<SamplePolicy>,
    /// Outside the policy, so buckets survive a reload.
    buckets: Buckets,
    registry: std::sync::Arc<Registry>,
    spans_out: SampledOut,
}

impl Sample {
    pub fn new(policy: SamplePolicy, registry: &std::sync::Arc<Registry>) -> Self {
        Sample {
            policy: HotSwap::new(policy),
            buckets: Buckets::default(),
            spans_out: SampledOut::new(registry, "traces", "head"),
            registry: registry.clone(),
        }
    }

    /// The policy of the set `batch` runs under, or this stage's own outside such a chain.
    fn current<S: crate::Signal>(&self, batch: &crate::Batch<S>) -> std::sync::Arc<SamplePolicy> {
        batch
            .policies()
            .map_or_else(|| self.policy.load_full(), |set| set.sample.clone())
    }

    pub fn policy(&self) -> &HotSwap<SamplePolicy> {
        &self.policy
    }

    /// Swaps in `policy` and forgets the buckets of rate limits it no longer has.
    pub fn reload(&self, policy: SamplePolicy) {
        let names: Vec<String> = policy
            .span_limits
            .iter()
            .chain(&policy.log_limits)
            .map(|l| l.name.clone())
            .collect();
        self.policy.store(policy);
        self.buckets.retain_rules(names.iter().map(String::as_str));
    }

    fn out(&self, signal: &str, rule: &str, version: u64) -> Counter {
        sampled_out(&self.registry, signal, rule, version)
    }

    /// Applies the rate limits to the items `for_each_kept` walks, resource by resource: `keys` are the
    /// resource's values of each limit's key, and the callback says whether an item may stay.
    fn limit<S: crate::signal::Signal>(
        &self,
        batch: &mut Batch<S>,
        limits: &[RateLimit],
        signal: &str,
        mut for_each_kept: impl FnMut(&mut S::Resource, &mut dyn FnMut(&[String]) -> bool),
    ) {
        if limits.is_empty() || batch.items() == 0 {
            return;
        }
        // `bytes_per_second` counts what clients send, not what it takes in memory.
        let per_item = batch.encoded_bytes() as f64 / batch.items() as f64;
        let mut refused: Vec<u64> = vec![0; limits.len()];
        let mut taking = self.buckets.take();
        for resource in &mut batch.resources {
            for_each_kept(resource, &mut |keys: &[String]| {
                for (i, l) in limits.iter().enumerate() {
                    if !taking.admit(l, &keys[i], per_item) {
                        refused[i] += 1;
                        return false;
                    }
                }
                true
            });
        }
        taking.evictions(|rule, n| {
            self.registry
                .counter(
                    "weir_ratelimit_evicted_keys_total",
                    "Rate-limit buckets forgotten to stay within max_keys (least recently used first).",
                    &[("rule", rule)],
                )
                .add(n);
        });
        drop(taking);
        for (l, n) in limits.iter().zip(refused) {
            if n > 0 {
                self.out(signal, &l.name, batch.policy_version()).add(n);
            }
        }
    }
}

impl Stage<Traces> for Sample {
    fn name(&self) -> &'static str {
        "sample"
    }

    fn apply(&self, batch: &mut Batch<Traces>) {
        let policy = self.current(batch);
        let own = policy.traces;
        let mut dropped = 0;
        for scope in batch
            .resources
            .iter_mut()
            .flat_map(|r| r.scope_spans.iter_mut())
        {
            scope.spans.retain_mut(|span| {
                // Not sampling here: keep everything and leave tracestate exactly as received.
                if own.0 == 0 {
                    return true;
                }
                let (upstream, rv) = ot_values(&span.trace_state);
                let t = Threshold(own.0.max(upstream.map_or(0, |u| u.0)));
                let r = rv.unwrap_or_else(|| trace_randomness(&span.trace_id));
                if r < t.0 {
                    dropped += 1;
                    crate::tap::explain(&span.attributes, || {
                        format!(
                            "head sampling: trace randomness below threshold {}",
                            t.encode()
                        )
                    });
                    return false;
                }
                if upstream != Some(t) {
                    span.trace_state = with_threshold(&span.trace_state, t);
                }
                if let Some(key) = &policy.attribute {
                    crate::attrs::set_string(&mut span.attributes, key, "head");
                }
                true
            });
        }
        self.spans_out.add(batch.policy_version(), dropped);
        let limits = &policy.span_limits;
        self.limit(batch, limits, "traces", |rs, admit| {
            let keys = limit_keys(limits, rs.resource.as_ref());
            for scope in &mut rs.scope_spans {
                scope.spans.retain(|s| {
                    let admitted = admit(&keys);
                    if !admitted {
                        crate::tap::explain(&s.attributes, || rate_limited(limits, &keys));
                    }
                    admitted
                });
            }
        });
    }
}

/// `version`: the policy version that decided (0 outside a chain that carries a set).
fn sampled_out(registry: &Registry, signal: &str, rule: &str, version: u64) -> Counter {
    registry.counter(
        "weir_sampled_out_items_total",
        "Items sampling decided not to keep, by signal, rule and the policy version that decided.",
        &[
            ("signal", signal),
            ("rule", rule),
            ("version", &version.to_string()),
        ],
    )
}

/// `weir_sampled_out_items_total` of one signal and fixed rule (head, tail), counted on every batch:
/// the series of the version that decided last is kept, so only a new version costs a registry
/// lookup, and a series appears only once its version has dropped something.
pub(crate) struct SampledOut {
    registry: std::sync::Arc<Registry>,
    signal: &'static str,
    rule: &'static str,
    last: arc_swap::ArcSwapOption<(u64, Counter)>,
}

impl SampledOut {
    pub(crate) fn new(
        registry: &std::sync::Arc<Registry>,
        signal: &'static str,
        rule: &'static str,
    ) -> Self {
        SampledOut {
            registry: registry.clone(),
            signal,
            rule,
            last: arc_swap::ArcSwapOption::empty(),
        }
    }

    pub(crate) fn add(&self, version: u64, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(last) = &*self.last.load() {
            if last.0 == version {
                return last.1.add(n);
            }
        }
        let counter = sampled_out(&self.registry, self.signal, self.rule, version);
        counter.add(n);
        self.last
            .store(Some(std::sync::Arc::new((version, counter))));
    }
}

/// What a tap is told about an item a rate limit refused.
fn rate_limited(limits: &[RateLimit], keys: &[String]) -> String {
    let names: Vec<String> = limits
        .iter()
        .zip(keys)
        .map(|(l, k)| format!("{} ({}={k})", l.name, l.key))
        .collect();
    format!("rate limit {}", names.join(" or "))
}

/// Each limit's key value for a resource.
fn limit_keys(
    limits: &[RateLimit],
    resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
) -> Vec<String> {
    limits
        .iter()
        .map(|l| crate::attrs::resource_string(resource, &l.key).to_string())
        .collect()
}

/// 56 bits from a record without trace context: FNV-1a over time, severity and body, deterministic.
fn record_randomness(r: &LogRecord) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&r.time_unix_nano.to_le_bytes());
    eat(&r.severity_number.to_le_bytes());
    if let Some(Value::StringValue(s)) = r.body.as_ref().and_then(|b| b.value.as_ref()) {
        eat(s.as_bytes());
    }
    // Fold the high byte in so all 64 bits matter.
    (h ^ (h >> 56)) & (MAX - 1)
}

impl Stage<Logs> for Sample {
    fn name(&self) -> &'static str {
        "sample"
    }

    fn apply(&self, batch: &mut Batch<Logs>) {
        let policy = self.current(batch);
        let with_trace = policy.logs_with_trace;
        if policy.log_rules.is_empty()
            && policy.logs_default.0 == 0
            && policy.log_limits.is_empty()
            && (!with_trace || policy.traces.0 == 0)
        {
            return;
        }
        let mut dropped: Vec<(String, u64)> = Vec::new();
        let mut count = |name: &str| match dropped.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => dropped.push((name.to_string(), 1)),
        };
        for rl in &mut batch.resources {
            let service = crate::attrs::service_name(rl.resource.as_ref()).to_string();
            for scope in &mut rl.scope_logs {
                scope.log_records.retain_mut(|r| {
                    if with_trace && traced(r) {
                        let t = policy.traces;
                        if t.0 == 0 || trace_randomness(&r.trace_id) >= t.0 {
                            return true;
                        }
                        crate::tap::explain(&r.attributes, || {
                            format!(
                                "head sampling of its trace: randomness below threshold {}",
                                t.encode()
                            )
                        });
                        count("head");
                        return false;
                    }
                    let rule = policy.log_rules.iter().find(|rule| {
                        rule.min_severity.is_none_or(|m| r.severity_number >= m)
                            && rule.max_severity.is_none_or(|s| r.severity_number <= s)
                            && rule.service.as_deref().is_none_or(|s| s == service)
                    });
                    let (t, name) = rule.map_or((policy.logs_default, "default"), |r| {
                        (r.threshold, r.name.as_str())
                    });
                    let keep = t.0 == 0 || {
                        let rand = if r.trace_id.len() == 16 {
                            trace_randomness(&r.trace_id)
                        } else {
                            record_randomness(r)
                        };
                        rand >= t.0
                    };
                    if keep {
                        if let Some(key) = &policy.attribute {
                            crate::attrs::set_string(&mut r.attributes, key, name);
                        }
                        return true;
                    }
                    crate::tap::explain(&r.attributes, || format!("log rule {name}"));
                    count(name);
                    false
                });
            }
        }
        for (name, n) in dropped {
            self.out("logs", &name, batch.policy_version()).add(n);
        }
        let limits = &policy.log_limits;
        self.limit(batch, limits, "logs", |rl, admit| {
            let keys = limit_keys(limits, rl.resource.as_ref());
            for scope in &mut rl.scope_logs {
                scope.log_records.retain(|r| {
                    if with_trace && traced(r) {
                        return true;
                    }
                    let admitted = admit(&keys);
                    if !admitted {
                        crate::tap::explain(&r.attributes, || rate_limited(limits, &keys));
                    }
                    admitted
                });
            }
        });
    }
}

#[cfg(test)]
mod tests;
