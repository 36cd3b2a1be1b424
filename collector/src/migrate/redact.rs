//! `redaction`, `attributes` and `resource` → `pipeline.redact`. The Collector's redaction masks only
//! what it is told to, so Weir's built-in detectors (which turn on with `enabled: true`) are written
//! switched off: the output redacts what the input did, and turning a detector on is one line.
//! Attribute deletes and hashes become key rules; inserts of Loki's label hints become the Loki
//! exporter's labels; other attribute edits have no equivalent.

use super::pipelines::{names, Role};
use super::report::Obj;
use super::yaml::{Map, Node};
use super::Ctx;

/// What the redaction-family processors asked for, merged.
#[derive(Debug, Default)]
pub struct RedactOut {
    pub allow: Option<Vec<String>>,
    pub keys: Vec<(String, &'static str)>,
    pub patterns: Vec<(String, String)>,
    pub summary: Option<String>,
    pub hash: bool,
}

/// Loki label hints (`loki.resource.labels`, …) a processor sets for the Loki exporter.
#[derive(Debug, Default, Clone)]
pub struct LokiHints {
    pub resource_labels: Option<Vec<String>>,
    pub attribute_labels: Option<Vec<String>>,
    pub format: Option<String>,
    pub tenant_attribute: Option<String>,
}

const DETECTORS: [&str; 11] = [
    "credit_card",
    "email",
    "ipv4",
    "ipv6",
    "jwt",
    "credentials",
    "aws_access_key",
    "secret_token",
    "secret_assignment",
    "us_ssn",
    "iban",
];

pub fn redaction(cx: &mut Ctx, id: &str, o: &mut Obj) {
    scope_note(cx, id, &o.path);
    let allow_all = o.bool("allow_all_keys").unwrap_or(false);
    let allowed = o.strs("allowed_keys");
    if allow_all {
        cx.report.translated(
            &o.at("allow_all_keys"),
            "pipeline.redact.allow_keys",
            "true: unset, every key may survive",
        );
        if o.has("allowed_keys") {
            cx.report
                .not_needed(&o.at("allowed_keys"), "allow_all_keys is true");
        }
    } else if cx.redact.allow.is_some() {
        cx.report.unsupported(
            &o.at("allowed_keys"),
            "Weir has one allowlist; the first redaction processor's is used",
        );
    } else {
        cx.redact.allow = Some(allowed.clone());
        let what = if allowed.is_empty() {
            "empty: every attribute is dropped, as the Collector did".to_string()
        } else {
            allowed.join(", ")
        };
        cx.report.approximate(
            &o.at("allowed_keys"),
            Some("pipeline.redact.allow_keys"),
            format!("{what} (allow_all_keys is false); Weir's allowlist covers resource attributes too, so list service.name and the other resource keys you keep"),
        );
    }
    for (i, re) in o.strs("blocked_values").into_iter().enumerate() {
        let path = format!("{}[{i}]", o.at("blocked_values"));
        match check_regex(&re) {
            Ok(()) => {
                let name = format!("{}-{}", super::name_part(id).replace('/', "-"), i + 1);
                cx.report.translated(
                    &path,
                    "pipeline.redact.patterns",
                    format!("`{name}`, masked as ****; Weir scans log bodies too"),
                );
                cx.redact.patterns.push((name, re));
            }
            Err(e) => cx
                .report
                .unsupported(&path, format!("{e}: not written, so Weir does not mask it")),
        }
    }
    for (i, re) in o.strs("blocked_key_patterns").into_iter().enumerate() {
        let path = format!("{}[{i}]", o.at("blocked_key_patterns"));
        match glob(&re) {
            Some(g) => {
                cx.report.translated(&path, "pipeline.redact.keys", format!("`{g}` (a glob, case-insensitive), action mask"));
                cx.redact.keys.push((g, "mask"));
            }
            None => cx.report.unsupported(&path, "Weir's key rules are globs (`*password*`), not regular expressions: write it as one"),
        }
    }
    if o.get("ignored_keys").is_some() {
        cx.report.unsupported(
            &o.at("ignored_keys"),
            "Weir scans every attribute that survives the allowlist; none is exempt",
        );
    }
    if o.get("allowed_values").is_some() {
        cx.report.unsupported(
            &o.at("allowed_values"),
            "Weir has no exceptions to its patterns: narrow the pattern instead",
        );
    }
    if o.get("hash_function").is_some() {
        cx.report.unsupported(&o.at("hash_function"), "Weir's patterns mask; its `hash` action is a keyed HMAC-SHA-256 (pipeline.redact.hash.key_env), not an unkeyed digest");
    }
    match o.str("summary").as_deref() {
        None => {}
        Some("silent") => cx.report.not_needed(
            &o.at("summary"),
            "Weir adds no summary unless summary_attribute is set",
        ),
        Some(_) => {
            cx.redact.summary = Some("redaction.masked.count".into());
            cx.report.approximate(&o.at("summary"), Some("pipeline.redact.summary_attribute"), "redaction.masked.count: Weir writes one count of redactions, not the Collector's lists of keys");
        }
    }
    if o.get("redact_all_types").is_some() {
        cx.report.not_needed(
            &o.at("redact_all_types"),
            "Weir scans string values, including those nested in maps and arrays",
        );
    }
    cx.report.translated(
        &o.path,
        "pipeline.redact",
        "enabled, with Weir's built-in detectors switched off to match",
    );
}

pub fn attributes(cx: &mut Ctx, id: &str, o: &mut Obj) {
    let resource = super::kind(id) == "resource";
    let key = if resource { "attributes" } else { "actions" };
    let mut hints = LokiHints::default();
    let mut redacting = false;
    for (i, a) in o.seq(key).iter().enumerate() {
        let mut a = Obj::new(format!("{}[{i}]", o.at(key)), Some(a));
        let action = a.str("action").unwrap_or_default();
        let Some(k) = a.str("key") else {
            match (action.as_str(), a.str("pattern")) {
                ("delete", Some(p)) => match glob(&p) {
                    Some(g) => {
                        cx.report.translated(
                            &a.path,
                            "pipeline.redact.keys",
                            format!("`{g}`, action drop"),
                        );
                        cx.redact.keys.push((g, "drop"));
                        redacting = true;
                    }
                    None => cx.report.unsupported(
                        &a.path,
                        "Weir's key rules are globs, not regular expressions",
                    ),
                },
                _ => cx.report.unsupported(&a.path, "no key"),
            }
            cx.report.rest(&a, "");
            continue;
        };
        let value = a.str("value").unwrap_or_default();
        let list = || {
            value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        match (action.as_str(), k.as_str()) {
            ("insert" | "upsert" | "update", "loki.resource.labels") => {
                hints.resource_labels = Some(list())
            }
            ("insert" | "upsert" | "update", "loki.attribute.labels") => {
                hints.attribute_labels = Some(list())
            }
            ("insert" | "upsert" | "update", "loki.format") => hints.format = Some(value.clone()),
            ("insert" | "upsert" | "update", "loki.tenant") => {
                hints.tenant_attribute = Some(value.clone())
            }
            ("delete", _) => {
                cx.report.translated(
                    &a.path,
                    "pipeline.redact.keys",
                    format!(
                        "`{k}`, action drop{}",
                        if resource {
                            ""
                        } else {
                            " (on resource attributes too)"
                        }
                    ),
                );
                cx.redact.keys.push((k.clone(), "drop"));
                redacting = true;
            }
            ("hash", _) => {
                cx.report.approximate(&a.path, Some("pipeline.redact.keys"), format!("`{k}`, action hash: a keyed HMAC-SHA-256 with the key in WEIR_REDACT_KEY (set it), so values differ from the Collector's SHA-256 but still correlate"));
                cx.redact.keys.push((k.clone(), "hash"));
                cx.redact.hash = true;
                redacting = true;
            }
            _ => {
                cx.report.unsupported(&a.path, format!("`{action}` of `{k}`: Weir does not add or change attributes; set them in the SDK (OTEL_RESOURCE_ATTRIBUTES) or before Weir"));
                for key in a.unread() {
                    a.get(&key);
                }
                continue;
            }
        }
        if k.starts_with("loki.") && action != "delete" {
            cx.report.translated(
                &a.path,
                "exporters.NAME.loki (the Loki exporters of its pipelines)",
                format!("Loki hint {k}: {value}"),
            );
        }
        a.get("value");
        cx.report
            .rest(&a, "Weir's key rules have key and action only");
    }
    for key in ["include", "exclude"] {
        if o.get(key).is_some() {
            cx.report.unsupported(
                &o.at(key),
                "Weir's key rules apply to every record of every signal; no match conditions",
            );
        }
    }
    if redacting {
        scope_note(cx, id, &o.path);
    }
    cx.loki.insert(id.to_string(), hints);
}

/// Weir's redaction covers every signal; a processor in only some pipelines did not.
fn scope_note(cx: &mut Ctx, id: &str, path: &str) {
    let used = cx.pipes.signals(Role::Processor, id);
    let all = cx.pipes.all_signals();
    if used != all {
        cx.report.approximate(
            path,
            None,
            format!(
                "in {} pipelines only; Weir's redaction covers {}",
                names(&used),
                names(&all)
            ),
        );
    }
}

fn check_regex(re: &str) -> Result<(), String> {
    match regex::Regex::new(re) {
        Ok(r) if r.is_match("") => Err(format!("`{re}` matches the empty string")),
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "`{re}` is not a regular expression Weir reads ({})",
            e.to_string().lines().last().unwrap_or("")
        )),
    }
}

