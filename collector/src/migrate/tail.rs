//! `tail_sampling` → `pipeline.sample.tail`. The Collector keeps a trace when any policy says so;
//! Weir's policies are tried in order and the first match keeps it, which for keep-only policies is
//! the same set. A policy with no Weir equivalent is left out, and that means fewer traces kept: the
//! report says so for each one.

use super::report::{text, Obj};
use super::yaml::{Map, Node};
use super::{units, Ctx};
use serde_yaml_ng::Value;

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
        policy(cx, &mut p, &mut policies, None);
    }
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
    cx.report.translated(&o.path, "pipeline.sample.tail", "spans held by trace id; policies tried in order, the first match keeps the trace (the Collector keeps it when any policy matches: the same set)");
}

/// One policy (a composite yields several); `budget`: traces per second from a composite's allocation.
fn policy(cx: &mut Ctx, p: &mut Obj, out: &mut Vec<Map>, budget: Option<f64>) {
    let name = p.str("name").unwrap_or_default();
    let ty = p.str("type").unwrap_or_default();
    match ty.as_str() {
        "composite" => return composite(cx, p, &name, out),
        "and" => return and(cx, p, &name, out),
        _ => {}
    }
    match condition(cx, p, &ty) {
        Ok((key, node)) => {
            let mut m = Map::default();
            m.set("name", Node::str(&name));
            m.set(&key, node);
            if let Some(b) = budget {
                m.set("traces_per_second", Node::raw(units::float(b)));
            }
            out.push(m);
            cx.report.translated(
                &p.path,
                &format!("pipeline.sample.tail.policies[] `{name}`"),
                format!("{ty} → {key}"),
            );
        }
        Err(why) => cx.report.unsupported(
            &p.path,
            format!("`{name}` ({ty}): {why}; traces only it kept are dropped by Weir"),
        ),
    }
    cx.report.rest(
        p,
        "Weir's tail policies have name, one condition and traces_per_second",
    );
}

/// The Weir condition of a simple policy, or why there is none.
fn condition(cx: &mut Ctx, p: &mut Obj, ty: &str) -> Result<(String, Node), String> {
    let mut c = p.child(ty);
    let result = match ty {
        "always_sample" => Ok(("probability".into(), Node::raw("1.0"))),
        "latency" => {
            let ms = c.str("threshold_ms").ok_or("no threshold_ms")?;
            if c.get("upper_threshold_ms")
                .and_then(text)
                .is_some_and(|u| u != "0")
            {
                cx.report.approximate(
                    &c.at("upper_threshold_ms"),
                    None,
                    "Weir's latency policy has no upper bound: slower traces are kept too",
                );
            }
            Ok(("latency".into(), Node::str(format!("{ms}ms"))))
        }
        "probabilistic" => {
            let v = c
                .get("sampling_percentage")
                .ok_or("no sampling_percentage")?;
            let (prob, note) = units::percent(v)?;
            if let Some(n) = note {
                cx.report.approximate(&c.at("sampling_percentage"), None, n);
            }
            if c.get("hash_salt").is_some() {
                cx.report.approximate(&c.at("hash_salt"), None, "Weir decides by the trace id's randomness, consistently with head sampling, not a salted hash");
            }
            Ok(("probability".into(), Node::raw(units::float(prob))))
        }
        "status_code" => {
            let codes = c.strs("status_codes");
            if !codes.iter().any(|s| s.eq_ignore_ascii_case("error")) {
                return Err(format!(
                    "Weir's status policy matches ERROR only, not {}",
                    codes.join(", ")
                ));
            }
            if codes.len() > 1 {
                cx.report.approximate(&c.at("status_codes"), None, "Weir's error policy matches ERROR only: traces with only OK or UNSET spans are not kept by it");
            }
            Ok(("error".into(), Node::bool(true)))
        }
        "string_attribute" | "boolean_attribute" | "numeric_attribute" => attribute(cx, &mut c, ty),
        "rate_limiting" => {
            let n = c
                .get("spans_per_second")
                .and_then(units::number)
                .ok_or("no spans_per_second")?;
            cx.report.approximate(&c.at("spans_per_second"), None, "Weir's rate counts traces per second, the Collector's spans: divide by your spans per trace");
            Ok(("rate".into(), n))
        }
        "span_count" => Err("Weir has no span-count condition".into()),
        "trace_state" => Err("Weir has no tracestate condition".into()),
        "ottl_condition" => Err("Weir has no OTTL".into()),
        "drop" => Err("Weir has no drop policy: a trace no policy keeps is dropped".into()),
        "bytes_limiting" => Err("Weir budgets traces per second, not bytes".into()),
        "" => Err("no type".into()),
        other => Err(format!("Weir has no `{other}` policy")),
    };
    if result.is_ok() {
        cx.report
            .rest(&c, "Weir's policy condition has no such setting");
    } else {
        for key in c.unread() {
            c.get(&key);
        }
    }
    result
}

