//! Live taps (`weir tap`): an operator watches a sample of the items flowing through the pipeline —
//! as received, after each stage, and as handed to each exporter — with each item's fate: passed,
//! changed (which fields, by which redaction detector), or dropped (by which stage and rule).
//!
//! With no tap attached the data path pays one atomic load per batch. With taps attached, each tap
//! takes at most its `rate` items per second; only those items are followed: the chain marks them
//! with a private attribute, compares them after every stage with a copy and removes the mark before
//! the batch leaves the chain. Lines go to the tap through a bounded channel with `try_send`, so a
//! slow reader loses lines (counted in the next line that gets through) instead of slowing ingest.

use crate::attrs;
use crate::batch::Batch;
use crate::signal::Signal;
use arc_swap::ArcSwap;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{json, Map, Value as Json};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// The private attribute that follows a tapped item through the stages.
const MARK: &str = "weir.tap.mark";
/// Items followed per batch at most, whatever the taps' rates.
const PER_BATCH: usize = 64;

/// Which items a tap wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `traces`, `logs` or `metrics`; all when `None`.
    pub signal: Option<weir_config::SignalKind>,
    /// `service.name` of the item's resource.
    pub service: Option<String>,
    pub trace_id: Option<Vec<u8>>,
    /// An item or resource attribute with this scalar value.
    pub attribute: Option<(String, String)>,
    /// `receive`, a stage name, `export`; every point when empty.
    pub points: Vec<String>,
}

impl Filter {
    fn wants_point(&self, point: &str) -> bool {
        self.points.is_empty() || self.points.iter().any(|p| p == point)
    }

    fn wants<S: Signal>(&self, resource: Option<&Resource>, item: &mut S::Unit) -> bool {
        if self.signal.is_some_and(|s| s != S::KIND) {
            return false;
        }
        if let Some(service) = &self.service {
            if !attrs::equals(attrs::of(resource), "service.name", service) {
                return false;
            }
        }
        if let Some(id) = &self.trace_id {
            if S::unit_trace_id(item) != id.as_slice() {
                return false;
            }
        }
        if let Some((key, value)) = &self.attribute {
            if !attrs::equals(S::unit_attributes(item), key, value)
                && !attrs::equals(attrs::of(resource), key, value)
            {
                return false;
            }
        }
        true
    }
}

/// One attached tap.
pub struct Subscriber {
    filter: Filter,
    rate: u64,
    second: AtomicU64,
    taken: AtomicU64,
    lost: AtomicU64,
    tx: tokio::sync::mpsc::Sender<String>,
}

impl Subscriber {
    /// Whether this second's allowance has room left.
    fn has_room(&self) -> bool {
        self.taken.load(Ordering::Relaxed) < self.rate
            || self.second.load(Ordering::Relaxed) != now()
    }

    /// Takes one item from this second's allowance.
    fn take(&self) -> bool {
        let now = now();
        if self.second.swap(now, Ordering::Relaxed) != now {
            self.taken.store(0, Ordering::Relaxed);
        }
        self.taken.fetch_add(1, Ordering::Relaxed) < self.rate
    }

    fn send(&self, mut line: Map<String, Json>) {
        let lost = self.lost.swap(0, Ordering::Relaxed);
        if lost > 0 {
            line.insert("lost_before".into(), lost.into());
        }
        let text = Json::Object(line).to_string();
        if self.tx.try_send(text).is_err() {
            self.lost.fetch_add(lost + 1, Ordering::Relaxed);
        }
    }
}

struct Taps {
    subscribers: ArcSwap<Vec<Arc<Subscriber>>>,
    count: AtomicUsize,
    next_mark: AtomicU64,
}

static TAPS: LazyLock<Taps> = LazyLock::new(|| Taps {
    subscribers: ArcSwap::from_pointee(Vec::new()),
    count: AtomicUsize::new(0),
    next_mark: AtomicU64::new(1),
});

