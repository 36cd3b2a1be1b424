//! The flusher: a thread that hands the totals to the metrics pipeline every `interval`, and once more
//! when the traces pipeline has drained, so a clean shutdown emits every span it counted.
//!
//! It is started late, with the metrics pipeline's intake queue, because that pipeline is built after
//! the traces one; spans counted before then wait in the shards for the first flush.

use super::{lock, SpanMetrics};
use crate::batch::Batch;
use crate::queue::Sender;
use crate::signal::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long the final flush waits for room in the metrics queue: at shutdown its workers are still
/// draining, and there is no later flush to carry the totals.
const LAST_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Runs `f` when dropped, even while unwinding from a panic.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl SpanMetrics {
    /// Starts the flusher. `finished` runs after the final flush (or if the thread dies), e.g. to
    /// close the metrics intake that was kept open for it.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        output: Sender<Batch<Metrics>>,
        finished: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("weir-span-metrics".into())
            .spawn(move || {
                let _finished = OnDrop(Some(finished));
                let mut next = Instant::now() + me.interval;
                loop {
                    let last = me.wait_inputs_done(next);
                    me.flush(&output, last);
                    if last {
                        break;
                    }
                    // A slow flush skips the ticks it missed rather than flushing back to back.
                    next = (next + me.interval).max(Instant::now());
                }
                drop(output);
            })
    }

    /// Hands the totals to `output`; a full queue drops this flush (counted), not the counts.
    pub fn flush(&self, output: &Sender<Batch<Metrics>>, last: bool) {
        let resources = self.resource_metrics(SystemTime::now());
        if resources.is_empty() {
            return;
        }
        let batch = Batch::measured(resources);
        let refused = if last {
            output
                .send_blocking_until(batch, Instant::now() + LAST_FLUSH_WAIT)
                .is_err()
        } else {
            output.try_send(batch).is_err()
        };
        if refused {
            self.dropped_flushes.inc();
        }
    }

    /// Waits until `until` or until the inputs are finished; true in the second case.
    fn wait_inputs_done(&self, until: Instant) -> bool {
        let (done, wake) = &self.inputs_done;
        let mut done = lock(done);
        while !*done {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            done = wake
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *done
    }
}
