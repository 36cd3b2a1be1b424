//! `pipeline.redact`: what the redaction stage removes and how. Off unless `enabled: true`; once on,
//! every built-in detector runs with `mask` unless switched off or given another action.

use crate::check::{invalid, Invalid};
use serde::de::{self, Deserializer};
use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Also scan span names.
    #[serde(default)]
    pub span_names: bool,
    /// Also scan span status messages.
    #[serde(default)]
    pub status_messages: bool,
    /// Allowlist mode: only attributes whose key matches one of these survive (exact names or `*`
    /// globs, case-insensitive). Unset: every key may survive.
    #[serde(default)]
    pub allow_keys: Option<Vec<String>>,
    /// Attributes whose key matches get the rule's action on their whole value, first match wins.
    #[serde(default)]
    pub keys: Vec<KeyRule>,
    #[serde(default)]
    pub detectors: Detectors,
    /// User patterns, run in the same pass as the built-in detectors.
    #[serde(default)]
    pub patterns: Vec<PatternRule>,
    #[serde(default)]
    pub mask: MaskConfig,
    /// Required when any rule uses `hash`.
    #[serde(default)]
    pub hash: Option<HashConfig>,
    /// When set, a record with redactions carries their count under this attribute.
    #[serde(default)]
    pub summary_attribute: Option<String>,
}

/// What happens to a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the secret with `mask.replacement`, keeping `mask.keep_prefix` / `keep_suffix` chars.
    Mask,
    /// Replace it with a keyed hash (`hash:` + truncated hex): equal values still correlate.
    Hash,
    /// Remove the attribute (or clear the body, name or message) that holds it.
    Drop,
    /// Drop the whole span or log record (counted).
    DropRecord,
}

/// A detector's setting: `off`, or the action to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Off,
    On(Action),
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "off" => Ok(Switch::Off),
            "mask" => Ok(Switch::On(Action::Mask)),
            "hash" => Ok(Switch::On(Action::Hash)),
            "drop" => Ok(Switch::On(Action::Drop)),
            "drop_record" => Ok(Switch::On(Action::DropRecord)),
            other => Err(de::Error::custom(format!(
                "`{other}` is not one of off, mask, hash, drop, drop_record"
            ))),
        }
    }
}

fn mask() -> Switch {
    Switch::On(Action::Mask)
}

/// The built-in detectors; each defaults to `mask`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detectors {
    /// Payment card numbers (13–19 digits, spaces or dashes allowed) passing the Luhn check.
    #[serde(default = "mask")]
    pub credit_card: Switch,
    #[serde(default = "mask")]
    pub email: Switch,
    #[serde(default = "mask")]
    pub ipv4: Switch,
    #[serde(default = "mask")]
    pub ipv6: Switch,
    /// `eyJ….eyJ….…` tokens.
    #[serde(default = "mask")]
    pub jwt: Switch,
    /// `Bearer …` / `Basic …` credentials (the scheme word is kept).
    #[serde(default = "mask")]
    pub credentials: Switch,
    /// AWS access key ids (`AKIA…`, `ASIA…`, …).
    #[serde(default = "mask")]
    pub aws_access_key: Switch,
    /// Well-known token formats (GitHub, GitLab, Slack, Stripe, Google API keys) and PEM private keys.
    #[serde(default = "mask")]
    pub secret_token: Switch,
    /// `password=…`, `token: …`, `secret=…`, `api_key=…` in free text (the key is kept).
    #[serde(default = "mask")]
    pub secret_assignment: Switch,
    /// US social security numbers (`123-45-6789`, invalid areas excluded).
    #[serde(default = "mask")]
    pub us_ssn: Switch,
    /// IBANs passing the mod-97 check.
    #[serde(default = "mask")]
    pub iban: Switch,
}

impl Default for Detectors {
    fn default() -> Self {
        Detectors {
            credit_card: mask(),
            email: mask(),
            ipv4: mask(),
            ipv6: mask(),
            jwt: mask(),
            credentials: mask(),
            aws_access_key: mask(),
            secret_token: mask(),
            secret_assignment: mask(),
            us_ssn: mask(),
            iban: mask(),
        }
    }
}

