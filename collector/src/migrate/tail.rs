//! `tail_sampling` → `pipeline.sample.tail`. The Collector drops a trace when one of its `drop`
//! policies matches, and otherwise keeps it when any policy says so; Weir's policies are tried in
//! order and the first match decides, so drop policies go first and the keep policies follow in their
//! order: the same sets. An `invert_match` attribute policy is a plain keep policy matching traces
//! without the value, as in the Collector since its inverted decisions were removed
//! (`disableinvertdecisions`, default-on around v0.144, gone since June 2026): Weir's `invert: true`,
//! in its place. A keep policy with no Weir equivalent is left out, and that means fewer traces kept;
//! a drop policy left out, more: the report says so for each one.

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

/// Moves the line just reported to `mark`: a policy's line before those of its parts.
fn lead(cx: &mut Ctx, mark: usize) {
    if let Some(line) = cx.report.entries.pop() {
        cx.report
            .entries
            .insert(mark.min(cx.report.entries.len()), line);
    }
}

/// Where a policy stands: in the top-level list, inside a composite (a policy of its own, with a
/// budget), or inside `and` / `drop` (a condition only: no name, budget or drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    Composite,
    Condition,
}

/// A Weir condition: its key and value, and what the report line adds.
struct Cond {
    key: String,
    node: Node,
    note: String,
}

impl Cond {
    fn new(key: &str, node: Node) -> Cond {
        Cond {
            key: key.into(),
            node,
            note: String::new(),
        }
    }

    fn note(mut self, note: impl Into<String>) -> Cond {
        self.note = note.into();
        self
    }

    fn entry(self) -> Node {
        let mut m = Map::default();
        m.set(&self.key, self.node);
        Node::Map(m)
    }
}

/// A translated policy: the Weir policy, whether it behaves differently, and the report note.
type Translated = Result<(Map, bool, String), String>;

