//! Assembles one signal's pipeline from config: intake queue → stage workers → one queue and delivery
//! loop per exporter. Adding an exporter kind means one arm in [`spawn_exporter`].

use crate::reload::Policies;
use crate::share::MemoryShare;
use crate::shutdown::ShutdownSignal;
use crate::spill::{self, Spill};
use crate::tail::TailLink;
use crate::wire::Wire;
use crate::workers::{self, register_queue, Outlet, Route};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::task::JoinHandle as TaskHandle;
use weir_config::{ClickHouseExporter as ClickHouseConfig, LokiExporter as LokiConfig};
use weir_config::{Config, ExporterConfig, ExporterKind, Overflow};
use weir_exporters::clickhouse::ClickHouse;
use weir_exporters::loki::Loki;
use weir_exporters::otlp::{route::OtlpRoute, Otlp};
use weir_exporters::{
    deliver, deliver_once_ready, Blackhole, DeliveryMetrics, DeliverySettings, Exporter, JsonLines,
};
use weir_pipeline::metrics::Registry;
use weir_pipeline::queue::{Limits, QueueStats};
use weir_pipeline::{bounded, Batch, Chain, Receiver, Sender};
use weir_pipeline::{Logs, Metrics, Traces};

/// A running signal pipeline, for shutdown.
pub struct SignalPipeline {
    pub workers: Vec<JoinHandle<()>>,
    pub deliveries: Vec<TaskHandle<()>>,
    /// Every queue of this pipeline, to report what was left if shutdown runs out of time.
    pub queues: Vec<(String, QueueStats)>,
    /// Exporters' spill logs (`overflow: spill`), for shutdown.
    pub spills: Vec<Arc<dyn weir_pipeline::wal::Lifecycle>>,
}

/// Starts the pipeline for `S`; `None` when no exporter takes this signal.
pub async fn start<S: Destinations>(
    config: &Config,
    registry: &Arc<Registry>,
    workers: usize,
    abort: &ShutdownSignal,
    policies: &Policies,
    tail: Option<&TailLink>,
    start_wait: &StartWait,
) -> anyhow::Result<Option<(Sender<Batch<S>>, SignalPipeline)>> {
    let signal = S::KIND.as_str();
    let exporters: Vec<_> = config
        .exporters
        .iter()
        .filter(|(_, e)| e.receives(S::KIND))
        .collect();
    if exporters.is_empty() {
        tracing::warn!(
            signal,
            "no exporter takes this signal; receivers will refuse it"
        );
        return Ok(None);
    }
    let (intake_tx, intake_rx) = bounded::<Batch<S>>(config.pipeline.intake_queue.into());
    let mut queues = vec![(format!("intake/{signal}"), intake_tx.stats())];
    register_queue(registry, "intake", signal, intake_tx.stats());

    let mut routes = Vec::new();
    let mut deliveries = Vec::new();
    let mut spills: Vec<Arc<dyn weir_pipeline::wal::Lifecycle>> = Vec::new();
    let mut feeders = Vec::new();
    let share = MemoryShare::of(config);
    for (name, cfg) in exporters {
        let (tx, rx) = bounded::<Batch<S>>(Limits::from(cfg.queue.limits()));
        register_queue(registry, name, signal, tx.stats());
        queues.push((format!("exporter/{name}/{signal}"), tx.stats()));
        deliveries.push(
            spawn_exporter::<S>(
                name,
                cfg,
                config.durable.is_some(),
                rx,
                registry,
                abort.clone(),
                start_wait,
            )
            .await?,
        );
        let mut route =
            Route::new(tx.clone(), cfg.queue.overflow, name, registry).with_memory_share(share);
        // A spill log left by an earlier config is fed to the exporter too, whatever its overflow now.
        let spilling = |d: &weir_config::DurableConfig| {
            cfg.queue.overflow == Overflow::Spill || spill::dir(d, name, signal).exists()
        };
        if let Some(durable) = config.durable.as_ref().filter(|d| spilling(d)) {
            let max = cfg.queue.spill_max_bytes.0;
            let spill = Spill::<S>::open(durable, name, max, tx.clone(), registry)?;
            feeders.push(spill.start_feeder(tx, share)?);
            spills.push(spill.clone());
            route = route.with_spill(spill);
        }
        routes.push(route);
    }
    if let Some(d) = &config.durable {
        spill::warn_orphans(d, signal, |name| config.exporters.contains_key(name));
    }
    let chain = Arc::new(S::chain(config, registry, policies)?);
    let (outlet, tail) = S::tail(registry, tail, routes, &mut queues)?;
    let mut workers = workers::spawn(workers, intake_rx, chain, Arc::new(outlet))?;
    workers.extend(tail);
    // After the threads that write to the spill logs: a feeder ends once they are gone.
    workers.extend(feeders);
    Ok(Some((
        intake_tx,
        SignalPipeline {
            workers,
            deliveries,
            queues,
            spills,
        },
    )))
}

