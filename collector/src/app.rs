//! Wiring and lifecycle: build the pipelines, bind receivers and the admin endpoint, run until told to
//! stop, then shut down front to back: stop receivers → close intake → drain stages → flush exporters,
//! all under one deadline.

use crate::admin::{self, AdminState};
use crate::intake::{Intake, SignalIntake};
use crate::pipeline::{self, Destinations, SignalPipeline};
use crate::reload::Policies;
use crate::shutdown::ShutdownSignal;
use crate::{grpc, http};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_config::Config;
use weir_pipeline::metrics::Registry;
use weir_pipeline::{Logs, Metrics, Traces};

/// Runs Weir until `stop` resolves, then shuts down cleanly.
pub async fn run(
    config: Config,
    source: Option<std::path::PathBuf>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let registry = Registry::new();
    let (memory_limit, why) = crate::budget::resolve(&config);
    // Before any policy is compiled: the tail sampler's bound is held to a share of it.
    weir_pipeline::memory::set_limit(memory_limit);
    tracing::info!(
        memory_limit,
        "memory limit: {} MiB ({why})",
        memory_limit >> 20
    );
    weir_pipeline::memory::sending::expect_at_least(crate::budget::sending_prior(
        &config,
        memory_limit,
    ));
    let memory = Arc::new(crate::budget::MemoryBudget::new(memory_limit));
    memory.register(&registry);
    let source_watched = source.is_some();
    let policies = Arc::new(Policies::new(source));
    {
        let p = policies.clone();
        registry.gauge_fn(
            "weir_policy_version",
            "Version of the stage policies in force; increments on every successful reload.",
            &[],
            move || p.version() as f64,
        );
    }
    let workers = match config.pipeline.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Fired only if the shutdown deadline passes: delivery loops then count what they still hold.
    let (abort_delivery, abort) = ShutdownSignal::new();
    let mut build = Build {
        config: &config,
        registry: &registry,
        workers,
        abort: &abort,
        policies: &policies,
        tail: crate::tail::TailLink::new(&config, &registry, &policies)
            .map_err(anyhow::Error::msg)?,
        pipelines: Vec::new(),
        start_wait: pipeline::StartWait::default(),
    };
    let auth = match &config.receivers.auth {
        Some(a) => Some(Arc::new(
            crate::auth::Auth::load(a, |k| std::env::var(k).ok(), &registry)
                .map_err(anyhow::Error::msg)?,
        )),
        None => None,
    };
    // Logs before traces: the tail sampler, started with the traces pipeline, sends kept logs to
    // the logs exporters.
    let logs = build.intake::<Logs>().await?;
    let traces = build.intake::<Traces>().await?;
    let metrics = build.intake::<Metrics>().await?;
    let intake = Arc::new(Intake {
        request_slots: tokio::sync::Semaphore::new(config.receivers.max_concurrent_requests),
        memory,
        traces,
        logs,
        metrics,
    });
    // The workers are now the tail queue's only senders, so it closes when they end.
    build.tail = None;
    let mut pipelines = build.pipelines;
    // Span metrics count in the traces pipeline and flush into the metrics one, built last. Its
    // flusher is joined at shutdown like a pipeline's workers.
    let span_metrics = crate::span_metrics::start(&policies, &intake)?;
    let hold_metrics = span_metrics.is_some();
    pipelines.extend(span_metrics.map(|flusher| SignalPipeline {
        workers: vec![flusher],
        deliveries: Vec::new(),
        queues: Vec::new(),
        spills: Vec::new(),
    }));

    let (stop_receivers, receivers_signal) = ShutdownSignal::new();
    let mut receivers: Vec<JoinHandle<()>> = Vec::new();
    if config.receivers.grpc.enabled {
        let (addr, server) = grpc::bind(
            &config.receivers.grpc,
            intake.clone(),
            auth.clone(),
            &registry,
            receivers_signal.clone(),
        )
        .await?;
        tracing::info!(%addr, "OTLP/gRPC receiver listening");
        receivers.push(tokio::spawn(server));
    }
    if config.receivers.http.enabled {
        let (addr, server) = http::bind(
            &config.receivers.http,
            intake.clone(),
            auth,
            registry.clone(),
            receivers_signal,
        )
        .await?;
        tracing::info!(%addr, "OTLP/HTTP receiver listening");
        receivers.push(tokio::spawn(server));
    }
    let admin_state = Arc::new(AdminState {
        token: crate::admin::token_digest(&config.admin),
        reloading: tokio::sync::Mutex::new(()),
        registry: registry.clone(),
        ready: false.into(),
        intake: Some(intake.clone()),
        policies: policies.clone(),
    });
    let mut reloaders = vec![tokio::spawn(reload_on_sighup(policies.clone()))];
    if config.reload.watch && source_watched {
        reloaders.push(tokio::spawn(reload_on_change(
            policies.clone(),
            config.reload.interval.0,
        )));
    }
    let (stop_admin, admin_signal) = ShutdownSignal::new();
    let admin = if config.admin.enabled {
        let (addr, server) =
            admin::bind(&config.admin.endpoint, admin_state.clone(), admin_signal).await?;
        tracing::info!(%addr, "admin endpoint listening (/metrics, /healthz, /readyz)");
        Some(tokio::spawn(server))
    } else {
        None
    };
    admin_state.ready.store(true, Ordering::Release);
    tracing::info!(workers, exporters = ?config.exporters.keys().collect::<Vec<_>>(), "weir is ready");

    stop.await;
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout.0;
    tracing::info!(timeout = ?config.shutdown_timeout.0, "shutting down: stopping receivers");
    admin_state.ready.store(false, Ordering::Release);
    let _ = stop_receivers.send(true);
    let spills: Vec<_> = pipelines.iter().flat_map(|p| p.spills.clone()).collect();
    let clean = drain(
        receivers,
        &intake,
        pipelines,
        deadline,
        abort_delivery,
        hold_metrics,
    )
    .await;
    {
        let intake = intake.clone();
        let _ = tokio::task::spawn_blocking(move || {
            intake.finish();
            spills.iter().for_each(|s| s.finish());
        })
        .await;
    }
    reloaders.iter().for_each(JoinHandle::abort);
    let _ = stop_admin.send(true);
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    if clean {
        tracing::info!("shutdown complete: every accepted item was handed to its exporters");
        Ok(())
    } else {
        anyhow::bail!("shutdown deadline passed before all queues drained")
    }
}