/// An attached tap; detaches when dropped (the admin endpoint drops it when the client goes away).
pub struct Attached {
    me: Arc<Subscriber>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        TAPS.subscribers.rcu(|subs| {
            subs.iter()
                .filter(|s| !Arc::ptr_eq(s, &self.me))
                .cloned()
                .collect::<Vec<_>>()
        });
        TAPS.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Attaches a tap taking at most `rate` items per second; lines arrive on the receiver.
pub fn attach(
    filter: Filter,
    rate: u64,
    buffer: usize,
) -> (Attached, tokio::sync::mpsc::Receiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::channel(buffer.max(1));
    let me = Arc::new(Subscriber {
        filter,
        rate,
        second: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        tx,
    });
    TAPS.subscribers.rcu(|subs| {
        let mut subs = (**subs).clone();
        subs.push(me.clone());
        subs
    });
    TAPS.count.fetch_add(1, Ordering::Relaxed);
    (Attached { me }, rx)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The taps wanting signal `S` at `point` with allowance left; `None` (one atomic load) without taps.
fn attached<S: Signal>(point: &str) -> Option<Vec<Arc<Subscriber>>> {
    if TAPS.count.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let wanted: Vec<Arc<Subscriber>> = TAPS
        .subscribers
        .load()
        .iter()
        .filter(|s| {
            s.filter.signal.is_none_or(|k| k == S::KIND)
                && (point == "receive" || s.filter.wants_point(point))
                && s.has_room()
        })
        .cloned()
        .collect();
    (!wanted.is_empty()).then_some(wanted)
}

thread_local! {
    /// Set while a tapped batch runs through the stages on this thread, so stages explain drops.
    static FOLLOWING: Cell<bool> = const { Cell::new(false) };
    static REASONS: RefCell<Vec<(u64, String)>> = const { RefCell::new(Vec::new()) };
}

/// Stages call this where they drop or change an item: when the item is being followed by a tap,
/// `why` is recorded for its next line. Costs one thread-local read otherwise.
pub fn explain(attributes: &[KeyValue], why: impl FnOnce() -> String) {
    if !FOLLOWING.with(Cell::get) {
        return;
    }
    if let Some(mark) = mark_of(attributes) {
        let why = why();
        REASONS.with(|r| r.borrow_mut().push((mark, why)));
    }
}

/// Whether a tap follows items on this thread right now (stages skip explaining work otherwise).
pub fn following() -> bool {
    FOLLOWING.with(Cell::get)
}

fn mark_of(attributes: &[KeyValue]) -> Option<u64> {
    attributes
        .iter()
        .rev()
        .find(|kv| kv.key == MARK)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i as u64),
            _ => None,
        })
}

fn unmark(attributes: &mut Vec<KeyValue>) -> Option<u64> {
    let at = attributes.iter().rposition(|kv| kv.key == MARK)?;
    let mark = mark_of(&attributes[at..=at]);
    attributes.remove(at);
    mark
}

fn reasons_for(mark: u64) -> Vec<String> {
    REASONS.with(|r| {
        let mut r = r.borrow_mut();
        let mut mine = Vec::new();
        r.retain(|(m, why)| {
            if *m == mark {
                mine.push(why.clone());
                false
            } else {
                true
            }
        });
        mine
    })
}

/// One followed item.
struct Followed<S: Signal> {
    mark: u64,
    subscribers: Vec<Arc<Subscriber>>,
    service: String,
    /// The item as it left the last stage, without its mark.
    last: S::Unit,
    gone: bool,
}

/// The taps' view of one batch while the chain runs it.
pub struct Session<S: Signal> {
    followed: Vec<Followed<S>>,
}

impl<S: Signal> Session<S> {
    /// Picks the items the attached taps want from a batch about to enter the stages, and reports
    /// them as received; `None` (one atomic load) when no tap is attached or none wants any.
    pub fn begin(batch: &mut Batch<S>) -> Option<Self> {
        // Followed from receipt whatever points a tap shows: a drop is only known by following.
        let subscribers = attached::<S>("receive")?;
        let mut followed = Vec::new();
        'walk: for rs in &mut batch.resources {
            let resource = S::resource_of(rs).cloned();
            for group in S::groups(rs) {
                for item in S::units(group) {
                    if followed.len() == PER_BATCH {
                        break 'walk;
                    }
                    let takers: Vec<Arc<Subscriber>> = subscribers
                        .iter()
                        .filter(|s| s.filter.wants::<S>(resource.as_ref(), item) && s.take())
                        .cloned()
                        .collect();
                    if takers.is_empty() {
                        continue;
                    }
                    let mark = TAPS.next_mark.fetch_add(1, Ordering::Relaxed);
                    let f = Followed {
                        mark,
                        subscribers: takers,
                        service: attrs::service_name(resource.as_ref()).to_string(),
                        last: item.clone(),
                        gone: false,
                    };
                    f.report("receive", "received", Vec::new(), Some(item));
                    S::unit_attributes(item).push(KeyValue {
                        key: MARK.into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(mark as i64)),
                        }),
                        ..Default::default()
                    });
                    followed.push(f);
                }
            }
        }
        if followed.is_empty() {
            return None;
        }
        FOLLOWING.with(|f| f.set(true));
        Some(Session { followed })
    }

    /// Reports what `stage` did to each followed item.
    pub fn after(&mut self, stage: &str, batch: &mut Batch<S>) {
        let mut seen: Vec<(u64, S::Unit)> = Vec::with_capacity(self.followed.len());
        for rs in &mut batch.resources {
            for group in S::groups(rs) {
                for item in S::units(group) {
                    if let Some(mark) = mark_of(S::unit_attributes(item)) {
                        let mut copy = item.clone();
                        unmark(S::unit_attributes(&mut copy));
                        seen.push((mark, copy));
                    }
                }
            }
        }
        for f in self.followed.iter_mut().filter(|f| !f.gone) {
            let reasons = reasons_for(f.mark);
            match seen.iter().position(|(m, _)| *m == f.mark) {
                None => {
                    f.gone = true;
                    f.report(stage, "dropped", reasons, None);
                }
                Some(i) => {
                    let now = seen.swap_remove(i).1;
                    if now == f.last {
                        f.report(stage, "passed", reasons, None);
                    } else {
                        let mut line = f.line(stage, "changed", reasons, Some(&now));
                        line.insert("changed".into(), changed(&f.last, &now).into());
                        f.send(stage, line);
                        f.last = now;
                    }
                }
            }
        }
    }

    /// Removes the marks before the batch leaves the chain.
    pub fn finish(self, batch: &mut Batch<S>) {
        FOLLOWING.with(|f| f.set(false));
        REASONS.with(|r| r.borrow_mut().clear());
        if self.followed.iter().all(|f| f.gone) {
            return;
        }
        for rs in &mut batch.resources {
            for group in S::groups(rs) {
                for item in S::units(group) {
                    unmark(S::unit_attributes(item));
                }
            }
        }
    }
}