/// Where the stage workers send, and the thread of the component behind it, if any.
pub type Tail<S> = (Outlet<S>, Option<JoinHandle<()>>);

/// The stage chain each signal runs, and what sits between the stage workers and the exporters.
pub trait Stages: Wire {
    fn chain(
        config: &Config,
        registry: &Arc<Registry>,
        policies: &Policies,
    ) -> anyhow::Result<Chain<Self>>;

    /// Puts the tail sampler (when there is one) between the workers and `routes` (the exporters'
    /// queues). By default there is none: the workers send straight to the routes.
    fn tail(
        _registry: &Arc<Registry>,
        _link: Option<&TailLink>,
        routes: Vec<Route<Self>>,
        _queues: &mut Vec<(String, QueueStats)>,
    ) -> anyhow::Result<Tail<Self>> {
        Ok((Outlet::new(routes), None))
    }
}

/// Metrics carry no trace context to normalise and are not sampled; they are redacted.
impl Stages for Metrics {
    fn chain(
        config: &Config,
        registry: &Arc<Registry>,
        policies: &Policies,
    ) -> anyhow::Result<Chain<Self>> {
        let redact = policies
            .redact(config, registry)
            .map_err(anyhow::Error::msg)?;
        let set = policies.set(config).map_err(anyhow::Error::msg)?;
        Ok(Chain::with_policies(vec![Box::new(redact)], set))
    }
}

impl Stages for Logs {
    fn chain(
        config: &Config,
        registry: &Arc<Registry>,
        policies: &Policies,
    ) -> anyhow::Result<Chain<Self>> {
        crate::reload::standard_chain(config, registry, policies)
    }

    /// With tail sampling, records that carry a trace id can be held with their trace
    /// (`logs: with_trace`, checked per batch so a reload can switch it).
    fn tail(
        registry: &Arc<Registry>,
        link: Option<&TailLink>,
        routes: Vec<Route<Self>>,
        _queues: &mut Vec<(String, QueueStats)>,
    ) -> anyhow::Result<Tail<Self>> {
        Ok(match link {
            Some(link) => (link.logs_outlet(routes, registry), None),
            None => (Outlet::new(routes), None),
        })
    }
}

impl Stages for Traces {
    /// With `pipeline.span_metrics`, spans are counted after normalisation and before sampling
    /// drops any.
    fn chain(
        config: &Config,
        registry: &Arc<Registry>,
        policies: &Policies,
    ) -> anyhow::Result<Chain<Self>> {
        let mut chain = crate::reload::standard_chain(config, registry, policies)?;
        if let Some(stage) = crate::span_metrics::stage(config, registry, policies) {
            chain.insert_before("sample", Box::new(stage));
        }
        Ok(chain)
    }

