//! Metrics: counters and histograms that are plain atomics on the data path, gauges read on demand,
//! and a registry that renders the Prometheus text format for `/metrics`.
//!
//! Components register their series once at start-up and keep the handles; the registry's lock is only
//! taken to register and to render, never to count.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Labels = Vec<(&'static str, String)>;
type GaugeFn = Box<dyn Fn() -> f64 + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

struct Family {
    help: &'static str,
    kind: &'static str,
    series: Vec<(Labels, Value)>,
}

enum Value {
    Counter(Counter),
    Gauge(GaugeFn),
    Histogram(Histogram),
}

/// A monotonically increasing count.
#[derive(Clone, Default, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed buckets (cumulative when rendered, as Prometheus expects).
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    /// Sum in f64 bits; updated with a CAS loop, once per observation (per batch, not per item).
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .0
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.0.bounds.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// Buckets for batch sizes in items.
pub const ITEM_BUCKETS: &[f64] = &[
    1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0, 100000.0,
];
/// Buckets for latencies in seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// A counter; asking twice for the same name and labels returns the same counter.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        self.series(
            name,
            help,
            "counter",
            labels,
            || Value::Counter(Counter::default()),
            |v| match v {
                Value::Counter(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// The series `name{labels}`, created by `make` unless `find` recognises one already registered.
    fn series<T>(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&'static str, &str)],
        make: impl FnOnce() -> Value,
        find: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let labels = owned(labels);
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: Vec::new(),
        });
        if let Some(found) = family
            .series
            .iter()
            .filter(|(l, _)| *l == labels)
            .find_map(|(_, v)| find(v))
        {
            return found;
        }
        let value = make();
        let handle = find(&value).expect("`find` recognises what `make` builds");
        family.series.push((labels, value));
        handle
    }

    /// A gauge whose value is read from `f` at render time (queue depths, capacities).
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind: "gauge",
            series: Vec::new(),
        });
        let labels = owned(labels);
        family.series.retain(|(l, _)| *l != labels);
        family.series.push((labels, Value::Gauge(Box::new(f))));
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        bounds: &'static [f64],
    ) -> Histogram {
        self.series(
            name,
            help,
            "histogram",
            labels,
            || Value::Histogram(Histogram::new(bounds)),
            |v| match v {
                Value::Histogram(h) => Some(h.clone()),
                _ => None,
            },
        )
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(16 * 1024);
        for (name, f) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, value) in &f.series {
                match value {
                    Value::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", fmt_labels(labels, None), c.get());
                    }
                    Value::Gauge(g) => {
                        let _ = writeln!(out, "{name}{} {}", fmt_labels(labels, None), g());
                    }
                    Value::Histogram(h) => render_histogram(&mut out, name, labels, h),
                }
            }
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &Labels, h: &Histogram) {
    let mut cumulative = 0;
    for (i, c) in h.0.counts.iter().enumerate() {
        cumulative += c.load(Ordering::Relaxed);
        let le =
            h.0.bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            fmt_labels(labels, Some(&le))
        );
    }
    let sum = f64::from_bits(h.0.sum.load(Ordering::Relaxed));
    let _ = writeln!(out, "{name}_sum{} {sum}", fmt_labels(labels, None));
    let _ = writeln!(out, "{name}_count{} {cumulative}", fmt_labels(labels, None));
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    let le = le.map(|v| ("le", v.to_string()));
    for (k, v) in labels.iter().chain(le.iter()) {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{k}=\"");
        for ch in v.chars() {
            match ch {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let r = Registry::new();
        let c = r.counter("weir_x_total", "X things.", &[("signal", "logs")]);
        c.add(3);
        r.counter("weir_x_total", "X things.", &[("signal", "logs")])
            .inc();
        r.gauge_fn("weir_depth", "Depth.", &[("queue", "in\"take")], || 7.0);
        let h = r.histogram("weir_size", "Size.", &[], &[1.0, 10.0]);
        h.observe(5.0);
        h.observe(50.0);
        let text = r.render();
        assert!(
            text.contains("# TYPE weir_x_total counter\nweir_x_total{signal=\"logs\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("weir_depth{queue=\"in\\\"take\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("weir_size_bucket{le=\"1\"} 0\nweir_size_bucket{le=\"10\"} 1\nweir_size_bucket{le=\"+Inf\"} 2\nweir_size_sum 55\nweir_size_count 2\n"), "{text}");
    }
}
