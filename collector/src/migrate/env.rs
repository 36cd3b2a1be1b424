//! The Collector's config references (`${env:VAR}`, `${env:VAR:-default}`, the older bare `${VAR}`)
//! rewritten into Weir's `${VAR}` / `${VAR:-default}`, so the translated config reads the same
//! environment variables. Both expand `$$` to `$`, so it is kept as is. References to the Collector's
//! other providers (`file:`, `http:`, `yaml:` …) have no Weir equivalent: they are escaped so Weir
//! reads them as literal text, and reported.

/// A string with its references rewritten, and what could not be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub text: String,
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The reference no longer reads anything (as opposed to a `$NAME` that never did).
    pub lost: bool,
    pub text: String,
}

pub fn rewrite(s: &str) -> Rewritten {
    let mut text = String::with_capacity(s.len());
    let mut issues = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            text.push_str("$$");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                issues.push(Issue {
                    lost: true,
                    text: format!("unterminated `${{` in `{s}`: kept as literal text (`$$`)"),
                });
                text.push_str("$$");
                rest = after;
                continue;
            };
            let inner = &body[..end];
            match reference(inner) {
                Ok(weir) => text.push_str(&weir),
                Err(why) => {
                    issues.push(Issue {
                        lost: true,
                        text: why,
                    });
                    text.push_str("$${");
                    text.push_str(inner);
                    text.push('}');
                }
            }
            rest = &body[end + 1..];
        } else {
            if after.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic()) {
                issues.push(Issue {
                    lost: false,
                    text: format!("`{s}`: `$NAME` is literal text in current Collector releases (older ones expanded it) and in Weir; write `${{NAME}}` to read the variable"),
                });
            }
            text.push('$');
            rest = after;
        }
    }
    text.push_str(rest);
    Rewritten { text, issues }
}

/// One `${…}` body: `env:NAME`, `env:NAME:-default`, `NAME` or `NAME:-default`.
fn reference(inner: &str) -> Result<String, String> {
    if inner.contains('$') {
        return Err(format!(
            "`${{{inner}}}`: nested references have no Weir equivalent (Weir's default is literal text); kept as literal text"
        ));
    }
    let body = inner.strip_prefix("env:").unwrap_or(inner);
    let (name, default) = match body.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (body, None),
    };
    if is_var_name(name) {
        return Ok(match default {
            Some(d) => format!("${{{name}:-{d}}}"),
            None => format!("${{{name}}}"),
        });
    }
    let scheme = inner.split(':').next().unwrap_or("");
    if inner.contains(':') && !scheme.is_empty() && scheme != "env" {
        Err(format!(
            "`${{{inner}}}`: the Collector's `{scheme}` provider has no Weir equivalent (Weir reads environment variables only: put the value in one and write `${{VAR}}`); kept as literal text"
        ))
    } else {
        Err(format!(
            "`${{{inner}}}`: `{name}` is not a variable name; kept as literal text"
        ))
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `Some((NAME, default))` when the whole (already rewritten) string is one Weir reference.
pub fn whole_reference(weir: &str) -> Option<(&str, Option<&str>)> {
    let inner = weir.strip_prefix("${")?.strip_suffix('}')?;
    if inner.contains(['$', '{', '}']) {
        return None;
    }
    let (name, default) = match inner.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (inner, None),
    };
    is_var_name(name).then_some((name, default))
}

/// Whether a rewritten string still reads a variable.
pub fn has_reference(weir: &str) -> bool {
    weir.replace("$$", "").contains("${")
}

/// The text with every reference replaced by its default (empty without one): what the value is when
/// no variable is set, for decisions the migration has to take now (a scheme, a host, a number).
pub fn with_defaults(weir: &str) -> String {
    let mut out = String::new();
    let mut rest = weir;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let (Some(body), Some(end)) = (after.strip_prefix('{'), after.find('}')) {
            let inner = &body[..end - 1];
            out.push_str(inner.split_once(":-").map_or("", |(_, d)| d));
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        let r = rewrite(s);
        assert!(r.issues.is_empty(), "{s}: {:?}", r.issues);
        r.text
    }

    #[test]
    fn migrate_env_rewrites_collector_references_to_weir_syntax() {
        assert_eq!(ok("${env:GATEWAY}"), "${GATEWAY}");
        assert_eq!(ok("${env:GATEWAY:-gw:4317}"), "${GATEWAY:-gw:4317}");
        assert_eq!(ok("${GATEWAY}"), "${GATEWAY}");
        assert_eq!(ok("${GATEWAY:-gw.svc:4317}"), "${GATEWAY:-gw.svc:4317}");
        assert_eq!(
            ok("Bearer ${env:TOKEN} and ${env:OTHER:-}"),
            "Bearer ${TOKEN} and ${OTHER:-}"
        );
        assert_eq!(ok("${env:POD_IP}:4317"), "${POD_IP}:4317");
        assert_eq!(ok("no references"), "no references");
        assert_eq!(ok("price: $5 and $$HOME"), "price: $5 and $$HOME");
        assert_eq!(ok("^a+$"), "^a+$");
    }

    #[test]
    fn migrate_env_escapes_what_weir_cannot_read_and_says_so() {
        let r = rewrite("${file:/etc/otel/token}");
        assert_eq!(r.text, "$${file:/etc/otel/token}");
        assert!(r.issues[0].text.contains("`file` provider") && r.issues[0].lost);
        let r = rewrite("${env:A:-${env:B}}");
        assert!(r.issues[0].text.contains("nested"), "{:?}", r.issues);
        let r = rewrite("x ${oops");
        assert_eq!(r.text, "x $${oops");
        assert!(r.issues[0].text.contains("unterminated"));
        let r = rewrite("${1BAD}");
        assert_eq!(r.text, "$${1BAD}");
        let r = rewrite("$HOME/x");
        assert_eq!(r.text, "$HOME/x");
        assert!(r.issues[0].text.contains("$NAME") && !r.issues[0].lost);
    }

    #[test]
    fn migrate_env_recognises_whole_references_and_defaults() {
        assert_eq!(whole_reference("${TOKEN}"), Some(("TOKEN", None)));
        assert_eq!(whole_reference("${P:-25}"), Some(("P", Some("25"))));
        assert_eq!(whole_reference("Bearer ${TOKEN}"), None);
        assert_eq!(whole_reference("${A}${B}"), None);
        assert!(has_reference("x${A}") && !has_reference("$${A}"));
        assert_eq!(with_defaults("${H:-gw}:${P:-4317}"), "gw:4317");
        assert_eq!(with_defaults("https://${HOST}/x"), "https:///x");
        assert_eq!(with_defaults("$$5"), "$5");
    }
}