fn attribute(cx: &mut Ctx, c: &mut Obj, ty: &str) -> Result<(String, Node), String> {
    let key = c.str("key").ok_or("no key")?;
    if c.bool("invert_match") == Some(true) {
        return Err(
            "Weir has no inverted match (the Collector drops what an inverted policy matches)"
                .into(),
        );
    }
    let values: Vec<String> = match ty {
        "boolean_attribute" => vec![c.str("value").ok_or("no value")?],
        "numeric_attribute" => {
            let (min, max) = (c.str("min_value"), c.str("max_value"));
            match (min, max) {
                (Some(a), Some(b)) if a == b => vec![a],
                _ => {
                    return Err(
                        "Weir's attribute policy matches listed values, not a numeric range".into(),
                    )
                }
            }
        }
        _ => {
            let values = c.strs("values");
            if c.bool("enabled_regex_matching") == Some(true) {
                let literal = |v: &String| !v.contains(|ch: char| "\\.+*?()|[]{}^$".contains(ch));
                if !values.iter().all(literal) {
                    return Err(
                        "Weir's attribute policy matches exact values, not regular expressions"
                            .into(),
                    );
                }
                cx.report.not_needed(
                    &c.at("enabled_regex_matching"),
                    "these values have no regex syntax, so Weir's exact match is the same",
                );
            }
            if c.get("cache_max_size").is_some() {
                cx.report
                    .not_needed(&c.at("cache_max_size"), "Weir matches values directly");
            }
            values
        }
    };
    let mut m = Map::default();
    m.set("key", Node::str(&key));
    m.set("values", Node::strs(&values));
    Ok(("attribute".into(), Node::Map(m)))
}

/// `and` of a condition and a rate limit is that condition with a budget; other conjunctions have no
/// Weir equivalent (listing the sub-policies as alternatives would keep more than they did).
fn and(cx: &mut Ctx, p: &mut Obj, name: &str, out: &mut Vec<Map>) {
    let mut a = p.child("and");
    let subs = a.seq("and_sub_policy");
    let is_rate = |v: &Value| v.get("type").and_then(text).as_deref() == Some("rate_limiting");
    if subs.len() == 2 && subs.iter().filter(|v| is_rate(v)).count() == 1 {
        let (rate, cond) = if is_rate(&subs[0]) {
            (&subs[0], &subs[1])
        } else {
            (&subs[1], &subs[0])
        };
        let spans = rate
            .get("rate_limiting")
            .and_then(|r| r.get("spans_per_second"))
            .and_then(text);
        let mut c = Obj::new(format!("{}.and_sub_policy[]", a.path), Some(cond));
        let ty = c.str("type").unwrap_or_default();
        if let (Some(spans), Ok((key, node))) = (
            spans.and_then(|s| s.parse::<f64>().ok()),
            condition(cx, &mut c, &ty),
        ) {
            let mut m = Map::default();
            m.set("name", Node::str(name));
            m.set(&key, node);
            m.set("traces_per_second", Node::raw(units::float(spans)));
            out.push(m);
            c.get("name");
            cx.report.approximate(&p.path, Some(&format!("pipeline.sample.tail.policies[] `{name}`")), format!("{ty} with a budget of traces_per_second {spans} (the Collector counted spans per second: divide by your spans per trace)"));
            cx.report
                .rest(&c, "Weir's policy condition has no such setting");
            return;
        }
    }
    cx.report.unsupported(&p.path, format!("`{name}` (and): Weir's policies are alternatives, so a conjunction has none (listing its parts would keep more); traces only it kept are dropped by Weir"));
    for key in p.unread() {
        p.get(&key);
    }
}

/// A composite's sub-policies, in `policy_order`, each with its share of the span budget as a
/// traces-per-second budget: over it a trace falls through to the next policy, as in the Collector.
fn composite(cx: &mut Ctx, p: &mut Obj, name: &str, out: &mut Vec<Map>) {
    let mut c = p.child("composite");
    let total = c
        .get("max_total_spans_per_second")
        .and_then(text)
        .and_then(|t| t.parse::<f64>().ok());
    let order = c.strs("policy_order");
    let allocation: Vec<(String, f64)> = c
        .seq("rate_allocation")
        .iter()
        .filter_map(|a| {
            Some((
                a.get("policy").and_then(text)?,
                a.get("percent").and_then(text)?.parse().ok()?,
            ))
        })
        .collect();
    let mut subs: Vec<(usize, &Value)> = c.seq("composite_sub_policy").iter().enumerate().collect();
    let rank = |v: &Value| {
        let n = v.get("name").and_then(text).unwrap_or_default();
        order.iter().position(|o| *o == n).unwrap_or(order.len())
    };
    subs.sort_by_key(|(_, v)| rank(v));
    for (i, sub) in subs {
        let mut s = Obj::new(format!("{}.composite_sub_policy[{i}]", c.path), Some(sub));
        let sub_name = sub.get("name").and_then(text).unwrap_or_default();
        let budget = allocation
            .iter()
            .find(|(n, _)| *n == sub_name)
            .and_then(|(_, pct)| total.map(|t| t * pct / 100.0));
        let before = out.len();
        policy(cx, &mut s, out, budget);
        for m in &mut out[before..] {
            m.set("name", Node::str(format!("{name}-{sub_name}")));
        }
    }
    cx.report.approximate(&p.path, Some("pipeline.sample.tail.policies"), format!("`{name}` (composite): its sub-policies in policy_order, each with traces_per_second from rate_allocation × max_total_spans_per_second (spans in the Collector, traces in Weir)"));
    cx.report
        .rest(&c, "Weir's policies have no such composite setting");
}
