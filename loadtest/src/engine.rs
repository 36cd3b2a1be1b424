//! The three ways to drive a target.
//!
//! - **Open loop** at a fixed rate: request *i* is due at `start + i / rate` whether or not earlier ones
//!   have come back, and its latency is measured from that intended start. When the target (or the
//!   in-flight cap) holds requests back, the wait is in the latency — no coordinated omission.
//! - **Closed loop**: each connection sends its next request when the last one returns: the most the
//!   target will take at that concurrency.
//! - **Sweep**: open-loop steps at rising rates until one fails its SLO (p99 over the limit, any refused,
//!   rejected or failed item, or the achieved rate short of the target); the last step that passed is
//!   the highest sustainable rate.

use crate::observe::{Observer, Sample};
use crate::transport::{Connection, Outcome};
use crate::workload::Payload;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Counters shared by a step's senders.
#[derive(Default)]
pub struct Counts {
    pub sent_items: AtomicU64,
    pub accepted_items: AtomicU64,
    pub rejected_items: AtomicU64,
    pub refused_items: AtomicU64,
    pub failed_items: AtomicU64,
    pub requests: AtomicU64,
}

impl Counts {
    fn record(&self, outcome: Outcome, items: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.sent_items.fetch_add(items, Ordering::Relaxed);
        match outcome {
            Outcome::Accepted { rejected } => {
                self.accepted_items
                    .fetch_add(items.saturating_sub(rejected), Ordering::Relaxed);
                self.rejected_items.fetch_add(rejected, Ordering::Relaxed);
            }
            Outcome::Refused => {
                self.refused_items.fetch_add(items, Ordering::Relaxed);
            }
            Outcome::Failed => {
                self.failed_items.fetch_add(items, Ordering::Relaxed);
            }
        }
    }
}

/// What one step (or a whole closed-loop run) measured.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Items/s asked for (open loop); `None` for closed loop.
    pub target_rate: Option<f64>,
    pub seconds: f64,
    pub requests: u64,
    pub sent_items: u64,
    pub accepted_items: u64,
    pub rejected_items: u64,
    pub refused_items: u64,
    pub failed_items: u64,
    /// Accepted items per second.
    pub achieved_rate: f64,
    pub latency_ms: Latency,
    /// What the target reported or used, when observed.
    pub target: Option<Sample>,
    pub passed: Option<bool>,
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// How the run reports progress: a line per `every` to stderr.
#[derive(Clone)]
pub struct ProgressLine {
    pub label: String,
    pub every: Duration,
    pub quiet: bool,
}

impl ProgressLine {
    fn spawn(
        &self,
        counts: Arc<Counts>,
        started: Instant,
        length: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let p = self.clone();
        tokio::spawn(async move {
            if p.quiet {
                return;
            }
            let mut tick = tokio::time::interval(p.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "  {} {:>5.1}/{:.0}s  accepted {:>10}  ({:>9.0}/s)  refused {}  failed {}",
                    p.label,
                    secs,
                    length.as_secs_f64(),
                    counts.accepted_items.load(Ordering::Relaxed),
                    counts.accepted_items.load(Ordering::Relaxed) as f64 / secs,
                    counts.refused_items.load(Ordering::Relaxed),
                    counts.failed_items.load(Ordering::Relaxed),
                );
            }
        })
    }
}

fn report(
    target_rate: Option<f64>,
    counts: &Counts,
    seconds: f64,
    h: &Histogram<u64>,
    target: Option<Sample>,
) -> StepReport {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    StepReport {
        target_rate,
        seconds,
        requests: get(&counts.requests),
        sent_items: get(&counts.sent_items),
        accepted_items: get(&counts.accepted_items),
        rejected_items: get(&counts.rejected_items),
        refused_items: get(&counts.refused_items),
        failed_items: get(&counts.failed_items),
        achieved_rate: get(&counts.accepted_items) as f64 / seconds.max(1e-9),
        latency_ms: Latency::of(h),
        target,
        passed: None,
        verdict: None,
    }
}

/// `connections` clients, each with `in_flight` requests outstanding (HTTP/2 streams on one gRPC
/// connection, as SDKs and collectors send; for OTLP/HTTP, pooled HTTP/1.1 connections), for `length`.
pub async fn closed_loop(
    clients: &[Connection],
    in_flight: usize,
    payloads: Arc<Vec<Payload>>,
    length: Duration,
    progress: &ProgressLine,
    observer: &mut Observer,
) -> StepReport {
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + length;
    observer.begin().await;
    let ticker = progress.spawn(counts.clone(), started, length);
    let mut tasks = Vec::new();
    let senders = clients
        .iter()
        .flat_map(|c| std::iter::repeat_n(c, in_flight.max(1)));
    for (c, client) in senders.enumerate() {
        let (mut client, payloads, counts) = (client.clone(), payloads.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut i = c;
            while Instant::now() < deadline {
                let p = &payloads[i % payloads.len()];
                i += 1;
                let t = Instant::now();
                let outcome = client.send(p).await;
                let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                counts.record(outcome, p.items);
                if outcome == Outcome::Refused {
                    // Back off a little, as a real client would, instead of hammering a full target.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            h
        }));
    }
    let mut h = histogram();
    for t in tasks {
        if let Ok(part) = t.await {
            let _ = h.add(part);
        }
    }
    ticker.abort();
    let seconds = started.elapsed().as_secs_f64();
    let sample = observer.end(seconds).await;
    report(None, &counts, seconds, &h, sample)
}

