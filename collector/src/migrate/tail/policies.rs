//! The policy list: each Collector policy → Weir policies (a composite yields several), with the
//! report line of a policy placed before those of its parts, and a policy with no equivalent left
//! out whole.

use super::conditions::{condition, Cond};
use super::Place;
use crate::migrate::report::{text, Obj};
use crate::migrate::yaml::{Map, Node};
use crate::migrate::{units, Ctx};
use serde_yaml_ng::Value;

/// Moves the line just reported to `mark`: a policy's line before those of its parts.
fn lead(cx: &mut Ctx, mark: usize) {
    if let Some(line) = cx.report.entries.pop() {
        cx.report
            .entries
            .insert(mark.min(cx.report.entries.len()), line);
    }
}

/// A translated policy: the Weir policy, whether it behaves differently, and the report note.
type Translated = Result<(Map, bool, String), String>;

/// One policy (a composite yields several); `budget`: traces per second from a composite's allocation.
pub(super) fn policy(
    cx: &mut Ctx,
    p: &mut Obj,
    out: &mut Vec<Map>,
    budget: Option<f64>,
    place: Place,
) {
    let name = p.str("name").unwrap_or_default();
    let ty = p.str("type").unwrap_or_default();
    let weir = format!("pipeline.sample.tail.policies[] `{name}`");
    let mark = cx.report.entries.len();
    let result = match ty.as_str() {
        "composite" if place == Place::Top => return composite(cx, p, &name, out),
        "and" => and(cx, p, &name, &weir, budget),
        "drop" if place == Place::Top => drop(cx, p, &name, &weir),
        _ => simple(cx, p, &ty, &name, budget, place),
    };
    match result {
        Ok((m, approximate, note)) => {
            out.push(m);
            if approximate {
                cx.report.approximate(&p.path, Some(&weir), note);
            } else {
                cx.report.translated(&p.path, &weir, note);
            }
            lead(cx, mark);
        }
        Err(why) => {
            // What its parts reported no longer applies: the policy is left out as a whole.
            cx.report.entries.truncate(mark);
            let lost = if ty == "drop" {
                "Weir keeps the traces it would have dropped (when another policy keeps them)"
            } else {
                "traces only it kept are dropped by Weir"
            };
            cx.report
                .unsupported(&p.path, format!("`{name}` ({ty}): {why}; {lost}"));
            for key in p.unread() {
                p.get(&key);
            }
        }
    }
    cx.report.rest(
        p,
        "Weir's tail policies have name, one condition, drop and traces_per_second",
    );
}

/// A policy of one condition.
fn simple(
    cx: &mut Ctx,
    p: &mut Obj,
    ty: &str,
    name: &str,
    budget: Option<f64>,
    place: Place,
) -> Translated {
    let c = condition(cx, p, ty, place)?;
    let mut m = Map::default();
    m.set("name", Node::str(name));
    let note = format!("{ty} → {}{}", c.key, c.note);
    m.set(&c.key, c.node);
    if let Some(b) = budget {
        m.set("traces_per_second", Node::raw(units::float(b)));
    }
    Ok((m, false, note))
}

/// A sub-policy of `and` or `drop`: a condition only.
fn sub_condition(cx: &mut Ctx, path: String, v: &Value, weir: &str) -> Result<Cond, String> {
    let mut s = Obj::new(path, Some(v));
    let name = s.str("name").unwrap_or_default();
    let ty = s.str("type").unwrap_or_default();
    let mark = cx.report.entries.len();
    let c = condition(cx, &mut s, &ty, Place::Condition)
        .map_err(|why| format!("sub-policy `{name}` ({ty}): {why}"))?;
    cx.report
        .translated(&s.path, weir, format!("{ty} → {}{}", c.key, c.note));
    lead(cx, mark);
    cx.report.rest(&s, "Weir's conditions have no such setting");
    Ok(c)
}

/// One condition as it is, several as `and`.
fn conjunction(m: &mut Map, mut conds: Vec<Cond>) -> String {
    if conds.len() == 1 {
        let c = conds.pop().expect("one");
        m.set(&c.key, c.node);
        return c.key;
    }
    m.set(
        "and",
        Node::Seq(conds.into_iter().map(Cond::entry).collect()),
    );
    "and".into()
}