/// One policy (a composite yields several); `budget`: traces per second from a composite's allocation.
fn policy(cx: &mut Ctx, p: &mut Obj, out: &mut Vec<Map>, budget: Option<f64>, place: Place) {
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

/// The Weir condition of a simple policy, or why there is none.
fn condition(cx: &mut Ctx, p: &mut Obj, ty: &str, place: Place) -> Result<Cond, String> {
    let mut c = p.child(ty);
    let result = match ty {
        "always_sample" => Ok(Cond::new("probability", Node::raw("1.0"))),
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
            Ok(Cond::new("latency", Node::str(format!("{ms}ms"))))
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
            Ok(Cond::new("probability", Node::raw(units::float(prob))))
        }
        "status_code" => status_code(&mut c),
        "string_attribute" | "boolean_attribute" | "numeric_attribute" => {
            attribute(cx, &mut c, ty, place)
        }
        "rate_limiting" if place == Place::Condition => {
            Err("Weir's conditions carry no budget (a rate limit belongs to a whole policy)".into())
        }
        "rate_limiting" => {
            let n = c
                .get("spans_per_second")
                .and_then(units::number)
                .ok_or("no spans_per_second")?;
            cx.report.approximate(&c.at("spans_per_second"), None, "Weir's rate counts traces per second, the Collector's spans: divide by your spans per trace");
            Ok(Cond::new("rate", n))
        }
        "span_count" => span_count(&mut c),
        "trace_state" => Err("Weir has no tracestate condition".into()),
        "ottl_condition" => Err("Weir has no OTTL".into()),
        "drop" => Err(
            "Weir's drop policies stand in the top-level list, not inside another policy".into(),
        ),
        "and" | "composite" => Err(format!(
            "Weir does not nest `{ty}` here (nor does the Collector)"
        )),
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

/// `status_codes` (`OK`, `ERROR`, `UNSET`, as the Collector spells them) → `status_code`.
fn status_code(c: &mut Obj) -> Result<Cond, String> {
    let listed = c.strs("status_codes");
    if listed.is_empty() {
        return Err("no status_codes (the Collector refuses this too)".into());
    }
    let mut codes: Vec<&str> = Vec::new();
    for s in &listed {
        let code = ["ok", "error", "unset"]
            .into_iter()
            .find(|k| s.eq_ignore_ascii_case(k))
            .ok_or_else(|| {
                format!("unknown status code `{s}` (the Collector takes OK, ERROR and UNSET)")
            })?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(Cond::new("status_code", Node::strs(&codes))
        .note(": any span with one of these status codes, as in the Collector"))
}

/// `min_spans` / `max_spans` → `span_count`: inclusive; the Collector's `max_spans: 0` (its default)
/// is no maximum.
fn span_count(c: &mut Obj) -> Result<Cond, String> {
    let mut whole = |k: &str| -> Result<Option<u64>, String> {
        match c.get(k) {
            None => Ok(None),
            Some(v) => text(v)
                .and_then(|t| t.parse::<i64>().ok())
                .map(|n| Some(n.max(0) as u64))
                .ok_or(format!("{k} is not a whole number")),
        }
    };
    let min = whole("min_spans")?;
    let max = whole("max_spans")?.filter(|m| *m != 0);
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(format!(
                "min_spans {lo} over max_spans {hi} matches no trace"
            ));
        }
    }
    let mut m = Map::default();
    m.set("min", Node::raw(min.unwrap_or(0).to_string()));
    if let Some(hi) = max {
        m.set("max", Node::raw(hi.to_string()));
    }
    Ok(Cond::new("span_count", Node::Map(m)).note(
        ": the trace's span count, bounds inclusive, and max_spans 0 or absent is no maximum, as in the Collector",
    ))
}

const STRING_NOTE: &str = ": span or resource attributes, as in the Collector (Weir also compares int, double and bool values, by their text, where the Collector reads string values only)";

const INVERTED_NOTE: &str = "; invert_match → invert: true, keeping every trace in which no span or resource carries a matching value, in its place among the keep policies: the Collector's plain inverted match since processor.tailsamplingprocessor.disableinvertdecisions (default-on around v0.144, and the only behaviour since the gate was removed, #48976). Collector releases before that gate dropped a trace carrying the value whatever other policies said: for that behaviour, write drop: true on the plain match instead";

fn attribute(cx: &mut Ctx, c: &mut Obj, ty: &str, place: Place) -> Result<Cond, String> {
    let key = c.str("key").filter(|k| !k.is_empty()).ok_or("no key")?;
    let invert = c.bool("invert_match") == Some(true);
    let mut m = Map::default();
    m.set("key", Node::str(&key));
    let (weir_key, note) = match ty {
        "numeric_attribute" => {
            if invert {
                return Err("Weir's numeric_attribute has no inverted form".into());
            }
            let min = bound(c, "min_value")?;
            let max = bound(c, "max_value")?;
            if let (Some((_, Some(lo))), Some((_, Some(hi)))) = (&min, &max) {
                if lo > hi {
                    return Err("min_value exceeds max_value (the Collector refuses this)".into());
                }
            }
            let mut note = String::from(": the bounds inclusive, on span or resource attributes, as in the Collector; Weir also matches double values, where the Collector reads int values only (a double counting as 0)");
            match (&min, &max) {
                (None, None) => {
                    return Err(
                        "neither min_value nor max_value (the Collector refuses this)".into(),
                    )
                }
                (None, Some(_)) | (Some(_), None) => {
                    let open = if min.is_none() {
                        "min_value"
                    } else {
                        "max_value"
                    };
                    note.push_str(&format!("; the absent {open} leaves that side open, as in the Collector since July 2025 (#41567; before, an absent bound was read as 0)"));
                }
                _ => {}
            }
            for (k, b) in [("min", min), ("max", max)] {
                if let Some((n, _)) = b {
                    m.set(k, n);
                }
            }
            ("numeric_attribute", note)
        }
        "boolean_attribute" => {
            m.set("values", Node::strs(&[c.str("value").ok_or("no value")?]));
            ("attribute", String::new())
        }
        _ => {
            // The Collector ignores empty values.
            let values: Vec<String> = c
                .strs("values")
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect();
            if values.is_empty() {
                return Err(
                    "no values, so the Collector's policy matches no trace (inverted, every trace)"
                        .into(),
                );
            }
            if c.get("cache_max_size").is_some() {
                cx.report.not_needed(
                    &c.at("cache_max_size"),
                    "Weir compiles the regex once and matches values directly",
                );
            }
            if c.bool("enabled_regex_matching") == Some(true) {
                let re = regex_of(&values)?;
                let classes = unicode_classes(&re);
                let note = format!("`{re}`: the Collector's regexes are unanchored (Go's MatchString finds one anywhere in the value), as Weir's regex is; several become one alternation, each in a group of its own so its anchors stay its own");
                let weir = "pipeline.sample.tail.policies[].attribute.regex";
                if classes.is_empty() {
                    cx.report.translated(
                        &c.at("enabled_regex_matching"),
                        weir,
                        format!("{note}; Go's RE2 syntax and Rust's regex read these the same"),
                    );
                } else {
                    cx.report.approximate(&c.at("enabled_regex_matching"), Some(weir), format!("{note}; but {} are ASCII-only in Go's regexp and Unicode-aware in Rust's, so non-ASCII digits, letters or spaces match too (write [0-9], [0-9A-Za-z_], (?-u:\\b) for Go's meaning)", classes.join(", ")));
                }
                m.set("regex", Node::str(&re));
            } else {
                m.set("values", Node::strs(&values));
            }
            ("attribute", STRING_NOTE.to_string())
        }
    };
    if invert {
        m.set("invert", Node::bool(true));
    }
    let mut cond = Cond::new(weir_key, Node::Map(m)).note(note);
    if invert && place != Place::Top {
        cond.note.push_str("; invert_match → invert: true, holding when no span or resource carries a matching value, as the Collector's inverted match inside and, drop and composite");
    } else if invert {
        cond.note.push_str(INVERTED_NOTE);
    }
    Ok(cond)
}

/// A numeric bound, as Weir writes it and as a number when it is one (not a variable).
fn bound(c: &mut Obj, key: &str) -> Result<Option<(Node, Option<f64>)>, String> {
    let Some(v) = c.get(key) else {
        return Ok(None);
    };
    let n = units::number(v).ok_or(format!("{key} is not a number"))?;
    Ok(Some((n, text(v).and_then(|t| t.parse().ok()))))
}

/// The Collector's list of regexes as one Rust regex. Each is unanchored there (Go's `MatchString`
/// finds it anywhere in the value) as in Weir, so they join as alternatives, each in a group of its
/// own so that its `^`/`$` anchor only it.
fn regex_of(values: &[String]) -> Result<String, String> {
    for v in values {
        if let Err(e) = regex::Regex::new(v) {
            return Err(format!(
                "`{v}` is not a regular expression Weir reads ({})",
                e.to_string().lines().last().unwrap_or("")
            ));
        }
    }
    Ok(match values {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|v| format!("(?:{v})"))
            .collect::<Vec<_>>()
            .join("|"),
    })
}

