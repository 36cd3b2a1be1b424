//! Live policy reload: the config file is read, validated and compiled off the hot path into one
//! [`PolicySet`] (normalize + sample + redact + tail), published in one store; each chain loads it
//! once per batch and the batch carries it through every stage, so each batch runs under exactly one
//! version, and the tail sampler decides under the same set. An invalid file is refused with the
//! reason and the running policies stay. Triggered by SIGHUP, `POST /admin/reload`, and
//! changes to the config file (`reload.watch`).
//!
//! What reloads: the stage policies (`pipeline.normalize`, `pipeline.redact`, `pipeline.sample`, including the tail
//! sampler's rules and bounds; its held spans stay). Receivers, queues, exporters and
//! `pipeline.span_metrics` keep the settings they started with; changing those needs a restart, and
//! the reload answer says so when they differ.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_config::Config;
use weir_pipeline::metrics::Registry;
use weir_pipeline::policy::PolicySet;
use weir_pipeline::stages::normalize::{Normalize, NormalizePolicy};
use weir_pipeline::stages::redact::{Redact, RedactPolicy};
use weir_pipeline::stages::sample::{Sample, SamplePolicy};
use weir_pipeline::tail::{policy::TailPolicy, TailSampler};
use weir_pipeline::{Chain, HotSwap, Signal, Stage};

#[derive(Default)]
pub struct Policies {
    /// What every stage chain runs under: one store per reload, loaded once per batch.
    set: std::sync::OnceLock<Arc<HotSwap<PolicySet>>>,
    /// Kept to forget the rate-limit buckets of rules a reload removed.
    sample: Mutex<Vec<Arc<Sample>>>,
    /// A tail sampler was started: only then may `logs: with_trace` send records to it.
    tail_running: AtomicBool,
    /// Made with the traces chain, whose stage counts into it; its flusher starts once the metrics
    /// pipeline exists (`crate::span_metrics`). Not reloaded: its settings apply at start.
    pub span_metrics: std::sync::OnceLock<Arc<weir_pipeline::spanmetrics::SpanMetrics>>,
    version: AtomicU64,
    source: Option<PathBuf>,
    /// The config text last applied, to tell whether non-reloadable settings changed.
    applied: Mutex<Option<String>>,
    /// The input last refused, so an unchanged broken file is reported once.
    refused: Mutex<Option<String>>,
}

impl Policies {
    pub fn new(source: Option<PathBuf>) -> Self {
        Policies {
            version: AtomicU64::new(1),
            applied: Mutex::new(
                source
                    .as_ref()
                    .and_then(|p| std::fs::read_to_string(p).ok()),
            ),
            source,
            ..Policies::default()
        }
    }

    /// The policy set every chain runs under, built from the config the process started with.
    pub fn set(&self, config: &Config) -> Result<Arc<HotSwap<PolicySet>>, String> {
        if let Some(set) = self.set.get() {
            return Ok(set.clone());
        }
        let running = self.tail_running.load(Ordering::Acquire);
        let first = Arc::new(HotSwap::new(compile(config, self.version(), running)?));
        Ok(self.set.get_or_init(|| first).clone())
    }

    pub fn normalize(
        &self,
        config: &Config,
        registry: &weir_pipeline::metrics::Registry,
    ) -> Arc<Normalize> {
        Arc::new(Normalize::new(
            NormalizePolicy::from(&config.pipeline.normalize),
            registry,
        ))
    }

    pub fn sample(
        &self,
        config: &Config,
        registry: &Arc<weir_pipeline::metrics::Registry>,
    ) -> Arc<Sample> {
        let s = Arc::new(Sample::new(
            SamplePolicy::from(&config.pipeline.sample),
            registry,
        ));
        lock(&self.sample).push(s.clone());
        s
    }

    pub fn redact(
        &self,
        config: &Config,
        registry: &Arc<weir_pipeline::metrics::Registry>,
    ) -> Result<Arc<Redact>, String> {
        Ok(Arc::new(Redact::new(
            RedactPolicy::compile(&config.pipeline.redact, |k| std::env::var(k).ok())?,
            registry,
        )))
    }

