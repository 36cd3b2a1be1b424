//! `exporters.<name>.file`: OTLP/JSON lines on local disk, rotated so the disk use stays bounded.

use crate::check::{invalid, positive, Invalid};
use crate::units::ByteSize;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporter {
    /// Directory for `traces.jsonl`, `logs.jsonl`, `metrics.jsonl` (OTLP/JSON, one request per line).
    pub path: String,
    /// A file is rotated to `<signal>.1.jsonl` … once it reaches this size.
    #[serde(default = "rotate_bytes")]
    pub rotate_bytes: ByteSize,
    /// Rotated files kept per signal; older ones are deleted so the disk use stays bounded.
    #[serde(default = "max_files")]
    pub max_files: usize,
}

fn rotate_bytes() -> ByteSize {
    ByteSize::mib(64)
}

fn max_files() -> usize {
    8
}

pub(crate) fn check(path: &str, f: &FileExporter) -> Result<(), Invalid> {
    if f.path.trim().is_empty() {
        return Err(invalid(format!("{path}.file.path"), "must not be empty"));
    }
    positive(&format!("{path}.file.rotate_bytes"), f.rotate_bytes.0)
}