/// A key regex as one of Weir's globs when it is only literals and `.*`: `^.*password.*$` →
/// `*password*`; an unanchored regex matches anywhere, so its glob gets `*` on both ends.
pub fn glob(re: &str) -> Option<String> {
    let re = re.strip_prefix("(?i)").unwrap_or(re);
    let (start, re) = re.strip_prefix('^').map_or((false, re), |r| (true, r));
    let (end, re) = re.strip_suffix('$').map_or((false, re), |r| (true, r));
    let mut g = String::new();
    let mut chars = re.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' if chars.peek() == Some(&'*') => {
                chars.next();
                g.push('*');
            }
            '\\' => match chars.next()? {
                e @ ('.' | '-' | '_' | '/') => g.push(e),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || "-_/:".contains(c) => g.push(c),
            _ => return None,
        }
    }
    if g.trim_matches('*').is_empty() {
        return None;
    }
    if !start && !g.starts_with('*') {
        g.insert(0, '*');
    }
    if !end && !g.ends_with('*') {
        g.push('*');
    }
    Some(g)
}

/// Writes `pipeline.redact` once every processor has been read.
pub fn finish(cx: &mut Ctx) {
    let r = std::mem::take(&mut cx.redact);
    if r.allow.is_none() && r.keys.is_empty() && r.patterns.is_empty() {
        return;
    }
    let m = cx.out.path("pipeline.redact");
    m.set("enabled", Node::bool(true));
    let mut detectors = Map::default();
    for d in DETECTORS {
        detectors.set(d, Node::str("off"));
    }
    m.set("detectors", Node::Map(detectors));
    m.comment("detectors", "The Collector's redaction has no built-in detectors: Weir's are off to match (mask, hash or drop to turn one on).");
    if let Some(allow) = r.allow {
        m.set("allow_keys", Node::strs(&allow));
    }
    if !r.keys.is_empty() {
        let rules = r.keys.iter().map(|(k, a)| {
            let mut rule = Map::default();
            rule.set("key", Node::str(k));
            rule.set("action", Node::str(*a));
            Node::Map(rule)
        });
        m.set("keys", Node::Seq(rules.collect()));
    }
    if !r.patterns.is_empty() {
        let patterns = r.patterns.iter().map(|(n, re)| {
            let mut p = Map::default();
            p.set("name", Node::str(n));
            p.set("regex", Node::str(re));
            p.set("action", Node::str("mask"));
            Node::Map(p)
        });
        m.set("patterns", Node::Seq(patterns.collect()));
    }
    if r.hash {
        let mut h = Map::default();
        h.set("key_env", Node::str("WEIR_REDACT_KEY"));
        m.set("hash", Node::Map(h));
        m.comment("hash", "The secret key for `action: hash`, in this variable (e.g. WEIR_REDACT_KEY=$(openssl rand -hex 32)).");
    }
    if let Some(s) = r.summary {
        m.set("summary_attribute", Node::str(s));
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn migrate_redact_turns_simple_key_regexes_into_globs() {
        assert_eq!(glob("^.*password.*$").as_deref(), Some("*password*"));
        assert_eq!(glob("password").as_deref(), Some("*password*"));
        assert_eq!(
            glob("^http\\.request\\.header\\.authorization$").as_deref(),
            Some("http.request.header.authorization")
        );
        assert_eq!(glob("(?i)^x-api-.*").as_deref(), Some("x-api-*"));
        assert_eq!(glob("^(token|secret)$"), None);
        assert_eq!(glob("a.b"), None);
        assert_eq!(glob(".*"), None);
    }
}
