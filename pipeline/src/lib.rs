//! The data path shared by every part of Weir: what a batch is, how it waits, and what may change it.
//!
//! # Layout
//! - [`signal`]: the [`Signal`] trait over traces, logs and metrics, so each pipeline is typed by signal.
//! - [`batch`]: [`Batch`], OTLP resources plus their item and byte counts.
//! - [`queue`]: bounded lock-free MPMC queues with capacity in items and bytes.
//! - [`stage`]: the [`Stage`] trait and the [`Chain`] that worker threads run.
//! - [`stages`]: the stages themselves: normalize, sample (head, log rules, rate limits), redact, and
//!   what they are built from (trace-context parsers, `tracestate`, the OTEP 235 threshold codec).
//! - [`attrs`]: attribute lookups and updates every part of Weir shares.
//! - [`tap`]: live taps (`weir tap`): follow sampled items through the chain and out to exporters.
//! - `split`: cutting a batch so every request made from it fits the destination's limits.
//! - [`spanmetrics`]: request, error and duration metrics from every span, counted before sampling.
//! - [`tail`]: tail sampling, a thread of its own between the stage workers and the exporters.
//! - [`ticket`]: delivery tickets that tell a durable source when a record is fully dealt with.
//! - [`wal`]: the write-ahead log on disk behind durable mode: segments, records, recovery.
//! - [`hotswap`]: the one mechanism for replacing a policy while traffic flows.
//! - [`policy`]: [`policy::PolicySet`], every stage policy of one version, swapped as one value.
//! - [`metrics`]: lock-free counters and histograms rendered as Prometheus text.
//! - [`memory`] (crate `weir-alloc`): live heap bytes, and the real size of a decoded batch.
//! - `fixtures` (feature `test-util`): realistic OTLP batches for tests and benchmarks.

pub mod attrs;
pub mod batch;
#[cfg(any(test, feature = "test-util"))]
pub mod fixtures;
pub mod hotswap;
pub mod metrics;
pub mod policy;
pub mod protobuf;
pub mod queue;
pub mod signal;
pub mod spanmetrics;
mod split;
pub mod stage;
pub mod stages;
pub mod tail;
pub mod tap;
pub mod ticket;
pub mod wal;

pub use batch::Batch;
pub use hotswap::HotSwap;
pub use queue::{bounded, Receiver, RecvError, SendError, Sender, TrySendError};
pub use signal::{Logs, Metrics, Signal, Traces};
pub use stage::{Chain, PassThrough, Stage};
/// The counting allocator's measurements, where the data path reads them.
pub use weir_alloc as memory;