/// What building the signal pipelines needs, and the pipelines built so far.
struct Build<'a> {
    config: &'a Config,
    registry: &'a Arc<Registry>,
    workers: usize,
    abort: &'a ShutdownSignal,
    policies: &'a Policies,
    tail: Option<crate::tail::TailLink>,
    pipelines: Vec<SignalPipeline>,
    /// Shared by every exporter that connects at start (see [`pipeline::CONNECT_AT_START`]).
    start_wait: pipeline::StartWait,
}

impl Build<'_> {
    /// Starts `S`'s pipeline (if any exporter takes it) and returns its intake.
    async fn intake<S: Destinations>(&mut self) -> anyhow::Result<SignalIntake<S>> {
        let started = pipeline::start::<S>(
            self.config,
            self.registry,
            self.workers,
            self.abort,
            self.policies,
            self.tail.as_ref(),
            &self.start_wait,
        )
        .await?;
        let queue = started.map(|(tx, p)| {
            self.pipelines.push(p);
            tx
        });
        let durable = match (&self.config.durable, &queue) {
            (Some(d), Some(tx)) => Some(crate::durable::Durable::start(
                d,
                tx.clone(),
                hand_over_limits(self.config),
                replay_limit(self.config),
                self.registry,
            )?),
            _ => None,
        };
        Ok(SignalIntake::new(
            queue,
            durable,
            self.config.pipeline.enqueue_timeout.0,
            self.registry,
        ))
    }
}

/// Committed batches waiting in memory for the durable log's reader: a quarter of the intake queue,
/// beyond which the reader reads them back from disk.
fn hand_over_limits(config: &Config) -> weir_pipeline::queue::Limits {
    let q = config.pipeline.intake_queue;
    weir_pipeline::queue::Limits {
        max_items: (q.max_items / 4).max(1),
        max_bytes: (q.max_bytes.as_usize() / 4).max(1),
    }
}

