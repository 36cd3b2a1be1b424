//! The compiled policy: which keys are allowed, which key rules and detectors act and how, and the
//! name and action of every detector the pass counts against.

use super::rules::{Glob, Hasher, Mask};
use super::scanner::Scanner;
use weir_config::redact::{Action, RedactConfig};

/// A compiled `pipeline.redact`.
#[derive(Debug, Clone)]
pub struct RedactPolicy {
    pub(super) enabled: bool,
    pub(super) span_names: bool,
    pub(super) status_messages: bool,
    pub(super) allow: Option<Vec<Glob>>,
    pub(super) keys: Vec<Glob>,
    pub(super) scanner: Option<Scanner>,
    pub(super) mask: Mask,
    pub(super) hasher: Option<Hasher>,
    pub(super) summary: Option<String>,
    /// Name and action of every detector id: the scanner's, then one per key rule, then the allowlist.
    pub(super) detectors: Vec<(String, Action)>,
}

impl RedactPolicy {
    /// Compiles the config; the hash key is read through `env`. Errors name the key path.
    pub fn compile(c: &RedactConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let scanner = if c.enabled {
            Scanner::compile(c)?
        } else {
            None
        };
        let hasher = match &c.hash {
            Some(h) if c.enabled => Some(Hasher::new(h, env)?),
            _ => None,
        };
        let mut detectors: Vec<(String, Action)> = scanner
            .iter()
            .flat_map(|s| s.detectors.iter().map(|d| (d.name.clone(), d.action)))
            .collect();
        detectors.extend(c.keys.iter().map(|k| (format!("key:{}", k.key), k.action)));
        detectors.push(("allowlist".into(), Action::Drop));
        Ok(RedactPolicy {
            enabled: c.enabled,
            span_names: c.span_names,
            status_messages: c.status_messages,
            allow: c
                .allow_keys
                .as_ref()
                .map(|keys| keys.iter().map(|k| Glob::new(k)).collect()),
            keys: c.keys.iter().map(|k| Glob::new(&k.key)).collect(),
            scanner,
            mask: Mask::from(&c.mask),
            hasher,
            summary: c.summary_attribute.clone(),
            detectors,
        })
    }

    pub fn off() -> Self {
        RedactPolicy::compile(&RedactConfig::default(), |_| None).expect("the default compiles")
    }

    pub(super) fn key_rule(&self, i: usize) -> usize {
        self.scanner.as_ref().map_or(0, |s| s.detectors.len()) + i
    }

    pub(super) fn allowlist(&self) -> usize {
        self.detectors.len() - 1
    }
}

/// The `action` label of the redaction counters.
pub(super) fn action_name(a: Action) -> &'static str {
    match a {
        Action::Mask => "mask",
        Action::Hash => "hash",
        Action::Drop => "drop",
        Action::DropRecord => "drop_record",
    }
}
