//! Stages: synchronous, in-place transformations of a batch, shared by all worker threads.
//!
//! A stage cannot fail: what it removes it counts in metrics with a reason, and the batch moves on.
//! A stage whose policy can change at run time takes it from the [`crate::policy::PolicySet`] the
//! batch carries (the chain loads one per batch), falling back to its own [`crate::HotSwap`] when run
//! alone; so no batch is ever handled by two policy versions.

use crate::batch::Batch;
use crate::hotswap::HotSwap;
use crate::policy::PolicySet;
use crate::signal::Signal;
use std::sync::Arc;

pub trait Stage<S: Signal>: Send + Sync {
    /// Short name used in metrics and logs (`normalize`, `sample`, …).
    fn name(&self) -> &'static str;
    fn apply(&self, batch: &mut Batch<S>);
}

/// A shared stage runs as itself; lets the owner keep a handle (to swap its policy) while a chain runs it.
impl<S: Signal, T: Stage<S> + ?Sized> Stage<S> for std::sync::Arc<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn apply(&self, batch: &mut Batch<S>) {
        (**self).apply(batch)
    }
}

/// Leaves batches unchanged; the chain of a pipeline that has no stages configured.
#[derive(Debug, Default)]
pub struct PassThrough;

impl<S: Signal> Stage<S> for PassThrough {
    fn name(&self) -> &'static str {
        "pass"
    }
    fn apply(&self, _batch: &mut Batch<S>) {}
}

/// Stages applied in order. The item count is refreshed once at the end, not after every stage.
pub struct Chain<S: Signal> {
    stages: Vec<Box<dyn Stage<S>>>,
    /// When set, loaded once per batch and carried by it through every stage.
    policies: Option<Arc<HotSwap<PolicySet>>>,
}

impl<S: Signal> Chain<S> {
    /// A chain whose stages each use their own policy.
    pub fn new(stages: Vec<Box<dyn Stage<S>>>) -> Self {
        Chain {
            stages,
            policies: None,
        }
    }

    /// A chain that runs each batch under one [`PolicySet`] from `policies`, whatever reloads land
    /// while it runs.
    pub fn with_policies(
        stages: Vec<Box<dyn Stage<S>>>,
        policies: Arc<HotSwap<PolicySet>>,
    ) -> Self {
        Chain {
            stages,
            policies: Some(policies),
        }
    }

    pub fn pass() -> Self {
        Chain::new(vec![Box::new(PassThrough)])
    }

    /// Puts `stage` just before the stage called `before` (last when there is none): for a stage
    /// only some signals or configs add to a standard chain.
    pub fn insert_before(&mut self, before: &str, stage: Box<dyn Stage<S>>) {
        let at = self
            .stages
            .iter()
            .position(|s| s.name() == before)
            .unwrap_or(self.stages.len());
        self.stages.insert(at, stage);
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    pub fn apply(&self, batch: &mut Batch<S>) {
        if let Some(p) = &self.policies {
            batch.run_under(p.load_full());
        }
        let mut tap = crate::tap::Session::begin(batch);
        for stage in &self.stages {
            stage.apply(batch);
            if let Some(t) = &mut tap {
                t.after(stage.name(), batch);
            }
            if batch.resources.is_empty() {
                break;
            }
        }
        if let Some(t) = tap {
            t.finish(batch);
        }
        batch.recount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::signal::Logs;

    /// Removes every record of the first resource: stands in for a sampler.
    struct DropFirstResource;
    impl Stage<Logs> for DropFirstResource {
        fn name(&self) -> &'static str {
            "drop_first"
        }
        fn apply(&self, batch: &mut Batch<Logs>) {
            batch.resources[0].scope_logs.clear();
        }
    }

    #[test]
    fn chain_runs_stages_in_order_and_recounts() {
        let chain = Chain::<Logs>::new(vec![Box::new(PassThrough), Box::new(DropFirstResource)]);
        assert_eq!(chain.names(), ["pass", "drop_first"]);
        let mut b: Batch<Logs> = Batch::measured(fixtures::resource_logs(2, 4));
        let before = b.resources[1].clone();
        chain.apply(&mut b);
        assert_eq!(b.items(), 4);
        assert_eq!(b.resources, vec![before]);
    }
}
