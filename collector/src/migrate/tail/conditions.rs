//! One Collector policy type → one Weir condition (or why there is none), and the report notes on
//! where the two differ.

use super::attributes::attribute;
use super::Place;
use crate::migrate::report::{text, Obj};
use crate::migrate::yaml::{Map, Node};
use crate::migrate::{units, Ctx};

/// A Weir condition: its key and value, and what the report line adds.
pub(super) struct Cond {
    pub(super) key: String,
    pub(super) node: Node,
    pub(super) note: String,
}

impl Cond {
    pub(super) fn new(key: &str, node: Node) -> Cond {
        Cond {
            key: key.into(),
            node,
            note: String::new(),
        }
    }

    pub(super) fn note(mut self, note: impl Into<String>) -> Cond {
        self.note = note.into();
        self
    }

    pub(super) fn entry(self) -> Node {
        let mut m = Map::default();
        m.set(&self.key, self.node);
        Node::Map(m)
    }
}

/// The Weir condition of a simple policy, or why there is none.
pub(super) fn condition(cx: &mut Ctx, p: &mut Obj, ty: &str, place: Place) -> Result<Cond, String> {
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