    /// With `pipeline.sample.tail` configured, the workers feed the tail sampler's queue and its
    /// thread fans kept spans out to the exporters.
    fn tail(
        registry: &Arc<Registry>,
        link: Option<&TailLink>,
        routes: Vec<Route<Self>>,
        queues: &mut Vec<(String, QueueStats)>,
    ) -> anyhow::Result<Tail<Self>> {
        let Some(link) = link else {
            return Ok((Outlet::new(routes), None));
        };
        queues.push(("tail/traces".into(), link.stats()));
        let (outlet, thread) = link.traces_outlet(routes, registry)?;
        Ok((outlet, Some(thread)))
    }
}

/// Everything a delivery loop needs besides the exporter itself.
pub struct Delivery<S: Wire> {
    pub name: String,
    pub queue: Receiver<Batch<S>>,
    pub settings: DeliverySettings,
    pub metrics: DeliveryMetrics,
    pub abort: ShutdownSignal,
}

impl<S: Wire> Delivery<S> {
    pub fn spawn<E: Exporter<S>>(self, exporter: E) -> TaskHandle<()> {
        tokio::spawn(deliver(
            self.name,
            Arc::new(exporter),
            self.queue,
            self.settings,
            self.metrics,
            self.abort.wait(),
        ))
    }

    /// Delivers with the exporter `ready` yields, once it does (see [`deliver_once_ready`]).
    pub fn spawn_once_ready<E: Exporter<S>>(
        self,
        ready: impl std::future::Future<Output = Arc<E>> + Send + 'static,
    ) -> TaskHandle<()> {
        tokio::spawn(deliver_once_ready(
            self.name,
            ready,
            self.queue,
            self.settings,
            self.metrics,
            self.abort.wait(),
        ))
    }
}

/// How long start-up (receivers not yet listening) waits for destinations that must answer before
/// they are used, all of them together: a black-holed server never answers, a healthy one does in
/// milliseconds, and one that has not by then is connected to in the background. Waiting per
/// exporter and signal instead made one black-holed ClickHouse delay readiness by 9 s.
pub const CONNECT_AT_START: std::time::Duration = std::time::Duration::from_secs(3);

/// What each connect gets past the shared wait: enough for a server that answers at once to say
/// it refuses (credentials, schema), which must still stop start-up.
const CONNECT_AT_LEAST: std::time::Duration = std::time::Duration::from_millis(500);

/// The one wait of [`CONNECT_AT_START`], from the first connect at start.
#[derive(Default)]
pub struct StartWait(std::sync::OnceLock<tokio::time::Instant>);

impl StartWait {
    /// When a connect starting now must have answered.
    pub fn deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let first = *self.0.get_or_init(|| now);
        (first + CONNECT_AT_START).max(now + CONNECT_AT_LEAST)
    }
}

/// Destinations that take only some signals: each signal says which it can build.
pub trait Destinations: Stages + OtlpRoute {
    /// Connects by `connect_by` or goes on connecting in the background.
    fn clickhouse(
        cfg: &ClickHouseConfig,
        delivery: Delivery<Self>,
        connect_by: tokio::time::Instant,
    ) -> impl std::future::Future<Output = anyhow::Result<TaskHandle<()>>> + Send;

    /// Loki takes logs only; validation keeps other signals away from it.
    fn loki(
        cfg: &LokiConfig,
        delivery: Delivery<Self>,
        registry: &Arc<Registry>,
    ) -> anyhow::Result<TaskHandle<()>>;
}

