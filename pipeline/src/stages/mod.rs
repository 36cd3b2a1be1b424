//! The stages a pipeline can run, each a verb: [`normalize::Normalize`], [`sample::Sample`],
//! [`redact::Redact`].

pub mod context;
pub mod normalize;
pub mod ratelimit;
pub mod redact;
pub mod sample;
pub mod tracestate;
