//! What one log's owner thread, its follower and its users share: how far the log is committed,
//! whether it is closing or abandoned, its health and gauges, and the wake-up that lets the follower
//! sleep until one of those changes instead of polling.

use super::{Progress, Recovered};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Values the metrics endpoint reads; the owner updates them after commits and checkpoints.
#[derive(Default)]
pub struct Gauges {
    pub bytes: AtomicU64,
    pub segments: AtomicU64,
    /// Committed records not yet complete.
    pub undelivered: AtomicU64,
    /// Age of the oldest committed record not yet complete; 0 when none.
    pub oldest_age_ms: AtomicU64,
}

pub struct LogState {
    progress: Arc<Progress>,
    /// Every sequence number below this is committed.
    committed: AtomicU64,
    /// The follower's next record, stored only once it is done with everything below it (a batch it
    /// is still blocked handing on counts as not done).
    followed: AtomicU64,
    /// Write time of the last record the follower handed out; tells the backlog's age while it reads.
    followed_ts_ms: AtomicU64,
    /// Set by the owner once nothing more will be committed: `committed` is final.
    closing: AtomicBool,
    /// The shutdown deadline passed: completions no longer count and the follower stops.
    abandoned: AtomicBool,
    /// Whether the last disk operation succeeded.
    healthy: AtomicBool,
    /// The owner thread panicked: nothing will be committed again.
    dead: AtomicBool,
    pub gauges: Gauges,
    wake: (Mutex<()>, Condvar),
}

impl LogState {
    pub fn new(recovered: &Recovered) -> Arc<Self> {
        let w = recovered.checkpoint.w;
        Arc::new(LogState {
            progress: Arc::new(Progress::new(w)),
            committed: AtomicU64::new(recovered.next_seq),
            followed: AtomicU64::new(w),
            followed_ts_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            gauges: Gauges::default(),
            wake: (Mutex::new(()), Condvar::new()),
        })
    }

    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn followed(&self) -> u64 {
        self.followed.load(Ordering::Acquire)
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub fn dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// The shutdown deadline passed: what is in flight is not complete, whatever drops it, and is
    /// replayed on the next start; the follower stops at once.
    pub fn abandon(&self) {
        self.progress.freeze();
        self.abandoned.store(true, Ordering::Release);
        self.wake();
    }

    pub(super) fn publish_committed(&self, next_seq: u64) {
        self.committed.store(next_seq, Ordering::Release);
        self.wake();
    }

    pub(super) fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake();
    }

    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }

    /// The owner thread panicked. Readers still get everything committed before, then stop.
    pub(super) fn died(&self) {
        self.dead.store(true, Ordering::Release);
        self.set_healthy(false);
        self.set_closing();
    }

    pub(super) fn set_followed(&self, next: u64) {
        self.followed.store(next, Ordering::Release);
    }

    pub(super) fn set_followed_ts(&self, ts_ms: u64) {
        self.followed_ts_ms.store(ts_ms, Ordering::Relaxed);
    }

    pub(super) fn followed_ts(&self) -> u64 {
        self.followed_ts_ms.load(Ordering::Relaxed)
    }

    /// Under the lock, so a follower between its check and its wait cannot miss it.
    fn wake(&self) {
        let _guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.1.notify_all();
    }

    /// Sleeps until woken or `timeout` passes, unless `ready` already holds.
    pub(super) fn wait(&self, timeout: Duration, ready: impl Fn() -> bool) {
        let guard = self.wake.0.lock().unwrap_or_else(|e| e.into_inner());
        if !ready() {
            let _ = self.wake.1.wait_timeout(guard, timeout);
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
