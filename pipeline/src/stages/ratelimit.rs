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
}

struct Bucket {
    items: f64,
    bytes: f64,
    at: Instant,
}

/// Buckets by (rule name, key value). One lock per batch, not per item.
#[derive(Default)]
pub struct Buckets {
    state: Mutex<HashMap<(String, String), Bucket>>,
}

/// A batch's view of the buckets, holding the lock.
pub struct Taking<'a> {
    state: std::sync::MutexGuard<'a, HashMap<(String, String), Bucket>>,
    now: Instant,
}

impl Buckets {
    pub fn take(&self) -> Taking<'_> {
        Taking {
            state: self.state.lock().unwrap_or_else(|e| e.into_inner()),
            now: Instant::now(),
        }
    }
}

impl Taking<'_> {
    /// Whether one item of `bytes` fits `limit`'s bucket for `key`; takes the tokens if so.
    pub fn admit(&mut self, limit: &RateLimit, key: &str, bytes: f64) -> bool {
        let now = self.now;
        let bucket = self
            .state
            .entry((limit.name.clone(), key.to_string()))
            .or_insert_with(|| Bucket {
                items: limit.items_per_second,
                bytes: limit.bytes_per_second.unwrap_or(0.0),
                at: now,
            });
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
}
