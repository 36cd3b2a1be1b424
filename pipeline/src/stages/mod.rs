//! The stages a pipeline can run, each a verb: [`normalize::Normalize`], [`sample::Sample`].

pub mod context;
pub mod normalize;
pub mod ratelimit;
pub mod sample;
pub mod tracestate;
