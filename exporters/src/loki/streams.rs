//! The cardinality guard: at most `max_streams` distinct label sets per window. A record that would
//! open one more has the label with the most distinct values seen in the window (then the next, …) set
//! to [`OVERFLOW`], so a runaway label (a pod name, a request id) folds into one stream instead of
//! driving Loki into its stream limit and a storm of 429s.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The value that replaces a label's value once its cardinality overflows the budget.
pub const OVERFLOW: &str = "overflow";

pub struct StreamGuard {
    max: usize,
    window: Duration,
    hasher: RandomState,
    state: Mutex<State>,
}

struct State {
    started: Instant,
    streams: HashSet<u64>,
    /// Distinct value hashes per label name in this window.
    values: HashMap<String, HashSet<u64>>,
}

impl StreamGuard {
    pub fn new(max: usize, window: Duration) -> Self {
        StreamGuard {
            max,
            window,
            hasher: RandomState::new(),
            state: Mutex::new(State {
                started: Instant::now(),
                streams: HashSet::new(),
                values: HashMap::new(),
            }),
        }
    }

    /// Admits a sorted label set, rewriting values to [`OVERFLOW`] when the budget is spent. Returns
    /// whether anything was rewritten. Takes the lock once per call; callers pass whole batches.
    pub fn admit_all<'a>(
        &self,
        sets: impl Iterator<Item = &'a mut Vec<(String, String)>>,
    ) -> usize {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.started.elapsed() >= self.window {
            s.started = Instant::now();
            s.streams.clear();
            s.values.clear();
        }
        let mut rewritten = 0;
        for pairs in sets {
            if self.admit_one(&mut s, pairs) {
                rewritten += 1;
            }
        }
        rewritten
    }

    fn admit_one(&self, s: &mut State, pairs: &mut [(String, String)]) -> bool {
        let key = self.hasher.hash_one(&*pairs);
        if s.streams.contains(&key) {
            return false;
        }
        for (name, value) in pairs.iter() {
            let h = self.hasher.hash_one(value);
            s.values.entry(name.clone()).or_default().insert(h);
        }
        if s.streams.len() < self.max {
            s.streams.insert(key);
            return false;
        }
        loop {
            let worst = pairs
                .iter()
                .enumerate()
                .filter(|(_, (_, v))| v != OVERFLOW)
                .max_by_key(|(_, (n, _))| s.values.get(n).map_or(0, HashSet::len))
                .map(|(i, _)| i);
            let Some(i) = worst else {
                // Every label already overflowed: this one stream is all that is left to admit.
                s.streams.insert(self.hasher.hash_one(&*pairs));
                return true;
            };
            pairs[i].1 = OVERFLOW.to_string();
            let key = self.hasher.hash_one(&*pairs);
            // Overflow streams get a tenth more room, so folding one runaway label keeps the others
            // (service, namespace) intact; only if that fills up do further labels fold.
            if s.streams.contains(&key) {
                return true;
            }
            if s.streams.len() < self.max + (self.max / 10).max(1) {
                s.streams.insert(key);
                return true;
            }
        }
    }

    pub fn streams(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .streams
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(service: &str, pod: &str) -> Vec<(String, String)> {
        vec![
            ("k8s_pod_name".into(), pod.into()),
            ("service_name".into(), service.into()),
        ]
    }

    #[test]
    fn a_runaway_label_folds_into_overflow_streams() {
        let guard = StreamGuard::new(50, Duration::from_secs(3600));
        let mut sets: Vec<_> = (0..100_000)
            .map(|i| set(&format!("svc{}", i % 5), &format!("pod-{i}")))
            .collect();
        let rewritten = guard.admit_all(sets.iter_mut());
        assert!(guard.streams() <= 55, "{} streams", guard.streams());
        assert!(rewritten >= 99_900);
        assert_eq!(
            sets[99_999][0].1, OVERFLOW,
            "the pod label, not the service, overflowed"
        );
        assert_eq!(sets[99_999][1].1, "svc4");
    }

    #[test]
    fn known_streams_pass_unchanged_and_the_window_resets() {
        let guard = StreamGuard::new(1, Duration::from_millis(0));
        let mut a = [set("a", "p1")];
        assert_eq!(guard.admit_all(a.iter_mut()), 0);
        let mut b = [set("b", "p2")];
        assert_eq!(
            guard.admit_all(b.iter_mut()),
            0,
            "a zero-length window starts fresh every batch"
        );
    }
}