impl<S: Signal> Followed<S> {
    fn line(
        &self,
        point: &str,
        fate: &str,
        reasons: Vec<String>,
        item: Option<&S::Unit>,
    ) -> Map<String, Json> {
        let mut line = Map::new();
        line.insert("point".into(), point.into());
        line.insert("signal".into(), S::KIND.as_str().into());
        line.insert("service".into(), self.service.clone().into());
        line.insert("fate".into(), fate.into());
        line.insert("tap_id".into(), self.mark.into());
        if !reasons.is_empty() {
            line.insert("reason".into(), reasons.join("; ").into());
        }
        if let Some(item) = item {
            line.insert(
                S::ITEM.replace(' ', "_"),
                serde_json::to_value(item).unwrap_or(Json::Null),
            );
        }
        line
    }

    fn report(&self, point: &str, fate: &str, reasons: Vec<String>, item: Option<&S::Unit>) {
        let line = self.line(point, fate, reasons, item);
        self.send(point, line);
    }

    fn send(&self, point: &str, line: Map<String, Json>) {
        for s in &self.subscribers {
            if s.filter.wants_point(point) {
                s.send(line.clone());
            }
        }
    }
}

/// Reports items handed to exporter `exporter` (after the chain, after tail sampling).
pub fn exporting<S: Signal>(exporter: &str, batch: &mut Batch<S>) {
    let Some(wanted) = attached::<S>("export") else {
        return;
    };
    let mut sent = 0;
    for rs in &mut batch.resources {
        let resource = S::resource_of(rs).cloned();
        let service = attrs::service_name(resource.as_ref()).to_string();
        for group in S::groups(rs) {
            for item in S::units(group) {
                for s in &wanted {
                    if sent == PER_BATCH {
                        return;
                    }
                    if s.filter.wants::<S>(resource.as_ref(), item) && s.take() {
                        sent += 1;
                        let item = serde_json::to_value(&*item).unwrap_or(Json::Null);
                        let line = json!({
                            "point": "export",
                            "exporter": exporter,
                            "signal": S::KIND.as_str(),
                            "service": service,
                            "fate": "exporting",
                            S::ITEM.replace(' ', "_"): item,
                        });
                        if let Json::Object(line) = line {
                            s.send(line);
                        }
                    }
                }
            }
        }
    }
}

/// Top-level fields that differ, attributes by key (`attributes.user.email`).
fn changed<T: serde::Serialize>(before: &T, after: &T) -> Vec<String> {
    let (Ok(Json::Object(b)), Ok(Json::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    for key in keys {
        let (x, y) = (b.get(key), a.get(key));
        if x == y {
            continue;
        }
        if key == "attributes" {
            let by_key = |v: Option<&Json>| -> Vec<(String, Json)> {
                v.and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .map(|kv| {
                        let k = kv.get("key").and_then(Json::as_str).unwrap_or("");
                        (
                            k.to_string(),
                            kv.get("value").cloned().unwrap_or(Json::Null),
                        )
                    })
                    .collect()
            };
            let (xs, ys) = (by_key(x), by_key(y));
            let names: std::collections::BTreeSet<&String> =
                xs.iter().chain(ys.iter()).map(|(k, _)| k).collect();
            for name in names {
                let find = |v: &[(String, Json)]| v.iter().find(|(k, _)| k == name).cloned();
                if find(&xs) != find(&ys) {
                    out.push(format!("attributes.{name}"));
                }
            }
        } else {
            out.push(key.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
