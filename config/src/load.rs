//! Turning config text into a checked [`Config`]: substitute variables, parse YAML strictly, then
//! [`Config::validate`], which runs each section's own checks. Every error names where it is: the
//! file, the line when known, and the key path.

use crate::env::{self, SubstError};
use crate::model::Config;
use std::fmt;
use std::path::Path;

/// Why a configuration was refused. `Display` gives one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        source: std::io::Error,
    },
    #[error("{origin}: {source}")]
    Env { origin: String, source: SubstErr },
    #[error("{origin}{}: {path}{}{message}", line.map(|l| format!(":{l}")).unwrap_or_default(), if path.is_empty() { "" } else { ": " })]
    Parse {
        origin: String,
        line: Option<usize>,
        path: String,
        message: String,
    },
    #[error("{origin}: {path}: {message}")]
    Invalid {
        origin: String,
        path: String,
        message: String,
    },
}

/// Wrapper so [`SubstError`] can be a `thiserror` source.
#[derive(Debug)]
pub struct SubstErr(pub SubstError);

impl fmt::Display for SubstErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for SubstErr {}

/// Reads and checks a config file, substituting variables from the process environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    parse(&text, &origin, |k| std::env::var(k).ok())
}

/// Parses and checks config text; `origin` names it in errors (a path, or `<embedded default>`).
pub fn parse(
    text: &str,
    origin: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text = env::substitute(text, lookup).map_err(|e| ConfigError::Env {
        origin: origin.to_string(),
        source: SubstErr(e),
    })?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| l.line());
        // serde_yaml_ng appends "at line X column Y"; the line is already in front of the message.
        let message = inner.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        // It sometimes starts with the key path too, which the error already shows.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map_or(message.clone(), str::to_string);
        ConfigError::Parse {
            origin: origin.to_string(),
            line,
            path: if path == "." { String::new() } else { path },
            message,
        }
    })?;
    config
        .validate()
        .map_err(|(path, message)| ConfigError::Invalid {
            origin: origin.to_string(),
            path,
            message,
        })?;
    Ok(config)
}

#[cfg(test)]
mod tests;
