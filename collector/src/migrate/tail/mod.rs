//! `tail_sampling` → `pipeline.sample.tail`. The Collector drops a trace when one of its `drop`
//! policies matches, and otherwise keeps it when any policy says so; Weir's policies are tried in
//! order and the first match decides, so drop policies go first and the keep policies follow in their
//! order: the same sets. An `invert_match` attribute policy is a plain keep policy matching traces
//! without the value, as in the Collector since its inverted decisions were removed
//! (`disableinvertdecisions`, default-on around v0.144, gone since June 2026): Weir's `invert: true`,
//! in its place. A keep policy with no Weir equivalent is left out, and that means fewer traces kept;
//! a drop policy left out, more: the report says so for each one.
//!
//! Translating the policy list (each policy's kind, composites, `and`, `drop`, names and budgets) is
//! in `policies`; one Collector policy type → one Weir condition in `conditions`, and the attribute
//! conditions (string, boolean, numeric, regexes) in `attributes`.

mod attributes;
mod conditions;
mod policies;
#[cfg(test)]
mod tests;

use super::report::{text, Obj};
use super::yaml::{Map, Node};
use super::{units, Ctx};
use policies::policy;

pub fn translate(cx: &mut Ctx, o: &mut Obj) {
    if cx.out.path("pipeline.sample").contains("tail") {
        cx.report.unsupported(
            &o.path,
            "Weir has one tail sampler; the first tail_sampling processor's policies are used",
        );
        for key in o.unread() {
            o.get(&key);
        }
        return;
    }
    let mut tail = Map::default();
    let wait = o.str("decision_wait").unwrap_or_else(|| "30s".into());
    match units::duration(&wait) {
        Ok(d) => {
            tail.set("decision_wait", Node::str(&d));
            if units::go_duration(&wait).is_some_and(|ns| ns < 1_000_000_000) {
                tail.set("root_wait", Node::str(&d));
            }
            cx.report.translated(
                &o.at("decision_wait"),
                "pipeline.sample.tail.decision_wait",
                format!("{d}{}; Weir also decides root_wait (1s) after a trace's root span arrives, and late spans follow the decision (decision_cache)", if o.has("decision_wait") { "" } else { " (the Collector's default)" }),
            );
        }
        Err(e) => cx
            .report
            .unsupported(&o.at("decision_wait"), format!("{e}; Weir waits 10s")),
    }
    if let Some(n) = o.get("num_traces").and_then(units::number) {
        tail.set("max_traces", n);
        cx.report.translated(&o.at("num_traces"), "pipeline.sample.tail.max_traces", "at the bound the oldest traces are decided early, never dropped undecided; memory is also bounded by max_bytes (128MiB)");
    }
    if o.get("expected_new_traces_per_sec").is_some() {
        cx.report.not_needed(
            &o.at("expected_new_traces_per_sec"),
            "Weir sizes its buffers as traces arrive",
        );
    }
    let mut cache = o.child("decision_cache");
    let sizes: Vec<u64> = ["sampled_cache_size", "non_sampled_cache_size"]
        .iter()
        .filter_map(|k| cache.get(k).and_then(text).and_then(|t| t.parse().ok()))
        .collect();
    if !sizes.is_empty() {
        let total: u64 = sizes.iter().sum();
        tail.set("decision_cache", Node::raw(total.to_string()));
        cx.report.translated(
            &cache.path,
            "pipeline.sample.tail.decision_cache",
            format!("{total}: one cache remembers kept and dropped trace ids alike"),
        );
    }
    cx.report.rest(&cache, "Weir's decision cache has one size");
    for key in ["sample_on_first_match", "drop_pending_traces_on_shutdown"] {
        if o.get(key).is_some() {
            cx.report.not_needed(
                &o.at(key),
                "Weir's first matching policy decides, and held traces are decided at shutdown",
            );
        }
    }
    let mut policies = Vec::new();
    for (i, p) in o.seq("policies").iter().enumerate() {
        let mut p = Obj::new(format!("{}.policies[{i}]", o.path), Some(p));
        policy(cx, &mut p, &mut policies, None, Place::Top);
    }
    // A drop decision overrides every sample decision in the Collector, wherever its policy stands;
    // in Weir the first match decides, so drop policies go first (a stable sort keeps both orders).
    policies.sort_by_key(|m| !m.contains("drop"));
    let mut seen: Vec<String> = Vec::new();
    for m in &mut policies {
        let mut name = match m.get("name") {
            Some(Node::Str(s)) => s.clone(),
            _ => String::new(),
        };
        if name.is_empty() {
            name = format!("policy{}", seen.len() + 1);
        }
        while seen.contains(&name) {
            name.push_str("-2");
        }
        m.set("name", Node::str(&name));
        seen.push(name);
    }
    if policies.is_empty() {
        cx.report.unsupported(
            &o.at("policies"),
            "no policy has a Weir equivalent, so tail sampling is left off: every trace is kept",
        );
        return;
    }
    tail.set(
        "policies",
        Node::Seq(policies.into_iter().map(Node::Map).collect()),
    );
    cx.out.path("pipeline.sample").set("tail", Node::Map(tail));
    cx.report.translated(&o.path, "pipeline.sample.tail", "spans held by trace id; policies tried in order, drop policies first, and the first match decides (the Collector drops a trace when a drop policy matches, else keeps it when any policy matches: the same sets)");
}

/// Where a policy stands: in the top-level list, inside a composite (a policy of its own, with a
/// budget), or inside `and` / `drop` (a condition only: no name, budget or drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Composite,
    Condition,
}