/// The Perl classes and word boundaries in a regex: ASCII in Go, Unicode in Rust.
fn unicode_classes(re: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut chars = re.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            continue;
        }
        if let Some(n) = chars.next().filter(|n| "dDwWsSbB".contains(*n)) {
            let class = format!("\\{n}");
            if !found.contains(&class) {
                found.push(class);
            }
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_tail_regexes_join_as_grouped_alternatives() {
        let one = regex_of(&["^/health".into()]).unwrap();
        assert_eq!(one, "^/health");
        let re = regex_of(&[r"\/health".into(), "metrics$".into()]).unwrap();
        assert_eq!(re, r"(?:\/health)|(?:metrics$)");
        let re = regex::Regex::new(&re).unwrap();
        assert!(
            re.is_match("/v1/health/live"),
            "unanchored, like Go's MatchString"
        );
        assert!(re.is_match("/internal/metrics"));
        assert!(
            !re.is_match("/metrics/x"),
            "`$` anchors only its own alternative"
        );
        // Go reads `\Q…\E` and octal escapes; Rust's regex does not, so the policy is reported.
        assert!(regex_of(&[r"\Q*\E".into()]).is_err());
    }

    #[test]
    fn migrate_tail_finds_perl_classes_that_differ_from_go() {
        assert_eq!(unicode_classes(r"^/v\d+/\w+\b"), [r"\d", r"\w", r"\b"]);
        assert!(
            unicode_classes(r"\\d[0-9]\.").is_empty(),
            "an escaped backslash, then d"
        );
    }
}
