//! Jittered exponential backoff: each delay is drawn uniformly from the upper half of the current step,
//! so a fleet of collectors that failed together does not retry together.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            step: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
        }
    }

    /// The next delay, at least `floor` (a destination's own `Retry-After`) but never more than the
    /// policy's maximum: a destination answering "retry in a year" (or a garbage value read as one)
    /// must not park acknowledged data, and durations that large overflow deadline arithmetic.
    pub fn next_delay(&mut self, floor: Option<Duration>) -> Duration {
        let step = self.step;
        self.step = self.step.saturating_mul(2).min(self.max);
        let half = step / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos() as u64));
        (half + jitter).max(floor.unwrap_or_default()).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let expected_steps = [100, 200, 400, 800, 1000, 1000];
        for step in expected_steps {
            let d = b.next_delay(None).as_millis() as u64;
            assert!(
                d >= step / 2 && d <= step,
                "{d} not in [{}, {step}]",
                step / 2
            );
        }
    }

    #[test]
    fn honours_the_destinations_floor_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(
            b.next_delay(Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(5))),
            Duration::from_secs(1)
        );
        assert_eq!(b.next_delay(Some(Duration::MAX)), Duration::from_secs(1));
    }
}