impl Detectors {
    /// Name and setting of every detector, in the order they are tried.
    pub fn all(&self) -> [(&'static str, Switch); 11] {
        [
            ("jwt", self.jwt),
            ("secret_token", self.secret_token),
            ("credentials", self.credentials),
            ("secret_assignment", self.secret_assignment),
            ("aws_access_key", self.aws_access_key),
            ("email", self.email),
            ("iban", self.iban),
            ("credit_card", self.credit_card),
            ("us_ssn", self.us_ssn),
            ("ipv6", self.ipv6),
            ("ipv4", self.ipv4),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRule {
    /// An exact key or a `*` glob, case-insensitive: `authorization`, `*password*`, `x-api-*`.
    pub key: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Used in metrics.
    pub name: String,
    /// Rust `regex` syntax.
    pub regex: String,
    #[serde(default = "default_action")]
    pub action: Action,
}

fn default_action() -> Action {
    Action::Mask
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub keep_prefix: usize,
    #[serde(default)]
    pub keep_suffix: usize,
}

fn default_replacement() -> String {
    "****".into()
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            replacement: default_replacement(),
            keep_prefix: 0,
            keep_suffix: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HashAlgorithm {
    #[default]
    HmacSha256,
    Blake3,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashConfig {
    /// The environment variable holding the secret key (never the key itself, so configs can be
    /// shared and printed).
    pub key_env: String,
    #[serde(default)]
    pub algorithm: HashAlgorithm,
    /// Hex characters kept from the digest.
    #[serde(default = "default_hash_length")]
    pub length: usize,
}

fn default_hash_length() -> usize {
    16
}

impl RedactConfig {
    /// Every action configured, for validation.
    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        let detectors = self
            .detectors
            .all()
            .into_iter()
            .filter_map(|(_, s)| match s {
                Switch::On(a) => Some(a),
                Switch::Off => None,
            });
        self.keys
            .iter()
            .map(|k| k.action)
            .chain(self.patterns.iter().map(|p| p.action))
            .chain(detectors.collect::<Vec<_>>())
    }
}

/// Rules that can act: non-empty masks and keys, patterns that compile and do not match everywhere,
/// and a hash key wherever a rule hashes.
pub(crate) fn check(r: &RedactConfig) -> Result<(), Invalid> {
    const PATH: &str = "pipeline.redact";
    if r.mask.replacement.is_empty() {
        return Err(invalid(
            format!("{PATH}.mask.replacement"),
            "must not be empty (an empty mask could not be told from a value)",
        ));
    }
    for (i, k) in r.keys.iter().enumerate() {
        if k.key.trim_matches('*').is_empty() {
            return Err(invalid(
                format!("{PATH}.keys[{i}].key"),
                "needs at least one character besides `*`",
            ));
        }
    }
    for (i, p) in r.patterns.iter().enumerate() {
        let path = format!("{PATH}.patterns[{i}]");
        if p.name.is_empty() || r.patterns[..i].iter().any(|q| q.name == p.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!("`{}` is empty or used twice", p.name),
            ));
        }
        match regex::Regex::new(&p.regex) {
            Ok(re) if re.is_match("") => {
                return Err(invalid(
                    format!("{path}.regex"),
                    "matches the empty string, so it would match everywhere",
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(invalid(format!("{path}.regex"), e.to_string())),
        }
    }
    let hashes = r.actions().any(|a| a == Action::Hash);
    match &r.hash {
        None if hashes => {
            return Err(invalid(
                format!("{PATH}.hash"),
                "a rule uses `hash`; set hash.key_env to the variable holding the secret key",
            ))
        }
        Some(h) if h.key_env.is_empty() => {
            return Err(invalid(
                format!("{PATH}.hash.key_env"),
                "must name an environment variable",
            ))
        }
        Some(h) if !(8..=64).contains(&h.length) => {
            return Err(invalid(
                format!("{PATH}.hash.length"),
                "must be between 8 and 64 hex characters",
            ))
        }
        _ => {}
    }
    if r.summary_attribute.as_deref() == Some("") {
        return Err(invalid(
            format!("{PATH}.summary_attribute"),
            "must not be empty",
        ));
    }
    Ok(())
}
