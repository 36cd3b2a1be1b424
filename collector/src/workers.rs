//! Stage workers: plain threads that take batches from the intake queue, run the stage chain in place,
//! and hand the result to every exporter's own queue, so a slow exporter never stalls another.

use crate::share::MemoryShare;
use crate::spill::Spill;
use std::sync::Arc;
use weir_config::Overflow;
use weir_pipeline::metrics::{Counter, Registry};
use weir_pipeline::queue::QueueStats;
use weir_pipeline::wal::Lifecycle;
use weir_pipeline::{Batch, Chain, Receiver, SendError, Sender, Signal, TrySendError};

/// The way from the stage workers into one exporter's queue.
pub struct Route<S: Signal> {
    pub queue: Sender<Batch<S>>,
    pub overflow: Overflow,
    /// The exporter's spill log, with `overflow: spill`.
    spill: Option<Arc<Spill<S>>>,
    /// What this queue may hold while memory is short, if it may drop or spill.
    share: MemoryShare,
    dropped_full: Counter,
    dropped_memory: Counter,
    dropped_closed: Counter,
}

/// The last route gone means no worker writes to the spill log any more.
impl<S: Signal> Drop for Route<S> {
    fn drop(&mut self) {
        if let Some(s) = &self.spill {
            s.close();
        }
    }
}

impl<S: Signal> Route<S> {
    pub fn new(
        queue: Sender<Batch<S>>,
        overflow: Overflow,
        exporter: &str,
        registry: &Registry,
    ) -> Self {
        let dropped = |reason| {
            registry.counter(
                "weir_exporter_dropped_items_total",
                "Items that never reached an exporter's queue, by reason: queue_full (overflow: drop_newest), memory_limit (drop_newest with memory short and the queue over its share), exporter_stopped.",
                &[("exporter", exporter), ("signal", S::KIND.as_str()), ("reason", reason)],
            )
        };
        Route {
            queue,
            overflow,
            spill: None,
            share: MemoryShare::unlimited(),
            dropped_full: dropped("queue_full"),
            dropped_memory: dropped("memory_limit"),
            dropped_closed: dropped("exporter_stopped"),
        }
    }

    /// While memory is short, this queue (if it may drop or spill) counts as full once it holds
    /// its share: a stuck exporter's queue would otherwise grow until the receivers refuse
    /// everything, starving the exporters that keep up.
    pub fn with_memory_share(mut self, share: MemoryShare) -> Self {
        self.share = share;
        self
    }

    fn crowding(&self) -> bool {
        self.share.crowded(&self.queue)
    }

    /// Batches the queue has no room for go to `spill` (for `overflow: spill`).
    pub fn with_spill(mut self, spill: Arc<Spill<S>>) -> Self {
        self.spill = Some(spill);
        self
    }

    fn push(&self, batch: Batch<S>) {
        let items = batch.items() as u64;
        match (self.overflow, &self.spill) {
            (Overflow::DropNewest, _) if self.crowding() => self.dropped_memory.add(items),
            (Overflow::DropNewest, _) => match self.queue.try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => self.dropped_full.add(items),
                Err(TrySendError::Closed(_)) => self.dropped_closed.add(items),
            },
            (Overflow::Spill, Some(spill)) => {
                // Behind a backlog on disk, a batch joins it rather than overtake it; with memory
                // short, a queue over its share sends it to disk too.
                let batch = if spill.backlog() || self.crowding() {
                    batch
                } else {
                    match self.queue.try_send(batch) {
                        Ok(()) => return,
                        Err(TrySendError::Full(b)) => b,
                        Err(TrySendError::Closed(_)) => return self.dropped_closed.add(items),
                    }
                };
                if let Err(Some(batch)) = spill.write(batch) {
                    self.block(batch, items);
                }
            }
            _ => self.block(batch, items),
        }
    }

    fn block(&self, batch: Batch<S>, items: u64) {
        if let Err(SendError::Closed(_) | SendError::Timeout(_)) = self.queue.send_blocking(batch) {
            self.dropped_closed.add(items);
        }
    }
}

/// Takes a batch and gives back what should still go to the routes.
type Divert<S> = Box<dyn Fn(Batch<S>) -> Option<Batch<S>> + Send + Sync>;

/// Where batches go after the stages: the exporters' routes, after a component such as the tail
/// sampler has taken what it holds.
pub struct Outlet<S: Signal> {
    routes: Arc<Vec<Route<S>>>,
    divert: Option<Divert<S>>,
}

