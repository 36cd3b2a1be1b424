//! `service.pipelines`, read before anything else: the pipelines decide which components run at all,
//! and which signals each exporter takes.

use super::kind;
use super::report::text;
use serde_yaml_ng::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sig {
    Traces,
    Logs,
    Metrics,
}

impl Sig {
    pub fn name(self) -> &'static str {
        match self {
            Sig::Traces => "traces",
            Sig::Logs => "logs",
            Sig::Metrics => "metrics",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Receiver,
    Processor,
    Exporter,
}

#[derive(Debug)]
pub struct Pipeline {
    pub id: String,
    /// `None` for signals Weir does not take (profiles).
    pub signal: Option<Sig>,
    pub receivers: Vec<String>,
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

#[derive(Debug)]
pub struct Pipelines {
    pub list: Vec<Pipeline>,
}

impl Pipelines {
    /// Reads `service.pipelines`; without it there is nothing to translate, which is an error, as is
    /// a pipeline naming a component that is not defined (the Collector refuses that config too).
    pub fn parse(root: &Value) -> Result<Pipelines, String> {
        let missing = "service.pipelines: missing (a Collector config needs `service.pipelines`, e.g. `traces: {receivers: [otlp], exporters: [otlp]}`)";
        let pipelines = root
            .get("service")
            .and_then(|s| s.get("pipelines"))
            .ok_or(missing)?;
        let map = pipelines.as_mapping().filter(|m| !m.is_empty()).ok_or(
            "service.pipelines: must be a non-empty mapping of pipelines (traces, logs, metrics)",
        )?;
        let defined = |section: &str, id: &str| {
            root.get(section)
                .and_then(Value::as_mapping)
                .is_some_and(|m| m.contains_key(id))
        };
        let mut list = Vec::new();
        for (k, v) in map {
            let id = text(k).unwrap_or_default();
            let path = format!("service.pipelines.{id}");
            let signal = match kind(&id) {
                "traces" => Some(Sig::Traces),
                "logs" => Some(Sig::Logs),
                "metrics" => Some(Sig::Metrics),
                "profiles" => None,
                other => {
                    return Err(format!(
                        "{path}: `{other}` is not a signal (traces, logs, metrics, profiles)"
                    ))
                }
            };
            if !v.is_mapping() {
                return Err(format!(
                    "{path}: must be a mapping with receivers, processors and exporters"
                ));
            }
            let list_of = |key: &str| -> Result<Vec<String>, String> {
                match v.get(key) {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Sequence(items)) => items
                        .iter()
                        .map(|i| {
                            text(i)
                                .ok_or(format!("{path}.{key}: every entry must be a component id"))
                        })
                        .collect(),
                    Some(_) => Err(format!("{path}.{key}: must be a list of component ids")),
                }
            };
            let p = Pipeline {
                id: id.clone(),
                signal,
                receivers: list_of("receivers")?,
                processors: list_of("processors")?,
                exporters: list_of("exporters")?,
            };
            for (key, ids, sections) in [
                ("receivers", &p.receivers, ["receivers", "connectors"]),
                ("processors", &p.processors, ["processors", "processors"]),
                ("exporters", &p.exporters, ["exporters", "connectors"]),
            ] {
                for (i, c) in ids.iter().enumerate() {
                    if !sections.iter().any(|s| defined(s, c)) {
                        return Err(format!(
                            "{path}.{key}[{i}]: `{c}` is not defined under `{}`",
                            sections[0]
                        ));
                    }
                }
            }
            list.push(p);
        }
        Ok(Pipelines { list })
    }

    pub fn using(&self, role: Role, id: &str) -> Vec<&Pipeline> {
        self.list
            .iter()
            .filter(|p| {
                match role {
                    Role::Receiver => &p.receivers,
                    Role::Processor => &p.processors,
                    Role::Exporter => &p.exporters,
                }
                .iter()
                .any(|c| c == id)
            })
            .collect()
    }

    pub fn signals(&self, role: Role, id: &str) -> BTreeSet<Sig> {
        self.using(role, id)
            .into_iter()
            .filter_map(|p| p.signal)
            .collect()
    }

    pub fn used(&self, role: Role, id: &str) -> bool {
        !self.using(role, id).is_empty()
    }

    pub fn all_signals(&self) -> BTreeSet<Sig> {
        self.list.iter().filter_map(|p| p.signal).collect()
    }
}

pub fn names(signals: &BTreeSet<Sig>) -> String {
    signals
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}
