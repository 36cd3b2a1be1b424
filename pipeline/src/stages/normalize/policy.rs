//! What the normalize stage is told to do, apart from the stage itself, so the policy set can hold it
//! without importing the batch the stage works on.

use weir_config::{InvalidSpans, NormalizeConfig};

/// The policy in force; swapped whole on reload.
#[derive(Debug, Clone)]
pub struct NormalizePolicy {
    /// Off: batches pass untouched (a reload can turn the stage off and on).
    pub enabled: bool,
    pub invalid_spans: InvalidSpans,
    pub remove_source_attributes: bool,
}

impl From<&NormalizeConfig> for NormalizePolicy {
    fn from(c: &NormalizeConfig) -> Self {
        NormalizePolicy {
            enabled: c.enabled,
            invalid_spans: c.invalid_spans,
            remove_source_attributes: c.remove_source_attributes,
        }
    }
}