macro_rules! destinations {
    ($($signal:ty => $loki:expr),*) => {$(
        impl Destinations for $signal {
            async fn clickhouse(cfg: &ClickHouseConfig, delivery: Delivery<Self>, connect_by: tokio::time::Instant) -> anyhow::Result<TaskHandle<()>> {
                let kind = <Self as weir_pipeline::Signal>::KIND;
                let first = tokio::time::timeout_at(connect_by, ClickHouse::connect(cfg, kind))
                    .await
                    .unwrap_or_else(|_| {
                        Err(weir_exporters::ExportError::retryable(
                            "timeout",
                            format!("no answer within {CONNECT_AT_START:?} of starting"),
                        ))
                    });
                match first {
                    Ok(exporter) => Ok(delivery.spawn(exporter)),
                    // A refusal (credentials, schema) is a configuration to fix: fail the start.
                    Err(e) if e.retry == weir_exporters::Retry::Never => {
                        anyhow::bail!("exporters.{}.clickhouse: {e}", delivery.name)
                    }
                    // A server that is down may come back; a collector that will not start loses
                    // what its clients send meanwhile, so start and hold it as for a later outage.
                    Err(e) => {
                        tracing::warn!(exporter = %delivery.name, error = %e, "ClickHouse is unreachable at start; starting anyway: what arrives for it waits in its queue while Weir keeps trying");
                        let (cfg, name) = (cfg.clone(), delivery.name.clone());
                        let attempt = delivery.settings.timeout;
                        Ok(delivery.spawn_once_ready(async move {
                            Arc::new(ClickHouse::connect_retrying(&cfg, kind, &name, attempt).await)
                        }))
                    }
                }
            }

            fn loki(cfg: &LokiConfig, delivery: Delivery<Self>, registry: &Arc<Registry>) -> anyhow::Result<TaskHandle<()>> {
                let spawn: fn(&LokiConfig, Delivery<Self>, &Arc<Registry>) -> anyhow::Result<TaskHandle<()>> = $loki;
                spawn(cfg, delivery, registry)
            }
        }
    )*};
}

fn loki_only<S: Wire>(
    _: &LokiConfig,
    d: Delivery<S>,
    _: &Arc<Registry>,
) -> anyhow::Result<TaskHandle<()>> {
    anyhow::bail!(
        "exporters.{}: loki takes only logs, not {}",
        d.name,
        S::KIND.as_str()
    )
}

destinations!(
    Logs => |cfg, d, registry| {
        let exporter = Loki::try_new(cfg, registry, &d.name)
            .map_err(|e| anyhow::anyhow!("exporters.{}.loki: {e}", d.name))?;
        Ok(d.spawn(exporter))
    },
    Traces => loki_only::<Traces>,
    Metrics => loki_only::<Metrics>
);

async fn spawn_exporter<S: Destinations>(
    name: &str,
    cfg: &ExporterConfig,
    durable: bool,
    queue: Receiver<Batch<S>>,
    registry: &Arc<Registry>,
    abort: ShutdownSignal,
    start_wait: &StartWait,
) -> anyhow::Result<TaskHandle<()>> {
    let delivery = Delivery {
        name: name.to_string(),
        queue,
        settings: DeliverySettings::new(cfg, durable),
        metrics: DeliveryMetrics::new(registry, name, S::KIND.as_str()),
        abort,
    };
    match cfg.kind() {
        Some(ExporterKind::File(f)) => {
            let exporter = JsonLines::new(f, S::KIND)
                .map_err(|e| anyhow::anyhow!("exporters.{name}.file: {e}"))?;
            Ok(delivery.spawn(exporter))
        }
        Some(ExporterKind::Blackhole(_)) => Ok(delivery.spawn(Blackhole)),
        Some(ExporterKind::ClickHouse(c)) => {
            S::clickhouse(c, delivery, start_wait.deadline()).await
        }
        Some(ExporterKind::Loki(l)) => S::loki(l, delivery, registry),
        Some(ExporterKind::Otlp(o)) => {
            let exporter = Otlp::<S>::new(o, name, cfg.timeout.0)
                .await
                .map_err(|e| anyhow::anyhow!("exporters.{name}.otlp: {e}"))?;
            Ok(delivery.spawn(exporter))
        }
        None => anyhow::bail!("exporters.{name}: no destination configured"),
    }
}
