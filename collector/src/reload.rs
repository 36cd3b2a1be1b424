//! Live policy reload: the config file is read, validated and compiled off the hot path, then every
//! stage's policy is stored atomically; each batch runs under exactly one version. An invalid file is
//! refused with the reason and the running policies stay. Triggered by SIGHUP, `POST /admin/reload`, and
//! changes to the config file (`reload.watch`).
//!
//! What reloads: the stage policies (`pipeline.normalize`, `pipeline.redact`, `pipeline.sample`, including the tail
//! sampler's rules and bounds; its held spans stay). Receivers, queues and
//! exporters keep the settings they started with; changing those needs a restart, and the reload
//! answer says so when they differ.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weir_config::Config;
use weir_pipeline::stages::normalize::{Normalize, NormalizePolicy};
use weir_pipeline::stages::redact::{Redact, RedactPolicy};
use weir_pipeline::stages::sample::{Sample, SamplePolicy};
use weir_pipeline::tail::{policy::TailPolicy, TailSampler};

#[derive(Default)]
pub struct Policies {
    normalize: Mutex<Vec<Arc<Normalize>>>,
    sample: Mutex<Vec<Arc<Sample>>>,
    tail: Mutex<Vec<Arc<TailSampler>>>,
    redact: Mutex<Vec<Arc<Redact>>>,
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

    pub fn normalize(
        &self,
        config: &Config,
        registry: &weir_pipeline::metrics::Registry,
    ) -> Arc<Normalize> {
        let n = Arc::new(Normalize::new(
            NormalizePolicy::from(&config.pipeline.normalize),
            registry,
        ));
        lock(&self.normalize).push(n.clone());
        n
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
        let r = Arc::new(Redact::new(
            RedactPolicy::compile(&config.pipeline.redact, |k| std::env::var(k).ok())?,
            registry,
        ));
        lock(&self.redact).push(r.clone());
        Ok(r)
    }

    pub fn tail(&self, config: &Config) -> Arc<TailSampler> {
        let t = TailSampler::new(TailPolicy::from_config(&config.pipeline.sample));
        lock(&self.tail).push(t.clone());
        t
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
        let normalize = NormalizePolicy::from(&config.pipeline.normalize);
        let sample = SamplePolicy::from(&config.pipeline.sample);
        let tail = TailPolicy::from_config(&config.pipeline.sample);
        let redact = RedactPolicy::compile(&config.pipeline.redact, |k| std::env::var(k).ok())?;
        for n in lock(&self.normalize).iter() {
            n.policy().store(normalize.clone());
        }
        for s in lock(&self.sample).iter() {
            s.reload(sample.clone());
        }
        for r in lock(&self.redact).iter() {
            r.policy().store(redact.clone());
        }
        let tails = lock(&self.tail);
        for t in tails.iter() {
            t.policy().store(tail.clone());
        }
        // Tail sampling runs in its own thread, started with the pipeline: a reload can change or
        // switch off its policies, not start it.
        let tail_needs_restart = tails.is_empty() && tail.enabled;
        drop(tails);
        let version = self.version.fetch_add(1, Ordering::AcqRel) + 1;
        let before = applied
            .as_deref()
            .and_then(|t| weir_config::parse(t, "", |k| std::env::var(k).ok()).ok());
        *applied = Some(text);
        let restart = before.is_some_and(|b| !same_runtime(&b, &config));
        let note = if tail_needs_restart {
            Some("tail sampling was not running; it starts after a restart")
        } else {
            restart.then_some(
                "receiver, queue or exporter settings changed too; those apply after a restart",
            )
        };
        Ok((version, note))
    }
}

/// Whether everything but the stage policies is the same.
fn same_runtime(a: &Config, b: &Config) -> bool {
    format!(
        "{:?}{:?}{:?}{:?}",
        a.receivers, a.exporters, a.pipeline.intake_queue, a.admin
    ) == format!(
        "{:?}{:?}{:?}{:?}",
        b.receivers, b.exporters, b.pipeline.intake_queue, b.admin
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
