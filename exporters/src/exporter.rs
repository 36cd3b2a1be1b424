//! The contract between the delivery loop and a destination.

use std::future::Future;
use std::time::Duration;
use weir_pipeline::{Batch, Signal};

/// A destination for one signal. Encoding is pure and synchronous so it can be benchmarked alone;
/// `send` is exactly one attempt, and the delivery loop decides about retries.
pub trait Exporter<S: Signal>: Send + Sync + 'static {
    type Request: Send + Sync + 'static;

    /// Short kind name for logs (`file`, `blackhole`, `clickhouse`…).
    fn kind(&self) -> &'static str;

    /// Turns a batch into the requests to send; an error here is never retried.
    fn encode(&self, batch: Batch<S>) -> Result<Vec<Encoded<Self::Request>>, ExportError>;

    fn send(&self, request: &Self::Request)
        -> impl Future<Output = Result<(), ExportError>> + Send;

    /// Whether the destination stores a request it has stored before only once, when the same rows
    /// come again (ClickHouse's block deduplication and insert tokens). Behind a durable log the
    /// delivery loop then sends each record on its own, so what a replay after a crash sends is
    /// byte for byte what was sent before, and the destination drops it.
    fn deduplicates(&self) -> bool {
        false
    }
}

/// A request ready to send, with the number of telemetry items it carries (for metrics and accounting).
#[derive(Debug)]
pub struct Encoded<R> {
    pub request: R,
    pub items: usize,
    /// Memory the request holds (its encoded body), charged to the memory budget while it waits
    /// for a slot, is in flight or between retries.
    pub bytes: usize,
}

/// Whether a failed attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The destination will refuse this request every time (schema error, 400).
    Never,
    /// Worth retrying; `Some` when the destination said how long to wait.
    After(Option<Duration>),
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    pub retry: Retry,
    /// Low-cardinality cause for the `reason` metric label (`io`, `encode`, `http_5xx`…).
    pub reason: &'static str,
    pub message: String,
    /// How many of the request's items this error concerns, when not all of them: the others were
    /// delivered (an exporter that splits a request over several destinations).
    pub items: Option<usize>,
}

impl ExportError {
    pub fn permanent(reason: &'static str, message: impl Into<String>) -> Self {
        ExportError {
            retry: Retry::Never,
            reason,
            message: message.into(),
            items: None,
        }
    }

    pub fn retryable(reason: &'static str, message: impl Into<String>) -> Self {
        Self::retry_after(reason, message, None)
    }

    pub fn retry_after(
        reason: &'static str,
        message: impl Into<String>,
        after: Option<std::time::Duration>,
    ) -> Self {
        ExportError {
            retry: Retry::After(after),
            reason,
            message: message.into(),
            items: None,
        }
    }

    /// The same kind of error (worth retrying or not), reported as a start-up failure: a server
    /// that is down may come back, one that refused will refuse again.
    pub fn at_startup(&self, message: String) -> Self {
        ExportError {
            retry: self.retry,
            reason: "startup",
            message,
            items: None,
        }
    }

    /// Says the error concerns only `items` of the request.
    pub fn for_items(mut self, items: usize) -> Self {
        self.items = Some(items);
        self
    }
}
