//! The stages a pipeline can run, each a verb: [`normalize::Normalize`] today; sampling and redaction
//! follow.

pub mod context;
pub mod normalize;
pub mod ratelimit;
pub mod sample;
pub mod tracestate;
