//! Words several sections of the configuration use (signals, queue limits, serde defaults), in a file
//! of their own so the sections and the root [`crate::Config`] never import each other in a circle.

use crate::check::{invalid, positive, Invalid};
use crate::units::ByteSize;
use serde::Deserialize;

/// Capacity of a bounded queue, in telemetry items (spans, log records, data points) and in bytes of
/// memory the queued batches hold.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueLimits {
    pub max_items: usize,
    pub max_bytes: ByteSize,
}

impl QueueLimits {
    /// The queue counts items and bytes in one 64-bit word: 24 bits of items, 40 bits of bytes.
    const MAX_ITEMS: u64 = (1 << 24) - 1;
    const MAX_BYTES: u64 = (1 << 40) - 1;

    pub(crate) fn check(&self, path: &str) -> Result<(), Invalid> {
        positive(&format!("{path}.max_items"), self.max_items as u64)?;
        positive(&format!("{path}.max_bytes"), self.max_bytes.0)?;
        if self.max_items as u64 > Self::MAX_ITEMS {
            return Err(invalid(
                format!("{path}.max_items"),
                format!("must be at most {}", Self::MAX_ITEMS),
            ));
        }
        if self.max_bytes.0 > Self::MAX_BYTES {
            return Err(invalid(format!("{path}.max_bytes"), "must be at most 1TiB"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    Traces,
    Logs,
    Metrics,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics];
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Logs => "logs",
            SignalKind::Metrics => "metrics",
        }
    }
}

/// For serde's `default = "…"`, which takes a function.
pub(crate) fn yes() -> bool {
    true
}
