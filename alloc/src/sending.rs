//! Memory the exporters hold to send what they took from their queues: encoded requests waiting for
//! a slot or being retried, and the copy a transport makes of a request during each attempt.
//!
//! The receivers' admission sees all of it on the heap while it exists, but it comes and goes after
//! admission: behind a hung upstream every attempt's copy is freed at its timeout and made again at
//! the retry, so memory the receivers filled in between would be exceeded by the next attempt. The
//! budget therefore keeps room for the most the exporters held recently ([`expected`]), and that
//! high-water mark decays slowly, so a burst does not shrink the budget for good.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// What the configuration says exporters may hold, before they have shown it; decays like `PEAK`.
static PRIOR: AtomicUsize = AtomicUsize::new(0);
static DECAYED_AT_SECOND: AtomicU64 = AtomicU64::new(0);

/// A peak not reached again loses this fraction of itself each second (a half-life of about 45 s):
/// slower than any retry backoff, so the room is still kept when the next attempt comes.
const DECAY: usize = 64;

/// Bytes an exporter holds for sending, counted until dropped.
#[must_use = "the bytes are counted only while this lives"]
pub struct Held(usize);

impl Held {
    pub fn new(bytes: usize) -> Held {
        let now = HELD.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
        Held(bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::Relaxed);
    }
}

/// Raises the recent peak to at least `bytes`: what the configuration says exporters may hold,
/// before they have shown it. Without it, requests admitted in the first moments of an overload
/// (before any batch was encoded) would take the room the exporters' first attempts then need.
pub fn expect_at_least(bytes: usize) {
    PRIOR.fetch_max(bytes, Ordering::Relaxed);
}

/// Bytes the exporters hold for sending now.
pub fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The most the exporters held at once recently, or the configuration's estimate if higher.
pub fn peak() -> usize {
    decay(now_second());
    PEAK.load(Ordering::Relaxed)
        .max(PRIOR.load(Ordering::Relaxed))
}

/// What the exporters are expected to allocate again soon: their recent peak (or the estimate)
/// less what they hold now (which is on the heap already).
pub fn expected() -> usize {
    peak().saturating_sub(held())
}

/// [`expected`] from what the exporters were seen to hold, without the configuration's estimate.
pub fn seen_expected() -> usize {
    decay(now_second());
    PEAK.load(Ordering::Relaxed).saturating_sub(held())
}

fn now_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowers the peak by a `DECAY`th for every second since it was last lowered, never below what is
/// held now; the first caller in a new second does it.
fn decay(second: u64) {
    let last = DECAYED_AT_SECOND.load(Ordering::Relaxed);
    if second <= last
        || DECAYED_AT_SECOND
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    // A first call (last == 0) only starts the clock.
    let seconds = if last == 0 { 0 } else { second - last };
    let floor = HELD.load(Ordering::Relaxed);
    for mark in [&PEAK, &PRIOR] {
        let mut value = mark.load(Ordering::Relaxed);
        for _ in 0..seconds.min(1024) {
            value -= value / DECAY;
        }
        mark.store(value.max(floor), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the counters are process-wide.
    #[test]
    fn the_peak_follows_what_is_held_and_decays_slowly_once_released() {
        decay(1_000);
        let base = held();
        let a = Held::new(10 << 20);
        let b = Held::new(6 << 20);
        assert_eq!(held(), base + (16 << 20));
        assert!(PEAK.load(Ordering::Relaxed) >= base + (16 << 20));
        drop(a);
        assert_eq!(held(), base + (6 << 20));
        let peak = PEAK.load(Ordering::Relaxed);
        decay(1_000);
        assert_eq!(
            PEAK.load(Ordering::Relaxed),
            peak,
            "no decay within the second"
        );
        decay(1_001);
        let after_one = PEAK.load(Ordering::Relaxed);
        assert_eq!(after_one, peak - peak / DECAY, "a 64th per second");
        decay(1_001 + 60);
        let after_a_minute = PEAK.load(Ordering::Relaxed);
        assert!(
            after_a_minute > peak / 3 && after_a_minute < peak / 2,
            "about half is left after a minute: {after_a_minute} of {peak}"
        );
        decay(1_001 + 10_000);
        assert_eq!(
            PEAK.load(Ordering::Relaxed),
            held(),
            "never below what is held"
        );
        drop(b);
        assert_eq!(held(), base);
    }
}