impl<S: Signal> Outlet<S> {
    pub fn new(routes: Vec<Route<S>>) -> Self {
        Self::shared(Arc::new(routes))
    }

    /// Routes another thread also sends to (the tail sampler's kept logs).
    pub fn shared(routes: Arc<Vec<Route<S>>>) -> Self {
        Outlet {
            routes,
            divert: None,
        }
    }

    pub fn with_divert(
        mut self,
        divert: impl Fn(Batch<S>) -> Option<Batch<S>> + Send + Sync + 'static,
    ) -> Self {
        self.divert = Some(Box::new(divert));
        self
    }

    fn send(&self, batch: Batch<S>) {
        let batch = match &self.divert {
            Some(divert) => divert(batch),
            None => Some(batch),
        };
        if let Some(batch) = batch.filter(|b| !b.is_empty()) {
            fan_out(&self.routes, batch);
        }
    }
}

/// Starts `n` worker threads; they end when the intake queue is closed and drained, and the routes
/// (and with them the exporter queues' senders) are dropped when the last one ends.
pub fn spawn<S: Signal>(
    n: usize,
    intake: Receiver<Batch<S>>,
    chain: Arc<Chain<S>>,
    outlet: Arc<Outlet<S>>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..n)
        .map(|i| {
            let (intake, chain, outlet) = (intake.clone(), chain.clone(), outlet.clone());
            std::thread::Builder::new()
                .name(format!("weir-{}-{i}", S::KIND.as_str()))
                .spawn(move || run(&intake, &chain, &outlet))
        })
        .collect()
}

fn run<S: Signal>(intake: &Receiver<Batch<S>>, chain: &Chain<S>, outlet: &Outlet<S>) {
    while let Some(mut batch) = intake.recv_blocking() {
        chain.apply(&mut batch);
        if !batch.is_empty() {
            outlet.send(batch);
        }
    }
}

/// Every route but the last gets a copy; the last one takes the batch itself.
pub fn fan_out<S: Signal>(routes: &[Route<S>], batch: Batch<S>) {
    if let Some((last, others)) = routes.split_last() {
        for route in others {
            route.push(batch.duplicate());
        }
        last.push(batch);
    }
}

