//! `${VAR}` and `${VAR:-default}` substitution, applied to the config text before YAML parsing so that a
//! variable can stand for any scalar (a port, a size, a path) and line numbers in errors stay true.
//!
//! `$$` writes a literal `$`. Whole-line comments are left alone, so a commented-out `${UNSET}` is no error.

use std::fmt;

/// A variable that is referenced without a default and is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    pub name: String,
    pub line: usize,
}

impl fmt::Display for MissingVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: environment variable `{}` is not set and has no default (write `${{{}:-default}}`)",
            self.line, self.name, self.name
        )
    }
}

/// Substitutes variables using `lookup`; `std::env::var` in production, a map in tests.
pub fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    for (idx, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        substitute_line(line, idx + 1, &lookup, &mut out)?;
    }
    Ok(out)
}

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    Missing(MissingVar),
    Malformed { line: usize, reason: String },
}

impl fmt::Display for SubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubstError::Missing(m) => m.fmt(f),
            SubstError::Malformed { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

fn substitute_line(
    line: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), SubstError> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') if quote.is_none() => quote = Some(q),
            q if Some(q) == quote => quote = None,
            // A YAML comment starts at a `#` after white space, outside quotes: leave the rest alone.
            b'#' if quote.is_none() && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => break,
            b'$' if bytes.get(i + 1) == Some(&b'$') => {
                out.push_str(&line[copied..i]);
                out.push('$');
                i += 2;
                copied = i;
                continue;
            }
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                out.push_str(&line[copied..i]);
                let body = &line[i + 2..];
                let Some(end) = body.find('}') else {
                    return Err(SubstError::Malformed {
                        line: line_no,
                        reason: "unterminated `${` (missing `}`)".into(),
                    });
                };
                out.push_str(&expand(&body[..end], line_no, lookup)?);
                i += 2 + end + 1;
                copied = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&line[copied..]);
    Ok(())
}

fn expand(
    expr: &str,
    line_no: usize,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let (name, default) = match expr.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (expr, None),
    };
    if !is_var_name(name) {
        return Err(SubstError::Malformed {
            line: line_no,
            reason: format!("`${{{expr}}}`: `{name}` is not a valid variable name"),
        });
    }
    // Like POSIX `:-`, an empty variable counts as unset when a default is given.
    let value = match (
        lookup(name).filter(|v| default.is_none() || !v.is_empty()),
        default,
    ) {
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(SubstError::Missing(MissingVar {
                name: name.to_string(),
                line: line_no,
            }))
        }
    };
    // A newline would change the YAML's structure and shift every line number after it.
    if value.contains('\n') {
        return Err(SubstError::Malformed {
            line: line_no,
            reason: format!("the value of `{name}` contains a newline"),
        });
    }
    Ok(value)
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("9000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_set_default_and_escape() {
        let got = substitute("a: ${PORT}\nb: ${NOPE:-x y}\nc: $${PORT} $5\n", env).unwrap();
        assert_eq!(got, "a: 9000\nb: x y\nc: ${PORT} $5\n");
    }

    #[test]
    fn empty_value_falls_back_to_default_but_not_without_one() {
        assert_eq!(substitute("${EMPTY:-d}", env).unwrap(), "d");
        assert_eq!(substitute("[${EMPTY}]", env).unwrap(), "[]");
    }

    #[test]
    fn missing_variable_names_itself_and_line() {
        let err = substitute("a: 1\nb: ${NOPE}\n", env).unwrap_err();
        assert_eq!(
            err,
            SubstError::Missing(MissingVar {
                name: "NOPE".into(),
                line: 2
            })
        );
        assert!(err.to_string().contains("NOPE"));
    }

    #[test]
    fn comments_are_not_substituted() {
        assert_eq!(substitute("  # ${NOPE}\n", env).unwrap(), "  # ${NOPE}\n");
        assert_eq!(
            substitute("port: ${PORT} # or ${NOPE}\n", env).unwrap(),
            "port: 9000 # or ${NOPE}\n"
        );
        assert_eq!(
            substitute("tag: \"a #1 ${PORT}\" # ${NOPE}", env).unwrap(),
            "tag: \"a #1 9000\" # ${NOPE}"
        );
        assert_eq!(substitute("url: x#y${PORT}", env).unwrap(), "url: x#y9000");
    }

    #[test]
    fn values_with_newlines_are_refused() {
        let lookup = |_: &str| Some("a\nb".to_string());
        assert!(matches!(
            substitute("v: ${X}", lookup),
            Err(SubstError::Malformed { line: 1, .. })
        ));
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(matches!(
            substitute("${PORT", env),
            Err(SubstError::Malformed { line: 1, .. })
        ));
        assert!(matches!(
            substitute("${1X}", env),
            Err(SubstError::Malformed { .. })
        ));
    }
}