/// The largest request a replayed record can decompress to: what the receivers accept, with room for
/// the tenant attribute stamped after decoding.
fn replay_limit(config: &Config) -> usize {
    let r = &config.receivers;
    let largest = r
        .grpc
        .max_request_bytes
        .as_usize()
        .max(r.http.max_decompressed_bytes.as_usize());
    largest.saturating_mul(2).saturating_add(1 << 20)
}

/// Front-to-back drain; false if the deadline passed first. Then delivery loops are aborted and count
/// what they held as failed (`shutdown_deadline`), and what is left in the intake queues is logged.
async fn drain(
    receivers: Vec<JoinHandle<()>>,
    intake: &Intake,
    pipelines: Vec<SignalPipeline>,
    deadline: tokio::time::Instant,
    abort_delivery: watch::Sender<bool>,
    hold_metrics: bool,
) -> bool {
    let receivers_done = async {
        for r in receivers {
            let _ = r.await;
        }
    };
    if tokio::time::timeout_at(deadline, receivers_done)
        .await
        .is_err()
    {
        tracing::warn!("receivers did not finish open requests before the deadline");
    }
    if hold_metrics {
        // The span-metrics flusher closes it after its final flush.
        intake.close_all_but_metrics();
    } else {
        intake.close();
    }
    tracing::info!("receivers stopped; draining stage workers and flushing exporters");
    let mut queues = Vec::new();
    let mut workers = Vec::new();
    let mut deliveries = Vec::new();
    let mut spills = Vec::new();
    for p in pipelines {
        queues.extend(p.queues);
        workers.extend(p.workers);
        deliveries.extend(p.deliveries);
        spills.extend(p.spills);
    }
    let finished = async {
        for w in workers {
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        for d in deliveries {
            let _ = d.await;
        }
    };
    tokio::pin!(finished);
    if tokio::time::timeout_at(deadline, &mut finished)
        .await
        .is_ok()
    {
        return true;
    }
    // Frozen first: what the aborted loops drop is not delivered, and must be replayed next start.
    intake.abandon();
    if hold_metrics {
        // The span-metrics flusher may never get its final flush; its metrics workers must end.
        intake.metrics.close();
    }
    spills.iter().for_each(|s| s.abandon());
    let _ = abort_delivery.send(true);
    // Aborted loops drop their queues, which unblocks workers; give them a moment to count and exit.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut finished).await;
    let left: Vec<_> = queues
        .iter()
        .filter(|(_, q)| q.items() > 0)
        .map(|(n, q)| format!("{n}={}", q.items()))
        .collect();
    tracing::error!(queued = ?left, "shutdown deadline passed before every queue drained");
    if intake.durable() {
        tracing::warn!(
            "what was not delivered stays in the durable log and is replayed on the next start"
        );
    }
    false
}

/// Reloads the stage policies on every SIGHUP, logging the outcome.
async fn reload_on_sighup(policies: Arc<Policies>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /admin/reload");
        return;
    };
    while hup.recv().await.is_some() {
        let p = policies.clone();
        // Reading, parsing and compiling stay off the runtime's threads.
        if let Ok(result) = tokio::task::spawn_blocking(move || p.reload()).await {
            log_reload("SIGHUP", result);
        }
    }
}

/// Polls the config file: cheap (one small read), and unlike inotify it sees files replaced by
/// rename and Kubernetes ConfigMap symlink swaps.
async fn reload_on_change(policies: Arc<Policies>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let p = policies.clone();
        if let Ok(Some(result)) = tokio::task::spawn_blocking(move || p.reload_if_changed()).await {
            log_reload("config file changed", result);
        }
    }
}

fn log_reload(trigger: &str, result: Result<(u64, Option<&'static str>), String>) {
    match result {
        Ok((version, note)) => tracing::info!(
            version,
            note = note.unwrap_or(""),
            "{trigger}: policies reloaded"
        ),
        Err(e) => {
            tracing::error!(error = %e, "{trigger}: reload refused; the running policies stay")
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = term => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
