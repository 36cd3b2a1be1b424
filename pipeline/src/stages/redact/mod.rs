//! `Redact`: secrets and personal data out of every attribute (resource, scope, span, span event, link,
//! log record, metric data point and exemplar — nested maps and arrays included), log bodies, and
//! optionally span names and status messages, before anything leaves the process.
//!
//! Per attribute, in order: the allowlist (when set, keys not on it are dropped; Weir's own `weir.*`
//! annotations always survive), then key rules (first match acts on the whole value), then the value
//! scanner (every detector in one pass). Actions: mask, keyed hash, drop the field, drop the record.
//! Redacted output is recognised on a second pass and left alone, so redaction is idempotent.
//!
//! Metrics: `weir_redactions_total{signal, detector, action}` per redaction and
//! `weir_redaction_dropped_items_total{signal, detector}` per record dropped. The values themselves are
//! never logged or counted.
//!
//! # Layout
//! - [`RedactPolicy`] (`policy.rs`): the compiled `pipeline.redact`.
//! - `pass.rs`: one batch's pass over attributes, values and string fields, and its counts.
//! - `shapes.rs`: each signal's resource → scope → record shape, and the walk over it.
//! - [`rules`]: key globs, the mask, the keyed hash; [`scanner`]: every detector in one regex pass.
//! - `prefilter.rs`: the byte-class pass that tells, soundly, when no detector can match a string.
//! - this file: the [`Redact`] stage, which runs the pass under the batch's policy and reports it.

mod memo;
mod pass;
pub(crate) mod policy;
mod prefilter;
pub mod rules;
pub mod scanner;
mod shapes;

pub use policy::RedactPolicy;

use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::metrics::Registry;
use crate::signal::{Logs, Metrics, Traces};
use crate::stage::Stage;
use pass::Pass;
use policy::action_name;
use shapes::walk;
use std::sync::Arc;

pub struct Redact {
    policy: HotSwap<RedactPolicy>,
    registry: Arc<Registry>,
}

impl Redact {
    pub fn new(policy: RedactPolicy, registry: &Arc<Registry>) -> Self {
        Redact {
            policy: HotSwap::new(policy),
            registry: registry.clone(),
        }
    }

    /// The policy of the set `batch` runs under, or this stage's own outside such a chain.
    fn current<S: crate::Signal>(&self, batch: &crate::Batch<S>) -> std::sync::Arc<RedactPolicy> {
        batch
            .policies()
            .map_or_else(|| self.policy.load_full(), |set| set.redact.clone())
    }

    pub fn policy(&self) -> &HotSwap<RedactPolicy> {
        &self.policy
    }

    fn report(&self, pass: Pass<'_>, signal: &str) {
        for (i, (name, action)) in pass.policy.detectors.iter().enumerate() {
            if pass.counts[i] > 0 {
                self.registry
                    .counter(
                        "weir_redactions_total",
                        "Values redacted, by signal, detector and action.",
                        &[
                            ("signal", signal),
                            ("detector", name),
                            ("action", action_name(*action)),
                        ],
                    )
                    .add(pass.counts[i]);
            }
            if pass.dropped[i] > 0 {
                self.registry
                    .counter(
                        "weir_redaction_dropped_items_total",
                        "Spans and log records dropped by a drop_record redaction rule, by detector.",
                        &[("signal", signal), ("detector", name)],
                    )
                    .add(pass.dropped[i]);
            }
        }
    }
}

macro_rules! redact_stage {
    ($($signal:ty => $label:literal),*) => {$(
        impl Stage<$signal> for Redact {
            fn name(&self) -> &'static str {
                "redact"
            }

            fn apply(&self, batch: &mut Batch<$signal>) {
                let policy = self.current(batch);
                if !policy.enabled {
                    return;
                }
                let mut pass = Pass::new(&policy);
                walk(&mut pass, batch);
                self.report(pass, $label);
            }
        }
    )*};
}
redact_stage!(Traces => "traces", Logs => "logs", Metrics => "metrics");
