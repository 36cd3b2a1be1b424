use super::feeder::IDLE;
use super::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use weir_pipeline::queue::Limits;
use weir_pipeline::ticket::{Completion, Ticket};
use weir_pipeline::{bounded, fixtures, Logs, Receiver};

fn config(dir: &Path) -> DurableConfig {
    serde_yaml_ng::from_str(&format!(
        "{{dir: \"{}\", checkpoint_interval: 10ms, compress: false}}",
        dir.display()
    ))
    .unwrap()
}

fn batch() -> Batch<Logs> {
    Batch::measured(fixtures::resource_logs(1, 10))
}

struct Started {
    spill: Arc<Spill<Logs>>,
    rx: Receiver<Batch<Logs>>,
    feeder: Option<std::thread::JoinHandle<()>>,
    registry: Arc<Registry>,
}

/// A spill log for exporter "slow" whose queue is `rx`; with a feeder unless `feeding` is false.
fn started(dir: &Path, max_bytes: u64, feeding: bool) -> Started {
    let cfg = config(dir);
    let (tx, rx) = bounded(Limits {
        max_items: 100_000,
        max_bytes: usize::MAX,
    });
    let registry = Registry::new();
    let spill = Spill::<Logs>::open(&cfg, "slow", max_bytes, tx.clone(), &registry).unwrap();
    let feeder = feeding.then(|| {
        spill
            .start_feeder(tx, crate::share::MemoryShare::unlimited())
            .unwrap()
    });
    Started {
        spill,
        rx,
        feeder,
        registry,
    }
}

impl Started {
    /// A clean stop: workers gone, feeder done, last checkpoint written.
    fn stop(mut self) -> Receiver<Batch<Logs>> {
        self.spill.close();
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
        self.spill.finish();
        self.rx
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.registry.render();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0.0, |v| v.parse().unwrap())
    }
}

/// Up to `n` batches the feeder hands out, in order, waiting at most `wait`.
fn take_within(rx: &Receiver<Batch<Logs>>, n: usize, wait: Duration) -> Vec<Batch<Logs>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        if let Ok(b) = rx.recv_blocking_until(Some(Instant::now() + IDLE)) {
            got.push(b);
        }
    }
    got
}

fn take(rx: &Receiver<Batch<Logs>>, n: usize) -> Vec<Batch<Logs>> {
    take_within(rx, n, Duration::from_secs(5))
}

struct Recorded(Mutex<Vec<u64>>);
impl Completion for Recorded {
    fn complete(&self, seq: u64) {
        self.0.lock().unwrap().push(seq);
    }
}

#[test]
fn a_spilled_batch_lets_its_intake_record_go_only_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path(), 1 << 20, false);
    let intake = Arc::new(Recorded(Mutex::new(Vec::new())));
    let sink: Arc<dyn Completion> = intake.clone();
    s.spill
        .write(batch().with_ticket(Ticket::new(7, sink)))
        .map_err(|_| "writer gone")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while intake.0.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the intake record never completed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(*intake.0.lock().unwrap(), vec![7]);
    assert_eq!(
        s.metric("weir_spill_written_items_total"),
        10.0,
        "counted as committed before the record was let go"
    );
    assert!(s.spill.backlog(), "on disk, not fed yet");
    let _ = s.stop();
}

#[test]
fn spilled_batches_come_back_in_order_and_survive_a_restart_until_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path(), 1 << 20, true);
    for n in 1..=3 {
        let b = Batch::<Logs>::measured(fixtures::resource_logs(1, n));
        assert!(s.spill.write(b).is_ok());
    }
    let mut got = take(&s.rx, 3);
    assert_eq!(
        got.iter().map(Batch::items).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "in the order spilled"
    );
    assert!(got.iter().all(|b| b.tickets().len() == 1));
    // The first is delivered; the other two are still out when the process stops.
    drop(got.remove(0));
    let rx = s.stop();
    drop((rx, got));

    let s = started(dir.path(), 1 << 20, true);
    let again = take(&s.rx, 2);
    assert_eq!(
        again.iter().map(Batch::items).collect::<Vec<_>>(),
        vec![2, 3],
        "the two undelivered batches are fed again"
    );
    drop(again);
    drop(s.stop());

    let s = started(dir.path(), 1 << 20, true);
    assert!(
        take_within(&s.rx, 1, Duration::from_millis(300)).is_empty(),
        "all delivered: nothing comes back"
    );
    assert!(!s.spill.backlog());
    drop(s.stop());
}

#[test]
fn a_full_spill_log_hands_batches_to_the_queue_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    // No feeder: nothing is read back or delivered, so the log fills up (and the queue has room
    // for everything refused).
    let s = started(dir.path(), 1 << 20, false);
    let big = || Batch::<Logs>::measured(fixtures::resource_logs(1, 2000));
    let batches = 40;
    for _ in 0..batches {
        assert!(s.spill.write(big()).is_ok());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut spilled, mut refused) = (0.0, 0.0);
    while spilled + refused * 2000.0 < f64::from(batches) * 2000.0 {
        assert!(
            Instant::now() < deadline,
            "{spilled} spilled, {refused} refused"
        );
        std::thread::sleep(Duration::from_millis(10));
        spilled = s.metric("weir_spill_written_items_total");
        refused = s.metric("weir_spill_full_total");
    }
    assert!(
        refused > 0.0 && spilled > 0.0,
        "{spilled} spilled, {refused} refused"
    );
    assert!(s.metric("weir_spill_bytes") <= f64::from(1 << 20));
    let in_queue: usize = std::iter::from_fn(|| s.rx.try_recv())
        .map(|b| b.items())
        .sum();
    assert_eq!(
        in_queue as f64,
        refused * 2000.0,
        "refused batches wait in the queue"
    );
    drop(s.stop());
}

#[test]
fn the_feeder_is_woken_by_a_commit_not_by_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let s = started(dir.path(), 1 << 20, true);
    let rounds = 40;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(s.spill.write(batch()).is_ok());
        assert_eq!(take(&s.rx, 1).len(), 1);
    }
    let took = start.elapsed();
    // Waiting out the timer would cost IDLE / 2 per round on average, 1 s in all.
    assert!(took < IDLE * rounds / 4, "{took:?} for {rounds} rounds");
    drop(s.stop());
}
