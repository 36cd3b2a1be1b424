//! Where counts live. Each stage worker counts into a shard of its own (picked once per thread), so it
//! takes an uncontended lock once per batch; the flusher sums the shards. Which series exist is
//! decided once, in the shared [`Table`], so `max_series` bounds the whole process and every shard
//! agrees on which series a key belongs to. A shard asks the table only for a key it has not seen.

use super::key::{AsKey, KeyRef, Series, SeriesKey};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// One series' cumulative counts (in a shard, or summed over all of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Spans counted; also the histogram's count.
    pub calls: u64,
    /// Summed durations in nanoseconds; wide enough never to wrap.
    pub sum_ns: u128,
    /// One more than there are bounds: the last bucket is everything above the top bound.
    pub buckets: Box<[u64]>,
}

impl Cell {
    pub fn new(bounds: usize) -> Self {
        Cell {
            calls: 0,
            sum_ns: 0,
            buckets: vec![0; bounds + 1].into(),
        }
    }

    /// OTLP explicit buckets are upper-inclusive: a span of exactly a bound counts in that bucket.
    #[inline]
    pub fn add(&mut self, ns: u64, bounds_ns: &[u64]) {
        self.calls += 1;
        self.sum_ns += u128::from(ns);
        self.buckets[bounds_ns.partition_point(|b| *b < ns)] += 1;
    }

    pub fn absorb(&mut self, other: &Cell) {
        self.calls += other.calls;
        self.sum_ns += other.sum_ns;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }
}

/// Every series that exists, by id (ids are dense, in order of creation).
pub(crate) struct Table {
    inner: RwLock<TableInner>,
    len: AtomicUsize,
    max: usize,
    /// Hashes keys for the shards' memory of overflowed keys; keyed randomly so clients cannot aim
    /// collisions at it.
    hasher: RandomState,
}

#[derive(Default)]
struct TableInner {
    ids: HashMap<Series, u32>,
    keys: Vec<Series>,
}

impl Table {
    pub fn new(max: usize) -> Self {
        Table {
            inner: RwLock::default(),
            len: AtomicUsize::new(0),
            max,
            hasher: RandomState::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The series `key` belongs to, created if there is room; `None` means the overflow series.
    fn resolve(&self, key: &KeyRef<'_>) -> Option<(Series, u32)> {
        let view: &dyn AsKey = key;
        let found = |t: &TableInner| t.ids.get_key_value(view).map(|(s, id)| (s.clone(), *id));
        if let Some(hit) = found(&self.inner.read().unwrap_or_else(|e| e.into_inner())) {
            return Some(hit);
        }
        let mut t = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = found(&t) {
            return Some(hit);
        }
        if t.keys.len() >= self.max {
            return None;
        }
        let id = t.keys.len() as u32;
        let series = Series(Arc::new(key.owned()));
        t.ids.insert(series.clone(), id);
        t.keys.push(series.clone());
        self.len.store(t.keys.len(), Ordering::Relaxed);
        Some((series, id))
    }

    /// The keys of ids `0..n`.
    pub fn keys(&self, n: usize) -> Vec<Arc<SeriesKey>> {
        let t = self.inner.read().unwrap_or_else(|e| e.into_inner());
        t.keys[..n.min(t.keys.len())]
            .iter()
            .map(|s| s.0.clone())
            .collect()
    }
}

/// One worker's counts.
pub(crate) struct Shard {
    cells: HashMap<Series, (u32, Cell)>,
    pub overflow: Cell,
    /// Hashes of keys the table refused. Once full the table stays full (series are cumulative, never
    /// expire), so a refused key is refused for good and its later spans skip the table's lock.
    refused: HashSet<u64>,
    bounds: usize,
}

impl Shard {
    pub fn new(bounds: usize) -> Self {
        Shard {
            cells: HashMap::new(),
            overflow: Cell::new(bounds),
            refused: HashSet::new(),
            bounds,
        }
    }

    /// Counts one span; true when it went to the overflow series.
    #[inline]
    pub fn record(&mut self, key: &KeyRef<'_>, ns: u64, bounds_ns: &[u64], table: &Table) -> bool {
        let view: &dyn AsKey = key;
        if let Some((_, cell)) = self.cells.get_mut(view) {
            cell.add(ns, bounds_ns);
            return false;
        }
        self.record_new(key, ns, bounds_ns, table)
    }

    #[cold]
    fn record_new(&mut self, key: &KeyRef<'_>, ns: u64, bounds_ns: &[u64], table: &Table) -> bool {
        let hash = table.hasher.hash_one(key as &dyn AsKey);
        if !self.refused.contains(&hash) {
            if let Some((series, id)) = table.resolve(key) {
                let (_, cell) = self
                    .cells
                    .entry(series)
                    .or_insert_with(|| (id, Cell::new(self.bounds)));
                cell.add(ns, bounds_ns);
                return false;
            }
            // Bounded like the table: past that, forgetting costs only a lock per refused key.
            if self.refused.len() >= table.max {
                self.refused.clear();
            }
            self.refused.insert(hash);
        }
        self.overflow.add(ns, bounds_ns);
        true
    }

    /// Adds this shard's counts into `totals` (indexed by series id).
    pub fn sum_into(&self, totals: &mut Vec<Option<Cell>>, overflow: &mut Cell) {
        for (id, cell) in self.cells.values() {
            let id = *id as usize;
            if totals.len() <= id {
                totals.resize(id + 1, None);
            }
            match &mut totals[id] {
                Some(t) => t.absorb(cell),
                slot => *slot = Some(cell.clone()),
            }
        }
        overflow.absorb(&self.overflow);
    }
}

/// This thread's shard among `n`: threads are numbered as they first count, so `n` stage workers
/// get `n` different shards.
pub(crate) fn index(n: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|i| *i) % n.max(1)
}
