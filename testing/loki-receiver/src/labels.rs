//! Loki's label-set grammar (Prometheus `ParseMetric`): `{name="value", …}`, names
//! `[a-zA-Z_][a-zA-Z0-9_]*` or quoted, values in `"…"`, `'…'` or backticks with Go escapes, optional
//! trailing comma, `""` and `{}` empty. Empty values are dropped; labels come back sorted.

pub type Labels = Vec<(String, String)>;

pub fn parse(input: &str) -> Result<Labels, String> {
    let s: Vec<char> = input.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    if i == s.len() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // An optional metric name becomes __name__.
    if s[i] != '{' {
        let start = i;
        while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_' || s[i] == ':') {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "1:{}: parse error: unexpected character: {:?}",
                i + 1,
                s[i]
            ));
        }
        out.push(("__name__".to_string(), s[start..i].iter().collect()));
        skip_ws(&mut i);
        if i == s.len() {
            return Ok(finish(out));
        }
    }
    if s[i] != '{' {
        return Err(format!(
            "1:{}: parse error: unexpected character: {:?}",
            i + 1,
            s[i]
        ));
    }
    i += 1;
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            return Err(format!(
                "1:{}: parse error: unexpected end of input inside braces",
                i + 1
            ));
        }
        if s[i] == '}' {
            i += 1;
            break;
        }
        let name = if matches!(s[i], '"' | '\'' | '`') {
            string(&s, &mut i)?
        } else {
            let start = i;
            if !(s[i].is_ascii_alphabetic() || s[i] == '_') {
                return Err(format!(
                    "1:{}: parse error: unexpected character inside braces: {:?}",
                    i + 1,
                    s[i]
                ));
            }
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            s[start..i].iter().collect()
        };
        skip_ws(&mut i);
        if i >= s.len() || s[i] != '=' {
            return Err(format!(
                "1:{}: parse error: unexpected character inside braces, expected \"=\"",
                i + 1
            ));
        }
        i += 1;
        skip_ws(&mut i);
        if i >= s.len() || !matches!(s[i], '"' | '\'' | '`') {
            return Err(format!("1:{}: parse error: unexpected label value", i + 1));
        }
        let value = string(&s, &mut i)?;
        out.push((name, value));
        skip_ws(&mut i);
        if i < s.len() && s[i] == ',' {
            i += 1;
            continue;
        }
        skip_ws(&mut i);
        if i < s.len() && s[i] == '}' {
            i += 1;
            break;
        }
        return Err(format!(
            "1:{}: parse error: unexpected character inside braces",
            i + 1
        ));
    }
    skip_ws(&mut i);
    if i != s.len() {
        return Err(format!(
            "1:{}: parse error: unexpected characters after label set",
            i + 1
        ));
    }
    Ok(finish(out))
}

fn finish(mut labels: Labels) -> Labels {
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    labels
}

/// A quoted string starting at `s[*i]`, with Go escapes (none inside backticks).
fn string(s: &[char], i: &mut usize) -> Result<String, String> {
    let quote = s[*i];
    let open = *i;
    *i += 1;
    let mut out = String::new();
    while *i < s.len() {
        let c = s[*i];
        *i += 1;
        if c == quote {
            return Ok(out);
        }
        if c == '\n' && quote != '`' {
            break;
        }
        if c != '\\' || quote == '`' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(*i) else { break };
        *i += 1;
        let digits = |i: &mut usize, n: usize, radix: u32| -> Result<u32, String> {
            let text: String = s
                .get(*i..*i + n)
                .ok_or("unterminated escape")?
                .iter()
                .collect();
            *i += n;
            u32::from_str_radix(&text, radix).map_err(|_| format!("invalid escape \\{e}{text}"))
        };
        let ch = match e {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'x' => char::from_u32(digits(i, 2, 16)?).ok_or("invalid \\x escape")?,
            'u' => char::from_u32(digits(i, 4, 16)?).ok_or("invalid \\u escape")?,
            'U' => char::from_u32(digits(i, 8, 16)?).ok_or("invalid \\U escape")?,
            '0'..='7' => {
                *i -= 1;
                char::from_u32(digits(i, 3, 8)?).ok_or("invalid octal escape")?
            }
            other => {
                return Err(format!(
                    "1:{}: parse error: unknown escape sequence \\{other}",
                    *i
                ))
            }
        };
        out.push(ch);
    }
    Err(format!(
        "1:{}: parse error: unterminated quoted string",
        open + 1
    ))
}

/// `{a="1", b="2"}`, as Loki re-serialises labels.
pub fn render(labels: &Labels) -> String {
    let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", body.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar_matches_loki() {
        assert_eq!(
            parse("{b=\"2\", a=\"1\",}").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("{}").unwrap(), vec![]);
        assert_eq!(
            parse("{a=\"\", b=\"x\"}").unwrap(),
            vec![("b".into(), "x".into())]
        );
        assert_eq!(
            parse("{a=\"x\\ny\\x1b\\u00e9\"}").unwrap()[0].1,
            "x\ny\x1bé"
        );
        assert_eq!(
            parse("{\"service.name\"=\"x\"}").unwrap()[0].0,
            "service.name"
        );
        assert_eq!(
            parse("foo{a='1'}").unwrap()[0],
            ("__name__".into(), "foo".into())
        );
        assert!(parse("{ab\"").unwrap_err().contains("parse error"));
        assert!(parse("{service.name=\"x\"}")
            .unwrap_err()
            .contains("unexpected character inside braces"));
        assert!(parse("{a=\"x\ny\"}")
            .unwrap_err()
            .contains("unterminated quoted string"));
    }
}
