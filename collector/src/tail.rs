//! The tail sampler between the pipelines that feed it. Spans (and, with `logs: with_trace`, log
//! records that carry a trace id) leave their stage workers for one queue into the sampler's thread,
//! which hands kept items to each signal's exporters. The logs pipeline is built first, so its
//! exporters' routes are here when the traces pipeline starts the thread.

use crate::reload::Policies;
use crate::workers::{fan_out, register_queue, Outlet, Route};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use weir_config::Config;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::queue::QueueStats;
use weir_pipeline::tail::{divert, Outlets, TailInput, TailSampler};
use weir_pipeline::{bounded, Batch, Receiver, Sender, Signal};
use weir_pipeline::{Logs, Traces};

pub struct TailLink {
    sampler: Arc<TailSampler>,
    tx: Sender<TailInput>,
    rx: Receiver<TailInput>,
    logs: Mutex<Option<Arc<Vec<Route<Logs>>>>>,
}

impl TailLink {
    /// `None` unless tail sampling is configured and some exporter takes traces; an error when the
    /// policies do not compile. Dropping the link once the pipelines are built leaves the workers as
    /// the queue's only senders, so the thread ends when they do.
    pub fn new(
        config: &Config,
        registry: &Registry,
        policies: &Policies,
    ) -> Result<Option<Self>, String> {
        if config.pipeline.sample.tail.is_none()
            || !config
                .exporters
                .values()
                .any(|e| e.receives(weir_config::SignalKind::Traces))
        {
            return Ok(None);
        }
        let (tx, rx) = bounded::<TailInput>(config.pipeline.intake_queue.into());
        register_queue(registry, "tail", "traces", tx.stats());
        Ok(Some(TailLink {
            sampler: policies.tail(config)?,
            tx,
            rx,
            logs: Mutex::new(None),
        }))
    }

    pub fn stats(&self) -> QueueStats {
        self.tx.stats()
    }

    /// What the logs workers do after their stages: records with a trace id go to the sampler when the
    /// batch's policy holds logs with their trace; everything else goes to the exporters.
    pub fn logs_outlet(&self, routes: Vec<Route<Logs>>, registry: &Registry) -> Outlet<Logs> {
        let routes = Arc::new(routes);
        *lock(&self.logs) = Some(routes.clone());
        let into = IntoTail::new::<Logs>(self.tx.clone(), registry);
        let sampler = self.sampler.clone();
        Outlet::shared(routes).with_divert(move |mut batch: Batch<Logs>| {
            let with_trace = match batch.policies() {
                Some(set) => set.sample.logs_with_trace,
                None => sampler.policy().logs_with_trace,
            };
            if with_trace {
                if let Some(held) = divert::take_traced(&mut batch) {
                    into.send(TailInput::Logs(held));
                }
            }
            Some(batch)
        })
    }

    /// Starts the sampler's thread; the traces workers send every batch to it.
    pub fn traces_outlet(
        &self,
        routes: Vec<Route<Traces>>,
        registry: &Arc<Registry>,
    ) -> std::io::Result<(Outlet<Traces>, JoinHandle<()>)> {
        let exporters = Exporters {
            spans: routes,
            logs: lock(&self.logs).take(),
        };
        let thread = self.sampler.spawn(self.rx.clone(), registry, exporters)?;
        let into = IntoTail::new::<Traces>(self.tx.clone(), registry);
        let outlet = Outlet::new(Vec::new()).with_divert(move |batch: Batch<Traces>| {
            into.send(TailInput::Spans(batch));
            None
        });
        Ok((outlet, thread))
    }
}

/// The way into the sampler's queue: it blocks when full, like `overflow: block`.
struct IntoTail {
    tx: Sender<TailInput>,
    dropped: Counter,
}

impl IntoTail {
    fn new<S: Signal>(tx: Sender<TailInput>, registry: &Registry) -> Self {
        IntoTail {
            tx,
            dropped: registry.counter(
                "weir_exporter_dropped_items_total",
                "Items that never reached an exporter's queue, by reason (queue_full under overflow: drop_newest).",
                &[("exporter", "tail_sampler"), ("signal", S::KIND.as_str()), ("reason", "exporter_stopped")],
            ),
        }
    }

    fn send(&self, input: TailInput) {
        let items = weir_pipeline::queue::Weighted::items(&input) as u64;
        if self.tx.send_blocking(input).is_err() {
            self.dropped.add(items);
        }
    }
}

/// Where the sampler's thread sends kept items.
struct Exporters {
    spans: Vec<Route<Traces>>,
    logs: Option<Arc<Vec<Route<Logs>>>>,
}

impl Outlets for Exporters {
    fn spans(&mut self, batch: Batch<Traces>) {
        fan_out(&self.spans, batch);
    }
    fn logs(&mut self, batch: Batch<Logs>) {
        match &self.logs {
            Some(routes) => fan_out(routes, batch),
            // The logs outlet is the only way logs reach the sampler, and it registers the routes.
            None => tracing::error!(items = batch.items(), "tail sampler has no logs exporters"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
