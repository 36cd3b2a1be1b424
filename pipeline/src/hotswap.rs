//! The one mechanism for changing a policy while traffic flows: a thin wrapper over `arc_swap::ArcSwap`.
//!
//! Readers pay one atomic load and never block; a writer publishes a fully built value in one store.
//! Reload is load → validate → compile → [`HotSwap::store`]; if any step fails, the caller keeps running
//! the old value, and [`HotSwap::try_reload`] says why.

use arc_swap::{ArcSwap, Guard};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct HotSwap<T> {
    current: ArcSwap<T>,
    version: AtomicU64,
}

impl<T> HotSwap<T> {
    pub fn new(value: T) -> Self {
        HotSwap {
            current: ArcSwap::from_pointee(value),
            version: AtomicU64::new(1),
        }
    }

    /// The current value. Hold the guard for the whole batch, so the batch sees one version.
    pub fn load(&self) -> Guard<Arc<T>> {
        self.current.load()
    }

    /// The current value as an owned `Arc`, for a thread that keeps it across blocking waits.
    pub fn load_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Publishes a new value; batches already holding the old one finish with it.
    pub fn store(&self, value: T) {
        self.current.store(Arc::new(value));
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Builds a new value and publishes it only if building succeeded; otherwise the old one stays.
    pub fn try_reload<E>(&self, build: impl FnOnce() -> Result<T, E>) -> Result<u64, E> {
        let value = build()?;
        self.store(value);
        Ok(self.version())
    }

    /// Increments on every store: lets metrics and logs say which version is live.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HotSwap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotSwap")
            .field("version", &self.version())
            .field("current", &**self.load())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn failed_reload_keeps_old_value() {
        let h = HotSwap::new(1);
        assert_eq!(h.try_reload(|| Ok::<_, String>(2)), Ok(2));
        assert_eq!(
            h.try_reload(|| Err::<i32, _>("bad rule".to_string())),
            Err("bad rule".into())
        );
        assert_eq!(**h.load(), 2);
        assert_eq!(h.version(), 2);
    }

    /// A policy made of two fields that must always agree; readers must never see a mix.
    #[test]
    fn readers_never_see_a_torn_policy_during_swaps() {
        let h = Arc::new(HotSwap::new((0u64, 0u64)));
        let writer = {
            let h = h.clone();
            thread::spawn(move || {
                for i in 1..=20_000u64 {
                    h.store((i, i * 2));
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let h = h.clone();
                thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..50_000 {
                        let p = h.load();
                        assert_eq!(p.1, p.0 * 2);
                        assert!(p.0 >= last, "versions only move forward");
                        last = p.0;
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(**h.load(), (20_000, 40_000));
    }
}
