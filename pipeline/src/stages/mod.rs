//! The stages a pipeline can run, each a verb: [`normalize::Normalize`], [`sample::Sample`],
//! [`redact::Redact`]. Beside them, what they are built from:
//! - [`context`]: trace-context parsers for log records (normalize);
//! - [`tracestate`]: W3C `tracestate` validation (normalize, sample);
//! - [`threshold`]: OTEP 235's threshold codec and trace randomness (sample, the tail sampler);
//! - [`ratelimit`]: token buckets per key that survive a reload (sample).

pub mod context;
pub mod normalize;
pub mod ratelimit;
pub mod redact;
pub mod sample;
pub mod threshold;
pub mod tracestate;
