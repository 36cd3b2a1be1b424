//! Token buckets per key (a resource attribute such as `service.name`), in items and optionally bytes
//! per second, bursting one second's worth. The bucket state lives outside the policy, so a reload that
//! changes a limit keeps the buckets of rules with the same name.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub name: String,
    pub key: String,
    pub items_per_second: f64,
    pub bytes_per_second: Option<f64>,
    /// Buckets this rule keeps at most: key values are chosen by clients, so without a bound a
    /// client sending a new `service.name` per record grows memory without end.
    pub max_keys: usize,
}

struct Bucket {
    items: f64,
    bytes: f64,
    at: Instant,
}

/// One rule's buckets by key value.
#[derive(Default)]
struct Rule {
    keys: HashMap<String, Bucket>,
    /// Evicted since the last report.
    evicted: u64,
}

impl Rule {
    /// Makes room for one more key by evicting the least recently used eighth (at least one): a scan
    /// per `max_keys / 8` new keys, not per key.
    fn evict(&mut self, max_keys: usize) {
        let excess = self.keys.len() + 1 - max_keys.min(self.keys.len() + 1);
        let n = excess.max(max_keys / 8).max(1).min(self.keys.len());
        if n == 0 {
            return;
        }
        let mut ages: Vec<Instant> = self.keys.values().map(|b| b.at).collect();
        let (_, cut, _) = ages.select_nth_unstable(n - 1);
        let cut = *cut;
        let before = self.keys.len();
        self.keys.retain(|_, b| b.at > cut);
        self.evicted += (before - self.keys.len()) as u64;
    }
}

/// Buckets by rule name, then key value. One lock per batch, not per item.
#[derive(Default)]
pub struct Buckets {
    state: Mutex<HashMap<String, Rule>>,
}

/// A batch's view of the buckets, holding the lock.
pub struct Taking<'a> {
    state: std::sync::MutexGuard<'a, HashMap<String, Rule>>,
    now: Instant,
}

impl Buckets {
    pub fn take(&self) -> Taking<'_> {
        Taking {
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()),
            now: Instant::now(),
        }
    }

    /// Forgets the buckets of rules not named: a reload that removes a rule frees its state.
    pub fn retain_rules<'n>(&self, names: impl IntoIterator<Item = &'n str>) {
        let names: std::collections::HashSet<&str> = names.into_iter().collect();
        self.take()
            .state
            .retain(|name, _| names.contains(name.as_str()));
    }

    /// Keys held by rule `name`.
    pub fn keys(&self, name: &str) -> usize {
        self.take().state.get(name).map_or(0, |r| r.keys.len())
    }
}

impl Taking<'_> {
    /// Whether one item of `bytes` fits `limit`'s bucket for `key`; takes the tokens if so. Allocates
    /// only for a key (or rule) seen for the first time.
    pub fn admit(&mut self, limit: &RateLimit, key: &str, bytes: f64) -> bool {
        let now = self.now;
        if !self.state.contains_key(&limit.name) {
            self.state.insert(limit.name.clone(), Rule::default());
        }
        let rule = self.state.get_mut(&limit.name).expect("inserted above");
        if !rule.keys.contains_key(key) {
            if rule.keys.len() >= limit.max_keys.max(1) {
                rule.evict(limit.max_keys.max(1));
            }
            rule.keys.insert(
                key.to_string(),
                Bucket {
                    items: limit.items_per_second,
                    bytes: limit.bytes_per_second.unwrap_or(0.0),
                    at: now,
                },
            );
        }
        let bucket = rule.keys.get_mut(key).expect("inserted above");
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        bucket.items =
            (bucket.items + elapsed * limit.items_per_second).min(limit.items_per_second);
        if let Some(rate) = limit.bytes_per_second {
            bucket.bytes = (bucket.bytes + elapsed * rate).min(rate);
        }
        let bytes_ok = limit.bytes_per_second.is_none_or(|_| bucket.bytes >= bytes);
        if bucket.items >= 1.0 && bytes_ok {
            bucket.items -= 1.0;
            if limit.bytes_per_second.is_some() {
                bucket.bytes -= bytes;
            }
            true
        } else {
            false
        }
    }

    /// Hands out (and resets) each rule's count of evicted keys.
    pub fn evictions(&mut self, mut report: impl FnMut(&str, u64)) {
        for (name, rule) in self.state.iter_mut() {
            if rule.evicted > 0 {
                report(name, std::mem::take(&mut rule.evicted));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(items: f64, bytes: Option<f64>) -> RateLimit {
        RateLimit {
            name: "r".into(),
            key: "service.name".into(),
            items_per_second: items,
            bytes_per_second: bytes,
            max_keys: 10_000,
        }
    }

    #[test]
    fn a_burst_of_one_second_then_refusal_per_key() {
        let b = Buckets::default();
        let l = limit(100.0, None);
        let mut t = b.take();
        let a = (0..250).filter(|_| t.admit(&l, "a", 10.0)).count();
        let other = (0..50).filter(|_| t.admit(&l, "b", 10.0)).count();
        assert_eq!((a, other), (100, 50), "each key has its own bucket");
    }

    #[test]
    fn bytes_limit_too() {
        let b = Buckets::default();
        let l = limit(1000.0, Some(1000.0));
        let mut t = b.take();
        assert_eq!((0..50).filter(|_| t.admit(&l, "a", 100.0)).count(), 10);
    }

    #[test]
    fn buckets_refill_with_time() {
        let b = Buckets::default();
        let l = limit(1000.0, None);
        assert_eq!(
            (0..1000).filter(|_| b.take().admit(&l, "a", 1.0)).count(),
            1000
        );
        let drained = (0..100).filter(|_| b.take().admit(&l, "a", 1.0)).count();
        assert!(
            drained < 50,
            "the bucket is empty after its burst ({drained})"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        let refilled = (0..1000).filter(|_| b.take().admit(&l, "a", 1.0)).count();
        assert!(
            (150..=400).contains(&refilled),
            "about 200 tokens after 200 ms, got {refilled}"
        );
    }

    /// A client inventing a key per item cannot grow the state past `max_keys`; the least recently
    /// used keys go first, and every eviction is counted.
    #[test]
    fn keys_are_bounded_and_the_least_recently_used_go() {
        let b = Buckets::default();
        let mut l = limit(10.0, None);
        l.max_keys = 1000;
        b.take().admit(&l, "steady", 1.0);
        for i in 0..100_000 {
            let mut t = b.take();
            t.admit(&l, &format!("k{i}"), 1.0);
            if i % 100 == 0 {
                t.admit(&l, "steady", 1.0);
            }
        }
        assert!(b.keys("r") <= 1000, "{}", b.keys("r"));
        let mut evicted = 0;
        b.take().evictions(|_, n| evicted += n);
        assert_eq!(evicted as usize + b.keys("r"), 100_001);
        assert!(
            b.take().state["r"].keys.contains_key("steady"),
            "a key in use stays"
        );
    }

    #[test]
    fn a_removed_rule_loses_its_buckets() {
        let b = Buckets::default();
        let (mut one, mut two) = (limit(10.0, None), limit(10.0, None));
        one.name = "one".into();
        two.name = "two".into();
        b.take().admit(&one, "a", 1.0);
        b.take().admit(&two, "a", 1.0);
        b.retain_rules(["two"]);
        assert_eq!((b.keys("one"), b.keys("two")), (0, 1));
    }
}