    /// The tail sampler, deciding under the same set as the chains. Call it before the chains are
    /// built, so the first set already lets logs be held with their trace.
    pub fn tail(&self, config: &Config) -> Result<Arc<TailSampler>, String> {
        self.tail_running.store(true, Ordering::Release);
        Ok(TailSampler::new(self.set(config)?))
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Reloads from the config file; the new version, or why not (the old policies keep running).
    pub fn reload(&self) -> Result<(u64, Option<&'static str>), String> {
        let mut applied = lock(&self.applied);
        let text = self.read()?;
        self.apply(text, &mut applied)
    }

    /// Reloads if the file's text differs from what was last applied and from what was last refused;
    /// `None` when there is nothing new. For the file watcher.
    pub fn reload_if_changed(&self) -> Option<Result<(u64, Option<&'static str>), String>> {
        let mut applied = lock(&self.applied);
        let text = match self.read() {
            Ok(t) => t,
            Err(e) => return self.refused_once(e.clone(), e),
        };
        if applied.as_deref() == Some(text.as_str()) {
            return None;
        }
        match self.apply(text.clone(), &mut applied) {
            Ok(done) => Some(Ok(done)),
            Err(e) => self.refused_once(text, e),
        }
    }

    /// An error, unless the same input was already refused (so a watcher logs a broken file once).
    fn refused_once(
        &self,
        input: String,
        error: String,
    ) -> Option<Result<(u64, Option<&'static str>), String>> {
        let mut refused = lock(&self.refused);
        if refused.as_deref() == Some(input.as_str()) {
            return None;
        }
        *refused = Some(input);
        Some(Err(error))
    }

    fn read(&self) -> Result<String, String> {
        let path = self
            .source
            .as_ref()
            .ok_or("weir is running its embedded default; start it with --config FILE to reload")?;
        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
    }

    /// Parses, validates, compiles and stores; `applied` is held for the whole reload, so reloads from
    /// SIGHUP, the admin endpoint and the watcher never interleave.
    fn apply(
        &self,
        text: String,
        applied: &mut Option<String>,
    ) -> Result<(u64, Option<&'static str>), String> {
        let path = self.source.as_ref().ok_or("no config file")?;
        let config = weir_config::parse(&text, &path.display().to_string(), |k| {
            std::env::var(k).ok()
        })
        .map_err(|e| e.to_string())?;
        let version = self.version() + 1;
        let tail_running = self.tail_running.load(Ordering::Acquire);
        let set = compile(&config, version, tail_running)?;
        // Tail sampling runs in its own thread, started with the pipeline: a reload can change or
        // switch off its policies, not start it.
        let tail_needs_restart = !tail_running && set.tail.enabled;
        // Before the new set is live: buckets of removed rules are forgotten, kept ones stay.
        for s in lock(&self.sample).iter() {
            s.reload((*set.sample).clone());
        }
        if let Some(live) = self.set.get() {
            live.store(set);
        }
        self.version.store(version, Ordering::Release);
        let before = applied
            .as_deref()
            .and_then(|t| weir_config::parse(t, "", |k| std::env::var(k).ok()).ok());
        *applied = Some(text);
        let restart = before.is_some_and(|b| !same_runtime(&b, &config));
        let note = if tail_needs_restart {
            Some("tail sampling was not running; it starts after a restart")
        } else {
            restart.then_some(
                "receiver, queue, exporter or span_metrics settings changed too; those apply after a restart",
            )
        };
        Ok((version, note))
    }
}

/// Normalize, then Sample, then Redact: sampling decides on canonical trace context, and redaction
/// only spends time on what is kept. All three are always in the chain (a disabled stage passes
/// batches through), so a reload can change any of them.
pub fn standard_chain<S: Signal>(
    config: &Config,
    registry: &Arc<Registry>,
    policies: &Policies,
) -> anyhow::Result<Chain<S>>
where
    Normalize: Stage<S>,
    Sample: Stage<S>,
    Redact: Stage<S>,
{
    let set = policies.set(config).map_err(anyhow::Error::msg)?;
    Ok(Chain::with_policies(
        vec![
            Box::new(policies.normalize(config, registry)),
            Box::new(policies.sample(config, registry)),
            Box::new(
                policies
                    .redact(config, registry)
                    .map_err(anyhow::Error::msg)?,
            ),
        ],
        set,
    ))
}

/// Every stage policy of `config`, as version `version`.
/// `tail_running`: whether a tail sampler was started; without one, records with a trace id cannot
/// be held with their trace, so `logs: with_trace` must not let them skip the log rules.
fn compile(config: &Config, version: u64, tail_running: bool) -> Result<PolicySet, String> {
    let mut sample = SamplePolicy::from(&config.pipeline.sample);
    sample.logs_with_trace &= tail_running;
    Ok(PolicySet {
        version,
        normalize: Arc::new(NormalizePolicy::from(&config.pipeline.normalize)),
        sample: Arc::new(sample),
        redact: Arc::new(RedactPolicy::compile(&config.pipeline.redact, |k| {
            std::env::var(k).ok()
        })?),
        tail: Arc::new(TailPolicy::from_config(&config.pipeline.sample)),
    })
}

/// Whether everything but the stage policies is the same: what a reload cannot change in a running
/// Weir, so a difference there needs a restart.
fn same_runtime(a: &Config, b: &Config) -> bool {
    a.receivers == b.receivers
        && a.exporters == b.exporters
        && a.pipeline.intake_queue == b.pipeline.intake_queue
        && a.admin == b.admin
        && a.pipeline.span_metrics == b.pipeline.span_metrics
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use weir_pipeline::{fixtures, Batch, Logs};

    /// Version `v` of the policies leaves `v` in two places: the log rule that kept a record
    /// (`policy_attribute`) and the mask redaction writes over `code.function`.
    fn config(v: usize) -> String {
        format!(
            "pipeline:\n  sample:\n    policy_attribute: weir.rule\n    logs:\n      rules: [{{name: v{v}, probability: 1.0}}]\n  redact:\n    enabled: true\n    keys: [{{key: code.function, action: mask}}]\n    mask: {{replacement: v{v}}}\nexporters: {{b: {{blackhole: {{}}}}}}\n"
        )
    }

    fn text(v: Option<&Value>) -> String {
        match v {
            Some(Value::StringValue(s)) => s.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn same_runtime_ignores_how_the_yaml_is_written_but_not_what_it_says() {
        let parse = |yaml: &str| weir_config::parse(yaml, "t", |_| None).unwrap();
        let block = parse(
            "receivers:\n  grpc:\n    endpoint: 127.0.0.1:4317\n    max_request_bytes: 16MiB\nexporters:\n  a:\n    blackhole: {}\n  b:\n    file:\n      path: /tmp/w\n      rotate_bytes: 1MiB\n    queue:\n      max_items: 10\n",
        );
        // Flow style, other key order, exporters listed the other way round, a default spelled out
        // and a differently written equal size: the same runtime.
        let flow = parse(
            "exporters: {b: {queue: {max_items: 10}, file: {rotate_bytes: 1024KiB, path: /tmp/w}}, a: {blackhole: {}}}\nreceivers: {grpc: {max_request_bytes: 16777216, endpoint: \"127.0.0.1:4317\", enabled: true}}\npipeline: {sample: {traces: {probability: 0.5}}}\n",
        );
        assert!(
            same_runtime(&block, &flow),
            "stage policies and formatting aside, equal"
        );
        let changed = parse(
            "exporters: {b: {queue: {max_items: 11}, file: {rotate_bytes: 1MiB, path: /tmp/w}}, a: {blackhole: {}}}\n",
        );
        assert!(
            !same_runtime(&block, &changed),
            "an exporter's queue changed"
        );
        let retried = parse(
            "exporters: {b: {queue: {max_items: 10}, file: {rotate_bytes: 1MiB, path: /tmp/w}}, a: {blackhole: {}, timeout: 5s}}\n",
        );
        assert!(
            !same_runtime(&block, &retried),
            "an exporter's timeout changed"
        );
    }

    #[test]
    fn logs_skip_the_log_rules_for_their_trace_only_while_a_tail_sampler_runs() {
        let yaml = "pipeline:\n  sample:\n    tail:\n      logs: with_trace\n      policies: [{name: e, error: true}]\nexporters: {b: {blackhole: {}}}\n";
        let config = weir_config::parse(yaml, "t", |_| None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, yaml).unwrap();
        // Started without tail sampling: a reload that turns it on cannot hold logs yet.
        let idle = Policies::new(Some(path.clone()));
        assert!(!idle.set(&config).unwrap().load().sample.logs_with_trace);
        idle.reload().unwrap();
        assert!(!idle.set(&config).unwrap().load().sample.logs_with_trace);
        let running = Policies::new(Some(path));
        running.tail(&config).unwrap();
        assert!(running.set(&config).unwrap().load().sample.logs_with_trace);
    }

    /// Keeps every trace under a policy named after the version of the file.
    fn tail_config(v: usize) -> String {
        format!("pipeline:\n  sample:\n    tail:\n      decision_wait: 1h\n      policies: [{{name: keep-v{v}, span_count: {{min: 1}}}}]\nexporters: {{b: {{blackhole: {{}}}}}}\n")
    }

    struct Discard;
    impl weir_pipeline::tail::Outlets for Discard {
        fn spans(&mut self, _: Batch<weir_pipeline::Traces>) {}
        fn logs(&mut self, _: Batch<Logs>) {}
    }

    #[test]
    fn the_tail_sampler_decides_under_the_set_a_reload_stored_and_counts_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, tail_config(0)).unwrap();
        let policies = Policies::new(Some(path.clone()));
        let config = weir_config::parse(&tail_config(0), "t", |_| None).unwrap();
        let sampler = policies.tail(&config).unwrap();
        let registry = weir_pipeline::metrics::Registry::new();
        let (tx, rx) = weir_pipeline::bounded(weir_pipeline::queue::Limits {
            max_items: 1000,
            max_bytes: 1 << 20,
        });
        let thread = sampler.spawn(rx, &registry, Discard).unwrap();
        std::fs::write(&path, tail_config(1)).unwrap();
        let (version, _) = policies.reload().unwrap();
        assert_eq!(sampler.policy().rules[0].name.as_ref(), "keep-v1");
        let spans = Batch::measured(fixtures::resource_spans(1, 3));
        assert!(tx
            .send_blocking(weir_pipeline::tail::TailInput::Spans(spans))
            .is_ok());
        drop(tx);
        thread.join().unwrap();
        let text = registry.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("weir_tail_traces_total{"))
            .unwrap_or_else(|| panic!("no tail decision counted:\n{text}"));
        assert!(
            line.contains(r#"policy="keep-v1""#)
                && line.contains(&format!(r#"version="{version}""#)),
            "{line}"
        );
    }

    #[test]
    fn every_batch_runs_under_one_policy_version_during_a_reload_storm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.yaml");
        std::fs::write(&path, config(0)).unwrap();
        let policies = Arc::new(Policies::new(Some(path)));
        let registry = weir_pipeline::metrics::Registry::new();
        let first = weir_config::parse(&config(0), "t", |_| None).unwrap();
        let chain = standard_chain::<Logs>(&first, &registry, &policies).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let storm = {
            let (policies, stop) = (policies.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut applied = None;
                let mut v = 1;
                while !stop.load(Ordering::Relaxed) {
                    policies.apply(config(v), &mut applied).unwrap();
                    v += 1;
                }
                v
            })
        };
        let mut mixed = Vec::new();
        let (mut batches, start) = (0, std::time::Instant::now());
        // Enough batches and enough reloads among them, however slow the machine is today.
        while (batches < 3000 || policies.version() < 200) && start.elapsed().as_secs() < 30 {
            batches += 1;
            let mut batch = Batch::<Logs>::measured(fixtures::resource_logs(1, 4));
            chain.apply(&mut batch);
            let mut seen = std::collections::BTreeSet::new();
            for r in batch
                .resources
                .iter()
                .flat_map(|r| &r.scope_logs)
                .flat_map(|s| &s.log_records)
            {
                let get = |k: &str| {
                    text(
                        r.attributes
                            .iter()
                            .find(|a| a.key == k)
                            .and_then(|a| a.value.as_ref()?.value.as_ref()),
                    )
                };
                seen.insert(format!(
                    "rule {} / mask {}",
                    get("weir.rule"),
                    get("code.function")
                ));
            }
            let versions: std::collections::BTreeSet<_> = seen
                .iter()
                .flat_map(|s| {
                    s.split(' ')
                        .filter(|w| w.starts_with('v'))
                        .map(str::to_owned)
                })
                .collect();
            // Config v is the v-th reload: version v + 1, which the batch says it ran under.
            let carried = format!("v{}", batch.policy_version() - 1);
            if versions.len() != 1 || !versions.contains(&carried) {
                mixed.push(seen);
            }
        }
        stop.store(true, Ordering::Relaxed);
        let reloads = storm.join().unwrap();
        assert!(reloads >= 200, "the storm ran ({reloads} reloads)");
        assert!(
            mixed.is_empty(),
            "{} of {batches} batches ran under two versions, e.g. {:?}",
            mixed.len(),
            mixed.first()
        );
    }
}
