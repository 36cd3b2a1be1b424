//! The Weir config being written: an ordered tree rendered as block YAML by hand, because a serializer
//! would reorder keys, drop the comments that say where a value came from, and quote `${VAR}`
//! references inside numbers (Weir substitutes variables in the text before parsing, so a probability
//! written as `"${P:-0.1}"` would arrive as a string).

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Map),
    Seq(Vec<Node>),
    /// A string, quoted when YAML could read it as anything else.
    Str(String),
    /// Written verbatim: numbers, booleans, and `${VAR}` references standing for them.
    Raw(String),
}

impl Node {
    pub fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }
    pub fn raw(s: impl Into<String>) -> Node {
        Node::Raw(s.into())
    }
    pub fn bool(b: bool) -> Node {
        Node::Raw(b.to_string())
    }
    pub fn strs<S: AsRef<str>>(items: &[S]) -> Node {
        Node::Seq(items.iter().map(|s| Node::str(s.as_ref())).collect())
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Pair>,
}

#[derive(Debug, Clone, PartialEq)]
struct Pair {
    key: String,
    value: Node,
    /// A comment line written above the key.
    comment: Option<String>,
}

impl Map {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key`, replacing an earlier value in place so the key keeps its position.
    pub fn set(&mut self, key: &str, value: Node) {
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value,
            None => self.entries.push(Pair {
                key: key.to_string(),
                value,
                comment: None,
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn comment(&mut self, key: &str, comment: impl Into<String>) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.comment = Some(comment.into());
        }
    }

    /// The map under `key`, created empty when absent (a scalar there is replaced).
    pub fn map(&mut self, key: &str) -> &mut Map {
        if !matches!(self.get(key), Some(Node::Map(_))) {
            self.set(key, Node::Map(Map::default()));
        }
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(Pair {
                value: Node::Map(m),
                ..
            }) => m,
            _ => unreachable!("just inserted a map under {key}"),
        }
    }

    /// The map at a dotted path such as `pipeline.sample.traces`.
    pub fn path(&mut self, dotted: &str) -> &mut Map {
        dotted.split('.').fold(self, |m, k| m.map(k))
    }

    /// Reorders the top-level keys: those in `order` first, in that order, then the rest as inserted.
    pub fn sort_by_order(&mut self, order: &[&str]) {
        let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
        self.entries.sort_by_key(|e| rank(&e.key));
    }
}

/// Renders a map as a YAML document (block style; short sequences and small maps inside sequences in
/// flow style, as Weir's own examples are written).
pub fn render(map: &Map) -> String {
    let mut out = String::new();
    block_map(map, 0, &mut out);
    out
}

fn block_map(map: &Map, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for e in &map.entries {
        if let Some(c) = &e.comment {
            for line in c.lines() {
                let _ = writeln!(out, "{pad}# {line}");
            }
        }
        let _ = write!(out, "{pad}{}:", scalar(&e.key));
        value_after_key(&e.value, indent, out);
    }
}

fn value_after_key(value: &Node, indent: usize, out: &mut String) {
    match value {
        Node::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        Node::Map(m) => {
            out.push('\n');
            block_map(m, indent + 2, out);
        }
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Seq(items) => match flow(value) {
            Some(f) if indent + f.len() < 100 && items.iter().all(is_scalar) => {
                let _ = writeln!(out, " {f}");
            }
            _ => {
                out.push('\n');
                block_seq(items, indent + 2, out);
            }
        },
        Node::Str(_) | Node::Raw(_) => {
            let _ = writeln!(out, " {}", flow(value).unwrap_or_default());
        }
    }
}

fn block_seq(items: &[Node], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        match item {
            Node::Map(m) if !m.is_empty() => match flow(item) {
                Some(f) if indent + f.len() < 100 => {
                    let _ = writeln!(out, "{pad}- {f}");
                }
                _ => {
                    // The first entry shares the dash's line; the rest line up under it.
                    let mut inner = String::new();
                    block_map(m, indent + 2, &mut inner);
                    let _ = write!(out, "{pad}- {}", &inner[indent + 2..]);
                }
            },
            _ => match flow(item) {
                Some(f) => {
                    let _ = writeln!(out, "{pad}- {f}");
                }
                None => {
                    out.push_str(&pad);
                    out.push('-');
                    value_after_key(item, indent, out);
                }
            },
        }
    }
}

fn is_scalar(n: &Node) -> bool {
    matches!(n, Node::Str(_) | Node::Raw(_))
}

/// Flow style (`[a, b]`, `{k: v}`), or `None` when a comment inside would be lost.
fn flow(n: &Node) -> Option<String> {
    match n {
        Node::Str(s) => Some(scalar(s)),
        Node::Raw(s) => Some(s.clone()),
        Node::Seq(items) => {
            let parts: Option<Vec<String>> = items.iter().map(flow).collect();
            Some(format!("[{}]", parts?.join(", ")))
        }
        Node::Map(m) => {
            let mut parts = Vec::new();
            for e in &m.entries {
                if e.comment.is_some() {
                    return None;
                }
                parts.push(format!("{}: {}", scalar(&e.key), flow(&e.value)?));
            }
            Some(format!("{{{}}}", parts.join(", ")))
        }
    }
}

/// A string as a YAML scalar: plain when it can only be read back as this string, else double-quoted.
pub fn scalar(s: &str) -> String {
    if plain_is_safe(s) {
        return s.to_string();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn plain_is_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let keyword = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "~"
    );
    (first.is_ascii_alphanumeric() || first == '_' || first == '/' || first == '.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !keyword
        && s.parse::<f64>().is_err()
        && !s.starts_with('.')
        && !s.chars().all(|c| c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_yaml_quotes_what_yaml_would_misread() {
        assert_eq!(scalar("otel_logs"), "otel_logs");
        assert_eq!(scalar("5s"), "5s");
        assert_eq!(scalar("/var/lib/weir"), "/var/lib/weir");
        for s in [
            "true", "no", "0.1", "1e3", "42", "", ".inf", "a b", "x: y", "${X}", "-a",
        ] {
            assert!(scalar(s).starts_with('"'), "{s}");
        }
        assert_eq!(scalar("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
    }

    #[test]
    fn migrate_yaml_renders_block_maps_and_flow_sequences() {
        let mut root = Map::default();
        root.path("pipeline.sample.traces")
            .set("probability", Node::raw("${P:-0.1}"));
        let mut policy = Map::default();
        policy.set("name", Node::str("errors"));
        policy.set("error", Node::bool(true));
        root.path("pipeline.sample.tail")
            .set("policies", Node::Seq(vec![Node::Map(policy)]));
        root.map("exporters")
            .map("gw")
            .set("signals", Node::strs(&["traces", "logs"]));
        root.comment("exporters", "from exporters.otlp");
        let text = render(&root);
        assert_eq!(
            text,
            "pipeline:\n  sample:\n    traces:\n      probability: ${P:-0.1}\n    tail:\n      policies:\n        - {name: errors, error: true}\n# from exporters.otlp\nexporters:\n  gw:\n    signals: [traces, logs]\n"
        );
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back["exporters"]["gw"]["signals"][1], "logs");
    }

    #[test]
    fn migrate_yaml_long_maps_in_sequences_go_block_style() {
        let mut m = Map::default();
        m.set("name", Node::str("a-rather-long-policy-name-that-goes-on"));
        let mut attr = Map::default();
        attr.set("key", Node::str("http.route"));
        attr.set(
            "values",
            Node::strs(&["/checkout/confirm", "/checkout/pay", "/cart"]),
        );
        m.set("attribute", Node::Map(attr));
        let mut root = Map::default();
        root.set("policies", Node::Seq(vec![Node::Map(m)]));
        let text = render(&root);
        let back: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            back["policies"][0]["attribute"]["values"][2], "/cart",
            "{text}"
        );
        assert!(text.contains("  - name: a-rather"), "{text}");
    }
}
