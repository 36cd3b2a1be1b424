//! [`PolicySet`]: every policy of one version, published as one value. The chain loads it once per
//! batch and the batch carries it through the stages, so a reload that lands mid-batch cannot give
//! one batch normalize v2 and sample v1; the tail sampler loads the same set for every decision, so
//! the sample stage's `logs: with_trace` and the tail rules that hold those logs come from one version
//! too. A reload is one store of a whole set.

use crate::stages::normalize::policy::NormalizePolicy;
use crate::stages::redact::policy::RedactPolicy;
use crate::stages::sample::policy::SamplePolicy;
use crate::tail::policy::TailPolicy;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct PolicySet {
    /// The reload version (`weir_policy_version`) this set was built as.
    pub version: u64,
    pub normalize: Arc<NormalizePolicy>,
    pub sample: Arc<SamplePolicy>,
    pub redact: Arc<RedactPolicy>,
    pub tail: Arc<TailPolicy>,
}
