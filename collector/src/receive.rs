//! What the receivers, the intake, authentication and the durable log say to each other about one
//! request: which transport it came by, how it was accepted or why it was refused, and the counter
//! of requests refused before their items could be counted. A leaf: it imports nothing from the
//! crate, so [`crate::intake`], [`crate::auth`] and [`crate::durable`] need not import each other
//! for these words.

use std::time::Duration;
use weir_pipeline::metrics::{Counter, Registry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// What the client is told on success: how many items were refused, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    pub rejected: usize,
    pub message: String,
}

/// Why nothing was accepted; both are retryable for the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The intake queue stayed full for the whole enqueue timeout.
    Full,
    /// The pipeline is shutting down.
    Closed,
    /// No exporter takes this signal, so nothing would ever deliver it; not retryable.
    NoPipeline,
    /// The durable log could not write (a disk error); retryable.
    Unavailable,
    /// Larger than one durable log record may be; not retryable.
    TooLarge,
}

/// How long a refused client should wait before retrying; sent as `RetryInfo` / `Retry-After`.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Counts requests refused before their items could be counted (bad content type, encoding, size, body).
pub fn refused_requests(
    registry: &Registry,
    signal: &str,
    transport: &str,
    reason: &str,
) -> Counter {
    registry.counter(
        "weir_receiver_refused_requests_total",
        "Requests refused before decoding finished (bad content type, encoding, size or body), by reason.",
        &[("signal", signal), ("transport", transport), ("reason", reason)],
    )
}