/// `and` → Weir's `and` (every sub-policy holding, each judged on the whole trace, as in the
/// Collector). A rate limit among them is the policy's budget, in traces instead of spans.
fn and(cx: &mut Ctx, p: &mut Obj, name: &str, weir: &str, budget: Option<f64>) -> Translated {
    let mut a = p.child("and");
    let subs = a.seq("and_sub_policy");
    let is_rate = |v: &Value| v.get("type").and_then(text).as_deref() == Some("rate_limiting");
    let rates: Vec<usize> = (0..subs.len()).filter(|&i| is_rate(&subs[i])).collect();
    if rates.len() > 1 {
        return Err("more than one rate_limiting sub-policy".into());
    }
    let spans = match rates.first() {
        Some(&i) => {
            let mut r = Obj::new(format!("{}.and_sub_policy[{i}]", a.path), Some(&subs[i]));
            r.get("name");
            r.get("type");
            let mut rl = r.child("rate_limiting");
            let spans = rl
                .str("spans_per_second")
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .ok_or("its rate_limiting has no spans_per_second")?;
            cx.report.rest(
                &rl,
                "Weir's budget is a number of traces per second, bursting one second's worth",
            );
            cx.report.rest(&r, "Weir's conditions have no such setting");
            Some(spans)
        }
        None => None,
    };
    let mut conds = Vec::new();
    let mut kinds = Vec::new();
    for (i, v) in subs.iter().enumerate() {
        if rates.contains(&i) {
            continue;
        }
        kinds.push(v.get("type").and_then(text).unwrap_or_default());
        conds.push(sub_condition(
            cx,
            format!("{}.and_sub_policy[{i}]", a.path),
            v,
            weir,
        )?);
    }
    cx.report.rest(&a, "Weir's and has no such setting");
    let mut m = Map::default();
    m.set("name", Node::str(name));
    let key = if conds.is_empty() {
        let s = spans.ok_or("no and_sub_policy")?;
        m.set("rate", Node::raw(units::float(s)));
        "rate".to_string()
    } else {
        conjunction(&mut m, conds)
    };
    let tps = match (spans.filter(|_| key != "rate"), budget) {
        (Some(s), Some(b)) => Some(s.min(b)),
        (s, b) => s.or(b),
    };
    if let Some(t) = tps {
        m.set("traces_per_second", Node::raw(units::float(t)));
    }
    let what = format!("and of {} → {key}", kinds.join(", "));
    Ok(match spans {
        Some(s) => (m, true, format!("{what} with a budget of {s} (the Collector's rate_limiting counted spans per second, Weir's traces_per_second counts traces: divide by your spans per trace)")),
        None => (m, false, format!("{what}: every condition holds, each judged on the whole trace, as in the Collector")),
    })
}

/// `drop` → a drop policy, placed first by the caller: in the Collector a drop decision overrides
/// every sample decision, wherever the policy stands.
fn drop(cx: &mut Ctx, p: &mut Obj, name: &str, weir: &str) -> Translated {
    let mut d = p.child("drop");
    let subs = d.seq("drop_sub_policy");
    if subs.is_empty() {
        return Err("no drop_sub_policy".into());
    }
    let mut conds = Vec::new();
    for (i, v) in subs.iter().enumerate() {
        conds.push(sub_condition(
            cx,
            format!("{}.drop_sub_policy[{i}]", d.path),
            v,
            weir,
        )?);
    }
    cx.report.rest(&d, "Weir's drop policy has no such setting");
    let mut m = Map::default();
    m.set("name", Node::str(name));
    m.set("drop", Node::bool(true));
    let key = conjunction(&mut m, conds);
    Ok((m, false, format!("drop → drop: true with {key}, placed before every keep policy: a Collector drop decision overrides any sample decision wherever the policy stands, and in Weir the first matching policy decides")))
}

/// A composite's sub-policies, in `policy_order`, each with its share of the span budget as a
/// traces-per-second budget: over it a trace falls through to the next policy, as in the Collector.
fn composite(cx: &mut Ctx, p: &mut Obj, name: &str, out: &mut Vec<Map>) {
    let mark = cx.report.entries.len();
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
        policy(cx, &mut s, out, budget, Place::Composite);
        for m in &mut out[before..] {
            m.set("name", Node::str(format!("{name}-{sub_name}")));
        }
    }
    cx.report.approximate(&p.path, Some("pipeline.sample.tail.policies"), format!("`{name}` (composite): its sub-policies in policy_order, each with traces_per_second from rate_allocation × max_total_spans_per_second (spans in the Collector, traces in Weir)"));
    lead(cx, mark);
    cx.report
        .rest(&c, "Weir's policies have no such composite setting");
}