/// Gauges for one queue (intake, tail sampler or exporter): items and bytes waiting, and its limits.
pub fn register_queue(registry: &Registry, queue: &str, signal: &str, stats: QueueStats) {
    let labels: &[(&'static str, &str)] = &[("queue", queue), ("signal", signal)];
    let limits = stats.limits();
    let s = stats.clone();
    registry.gauge_fn(
        "weir_queue_items",
        "Items waiting in a queue.",
        labels,
        move || s.items() as f64,
    );
    let s = stats;
    registry.gauge_fn(
        "weir_queue_bytes",
        "Memory held by what waits in a queue (what decoding it allocated).",
        labels,
        move || s.bytes() as f64,
    );
    registry.gauge_fn(
        "weir_queue_capacity_items",
        "Most items a queue holds.",
        labels,
        move || limits.max_items as f64,
    );
    registry.gauge_fn(
        "weir_queue_capacity_bytes",
        "Most memory a queue holds (its max_bytes).",
        labels,
        move || limits.max_bytes as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use weir_pipeline::queue::Limits;
    use weir_pipeline::{bounded, fixtures, Logs};

    #[test]
    fn fans_out_to_every_exporter_and_counts_drops() {
        let registry = Registry::new();
        let lim = |n| Limits {
            max_items: n,
            max_bytes: usize::MAX,
        };
        let (in_tx, in_rx) = bounded::<Batch<Logs>>(lim(1000));
        let (a_tx, a_rx) = bounded(lim(1000));
        let (b_tx, b_rx) = bounded(lim(10));
        let outlet = Arc::new(Outlet::new(vec![
            Route::new(a_tx, Overflow::Block, "a", &registry),
            Route::new(b_tx, Overflow::DropNewest, "b", &registry),
        ]));
        let workers = spawn(2, in_rx, Arc::new(Chain::pass()), outlet).unwrap();
        for _ in 0..3 {
            in_tx
                .try_send(Batch::measured(fixtures::resource_logs(1, 8)))
                .unwrap();
        }
        drop(in_tx);
        for w in workers {
            w.join().unwrap();
        }
        let count = |rx: &Receiver<Batch<Logs>>| {
            let mut n = 0;
            while let Some(b) = rx.try_recv() {
                n += b.items();
            }
            n
        };
        assert_eq!(count(&a_rx), 24);
        assert_eq!(
            count(&b_rx),
            8,
            "b holds one batch of 8; two more did not fit"
        );
        let text = registry.render();
        assert!(
            text.contains("weir_exporter_dropped_items_total{exporter=\"b\",signal=\"logs\",reason=\"queue_full\"} 16"),
            "{text}"
        );
        assert!(
            a_rx.recv_blocking().is_none(),
            "exporter queues close when workers end"
        );
    }

    #[test]
    fn with_memory_short_a_queue_over_its_share_drops_and_the_others_still_take() {
        static SHORT: AtomicBool = AtomicBool::new(false);
        let registry = Registry::new();
        let lim = Limits {
            max_items: 1000,
            max_bytes: usize::MAX,
        };
        let batch = || Batch::<Logs>::measured(fixtures::resource_logs(1, 8));
        let one = batch().bytes();
        let batches = |rx: &Receiver<Batch<Logs>>| rx.stats().items() / 8;
        let (stuck_tx, stuck_rx) = bounded(lim);
        let (healthy_tx, healthy_rx) = bounded(lim);
        let short = || SHORT.load(Ordering::Relaxed);
        let routes = vec![
            Route::new(stuck_tx, Overflow::DropNewest, "stuck", &registry)
                .with_memory_share(MemoryShare::for_test(2 * one, short)),
            Route::new(healthy_tx, Overflow::Block, "healthy", &registry)
                .with_memory_share(MemoryShare::for_test(0, short)),
        ];
        for _ in 0..4 {
            fan_out(&routes, batch());
        }
        assert_eq!(
            batches(&stuck_rx),
            4,
            "memory is not short: queues fill to their own limits"
        );
        SHORT.store(true, Ordering::Relaxed);
        for _ in 0..3 {
            fan_out(&routes, batch());
        }
        assert_eq!(
            batches(&stuck_rx),
            4,
            "over its share with memory short: dropped"
        );
        assert_eq!(
            batches(&healthy_rx),
            7,
            "a queue that pushes back is not held to a share"
        );
        while batches(&stuck_rx) > 1 {
            stuck_rx.try_recv();
        }
        fan_out(&routes, batch());
        assert_eq!(batches(&stuck_rx), 2, "under its share again: it takes");
        assert!(registry.render().contains(
            "weir_exporter_dropped_items_total{exporter=\"stuck\",signal=\"logs\",reason=\"memory_limit\"} 24"
        ));
    }

    #[test]
    fn with_memory_short_a_spilling_queue_over_its_share_sends_to_disk_and_is_not_fed_back() {
        static SHORT: AtomicBool = AtomicBool::new(true);
        let dir = tempfile::tempdir().unwrap();
        let durable: weir_config::DurableConfig = serde_yaml_ng::from_str(&format!(
            "{{dir: \"{}\", compress: false}}",
            dir.path().display()
        ))
        .unwrap();
        let registry = Registry::new();
        let (tx, rx) = bounded(Limits {
            max_items: 1000,
            max_bytes: usize::MAX,
        });
        let batch = || Batch::<Logs>::measured(fixtures::resource_logs(1, 10));
        let share = MemoryShare::for_test(2 * batch().bytes(), || SHORT.load(Ordering::Relaxed));
        let spill = Spill::<Logs>::open(&durable, "slow", 1 << 20, tx.clone(), &registry).unwrap();
        let feeder = spill.start_feeder(tx.clone(), share).unwrap();
        let route = Route::new(tx, Overflow::Spill, "slow", &registry)
            .with_spill(spill.clone())
            .with_memory_share(share);
        for _ in 0..4 {
            route.push(batch());
        }
        // Counted once the spill log has committed it, on its own thread.
        let metric = |name: &str| {
            registry
                .render()
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let until = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !done() {
                assert!(std::time::Instant::now() < deadline, "{what}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        until("two batches went to disk", &|| {
            metric("weir_spill_written_items_total") == 20.0
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            rx.stats().items(),
            20,
            "the queue holds its share; the feeder does not read the rest back while memory is short"
        );
        SHORT.store(false, Ordering::Relaxed);
        until("fed back once memory is not short", &|| {
            rx.stats().items() == 40
        });
        drop(route);
        while rx.try_recv().is_some() {}
        feeder.join().unwrap();
        spill.finish();
    }
}