/// Requests at `rate` items/s for `length`, at most `max_in_flight` at once, latency from each
/// request's intended start.
pub async fn open_loop(
    clients: &[Connection],
    payloads: Arc<Vec<Payload>>,
    rate: f64,
    length: Duration,
    max_in_flight: usize,
    progress: &ProgressLine,
    observer: &mut Observer,
) -> StepReport {
    let counts = Arc::new(Counts::default());
    let h = Arc::new(Mutex::new(histogram()));
    let items = payloads[0].items.max(1) as f64;
    let interval = Duration::from_secs_f64(items / rate.max(1e-9));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let started = Instant::now();
    observer.begin().await;
    let ticker = progress.spawn(counts.clone(), started, length);
    let mut tasks = tokio::task::JoinSet::new();
    let mut i: u64 = 0;
    loop {
        let due = started + interval.mul_f64(i as f64);
        if due >= started + length {
            break;
        }
        tokio::time::sleep_until(due).await;
        // Waiting for a slot delays this request, but its latency still counts from `due`.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut client = clients[i as usize % clients.len()].clone();
        let (payloads, counts, h) = (payloads.clone(), counts.clone(), h.clone());
        tasks.spawn(async move {
            let p = &payloads[i as usize % payloads.len()];
            let outcome = client.send(p).await;
            let latency = due.elapsed().as_micros().max(1) as u64;
            let _ = h.lock().unwrap_or_else(|e| e.into_inner()).record(latency);
            counts.record(outcome, p.items);
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        i += 1;
    }
    while tasks.join_next().await.is_some() {}
    ticker.abort();
    let seconds = started.elapsed().as_secs_f64();
    let sample = observer.end(seconds).await;
    let h = h.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report(Some(rate), &counts, seconds, &h, sample)
}

/// The pass/fail rules of a sweep step.
#[derive(Debug, Clone, Serialize)]
pub struct Slo {
    pub p99_ms: f64,
    /// Smallest share of the target rate that must be accepted.
    pub min_achieved: f64,
}

impl Slo {
    pub fn judge(&self, r: &mut StepReport) {
        let target = r.target_rate.unwrap_or(0.0);
        let verdict = if r.refused_items > 0 {
            Some(format!("{} items refused (backpressure)", r.refused_items))
        } else if r.rejected_items > 0 {
            Some(format!("{} items rejected", r.rejected_items))
        } else if r.failed_items > 0 {
            Some(format!("{} items failed", r.failed_items))
        } else if r.latency_ms.p99 > self.p99_ms {
            Some(format!(
                "p99 {:.1} ms over the {:.1} ms SLO",
                r.latency_ms.p99, self.p99_ms
            ))
        } else if r.achieved_rate < self.min_achieved * target {
            Some(format!(
                "achieved {:.0}/s, under {:.0}% of {:.0}/s",
                r.achieved_rate,
                self.min_achieved * 100.0,
                target
            ))
        } else {
            r.target
                .as_ref()
                .and_then(|t| t.dropped_items)
                .filter(|d| *d > 0.0)
                .map(|dropped| format!("the target dropped {dropped:.0} items"))
        };
        r.passed = Some(verdict.is_none());
        r.verdict = Some(verdict.unwrap_or_else(|| "ok".into()));
    }
}

/// How a sweep climbs.
#[derive(Debug, Clone, Serialize)]
pub struct Ramp {
    pub start: f64,
    pub factor: f64,
    pub max_steps: usize,
    pub step: Duration,
    /// Idle time between steps, so one step's backlog does not spill into the next.
    pub settle: Duration,
}

/// Runs steps until one fails or `max_steps`; returns every step.
pub async fn sweep(
    clients: &[Connection],
    payloads: Arc<Vec<Payload>>,
    ramp: &Ramp,
    slo: &Slo,
    max_in_flight: usize,
    progress: &ProgressLine,
    observer: &mut Observer,
) -> Vec<StepReport> {
    let mut steps = Vec::new();
    let mut rate = ramp.start;
    for n in 0..ramp.max_steps {
        let p = ProgressLine {
            label: format!("[step {}/{} {:.0}/s]", n + 1, ramp.max_steps, rate),
            ..progress.clone()
        };
        let mut r = open_loop(
            clients,
            payloads.clone(),
            rate,
            ramp.step,
            max_in_flight,
            &p,
            observer,
        )
        .await;
        slo.judge(&mut r);
        if !progress.quiet {
            eprintln!(
                "  step {}: target {:.0}/s achieved {:.0}/s p99 {:.1} ms — {}",
                n + 1,
                rate,
                r.achieved_rate,
                r.latency_ms.p99,
                r.verdict.as_deref().unwrap_or("")
            );
        }
        let passed = r.passed == Some(true);
        steps.push(r);
        if !passed {
            break;
        }
        rate *= ramp.factor;
        tokio::time::sleep(ramp.settle).await;
    }
    steps
}
