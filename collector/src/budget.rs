//! `memory_limit`: the receivers admit a request only while the heap (as the counting allocator
//! sees it) plus what admitted requests are about to decode stays under the limit. Everything that
//! holds telemetry — bodies being read, queues, the tail buffer, batches being retried — is on that
//! heap, so one check at the front door bounds all of it; past the limit clients are told to retry
//! (RESOURCE_EXHAUSTED with RetryInfo, 429 with Retry-After) and nothing already accepted is dropped.
//!
//! A request's size in memory is unknown until it is decoded, so admission reserves what recent
//! requests turned out to weigh (a moving average of body plus decoded batch) and gives the
//! reservation back once the decoded batch is on the heap, where the allocator counts it.
//!
//! The heap is not the whole story: the allocator's free pages, size-class rounding and the
//! process's code and stacks put resident memory at 1.2–1.6× the heap under churn (measured in
//! tests/memory_limit.rs). So resident memory, read from /proc at most every few milliseconds, must
//! also be under the limit; the promise is about RSS, and this checks RSS.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use weir_pipeline::memory;
use weir_pipeline::metrics::Registry;

/// Resident memory is held to the limit less this fraction of it (1/8): what was admitted keeps
/// allocating after admission — exporters encode what they send, and a hung upstream keeps several
/// attempts' requests alive — and resident memory follows the heap with a lag, so admission stops
/// that far short of the limit for the 1.25 × promise to hold (measured in tests/memory_limit.rs).
const RESIDENT_HEADROOM: usize = 8;

/// What a request reserves before anything was measured: about what an SDK's request of 500 log
/// records weighs with its decoded batch. Guessing low let the first burst of concurrent requests
/// (64 at once from 8 SDK clients) take three times the room they reserved.
const FIRST_GUESS: usize = 1 << 20;

pub struct MemoryBudget {
    limit: usize,
    /// Bytes reserved by admitted requests that are not yet decoded.
    reserved: AtomicUsize,
    /// Moving average of decoded request sizes.
    typical: AtomicUsize,
    heap: fn() -> usize,
    resident: fn() -> usize,
    /// What the exporters will allocate again soon (see [`memory::sending`]): with the
    /// configuration's estimate, and as seen.
    sending: fn() -> (usize, usize),
    /// Whether resident memory is near the limit, where freed pages are given back at once.
    pressed: AtomicBool,
    /// Told when pressure starts (`true`) and passes.
    on_pressure: fn(bool),
}

static UNDER_PRESSURE: AtomicBool = AtomicBool::new(false);

/// Whether the process's resident memory is near `memory_limit` (from six eighths of it until it
/// falls below five eighths): where the receivers are about to refuse.
pub fn under_pressure() -> bool {
    UNDER_PRESSURE.load(Ordering::Relaxed)
}

/// Resident memory from which freed pages go back to the system at once ([`memory::purge_at_once`]),
/// and below which the allocator's usual delay returns, in eighths of the limit: the gap keeps the
/// switch from flapping.
const PRESSURE_ON: usize = 6;
const PRESSURE_OFF: usize = 5;

/// An admitted request's reservation; released when the request is done with.
pub struct Admission {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.budget
            .reserved
            .fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        let mut budget = Self::with_probes(limit, memory::heap_bytes, resident_bytes, || {
            (
                memory::sending::expected(),
                memory::sending::seen_expected(),
            )
        });
        budget.on_pressure = |on| {
            memory::purge_at_once(on);
            UNDER_PRESSURE.store(on, Ordering::Relaxed);
        };
        budget
    }

    fn with_probes(
        limit: usize,
        heap: fn() -> usize,
        resident: fn() -> usize,
        sending: fn() -> (usize, usize),
    ) -> Self {
        MemoryBudget {
            limit,
            reserved: AtomicUsize::new(0),
            typical: AtomicUsize::new(FIRST_GUESS),
            heap,
            resident,
            sending,
            pressed: AtomicBool::new(false),
            on_pressure: |_| {},
        }
    }

    /// Switches the allocator to giving pages back at once while resident memory is near the
    /// limit: there a page held for reuse is worth more than the page faults the delay saves.
    fn follow_pressure(&self, resident: usize) {
        let pressed = self.pressed.load(Ordering::Relaxed);
        let now = if pressed {
            resident >= self.limit / 8 * PRESSURE_OFF
        } else {
            resident >= self.limit / 8 * PRESSURE_ON
        };
        if now != pressed && self.pressed.swap(now, Ordering::Relaxed) == pressed {
            (self.on_pressure)(now);
            tracing::debug!(
                resident,
                limit = self.limit,
                pressed = now,
                "memory pressure changed"
            );
        }
    }

    /// Reserves room for one more request of `hint` bytes (the body's length, when the client sent
    /// it), or `None` when the process is at its limit. With nothing else admitted, a request is let
    /// in while the heap itself is under the limit, so one request larger than the slack is not
    /// refused for ever.
    pub fn admit(self: &Arc<Self>, hint: Option<usize>) -> Option<Admission> {
        let need = hint
            .unwrap_or(0)
            .max(self.typical.load(Ordering::Relaxed))
            .min(self.limit);
        // Room the exporters will take again soon counts as taken: filled by requests now, it would
        // be exceeded at their next attempt, after admission. The escape hatches (one request at a
        // time, a mostly free heap) count the room the exporters were seen to take, and of the
        // configuration's estimate at most a quarter of the limit: the estimate can reach half of
        // it, and a sidecar's small limit would then refuse every request until it decays.
        // Counting none of it let one request at a time fill memory behind a hung upstream before
        // its first attempt was seen (RSS 98-111 -> 120-127 MiB in tests/memory_limit.rs).
        let (sending, seen) = (self.sending)();
        let hatch_sending = seen.max(sending.min(self.limit / 4));
        let heap_now = (self.heap)();
        let resident_now = (self.resident)();
        self.follow_pressure(resident_now);
        let heap = heap_now.saturating_add(sending);
        let resident = resident_now.saturating_add(sending);
        let hatch_heap = heap_now.saturating_add(hatch_sending);
        let hatch_resident = resident_now.saturating_add(hatch_sending);
        let mut reserved = self.reserved.load(Ordering::Relaxed);
        loop {
            let fits = heap.saturating_add(reserved).saturating_add(need) <= self.limit
                || (reserved == 0 && hatch_heap < self.limit);
            // Free pages the allocator keeps count as resident but are reused before it asks the
            // system for more; with the heap this low, refusing would wait for memory that is
            // never given back.
            let mostly_free = hatch_heap.saturating_add(reserved) < self.limit / 4;
            let resident_target = self.limit - self.limit / RESIDENT_HEADROOM;
            let resident_fits = resident.saturating_add(need) <= resident_target
                || (reserved == 0 && hatch_resident < resident_target)
                || mostly_free;
            if !fits || !resident_fits {
                warn_refused(heap, reserved, need, resident, sending, self.limit);
                return None;
            }
            match self.reserved.compare_exchange_weak(
                reserved,
                reserved + need,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Admission {
                        budget: self.clone(),
                        bytes: need,
                    })
                }
                Err(now) => reserved = now,
            }
        }
    }

    /// Learns what a request weighed in memory at its peak: its body and the batch decoded from
    /// it, which are on the heap together while it is decoded.
    pub fn observe(&self, bytes: usize) {
        let old = self.typical.load(Ordering::Relaxed);
        // An eighth of the way towards each new measurement: steady under mixed request sizes, and
        // a burst of larger requests raises the reservation within a few dozen requests.
        let new = old - old / 8 + bytes / 8;
        self.typical.store(new.max(1 << 10), Ordering::Relaxed);
    }

    pub fn register(self: &Arc<Self>, registry: &Registry) {
        let limit = self.limit as f64;
        registry.gauge_fn(
            "weir_memory_limit_bytes",
            "The memory limit the receivers enforce (memory_limit, or its default).",
            &[],
            move || limit,
        );
        let heap = self.heap;
        registry.gauge_fn(
            "weir_memory_heap_bytes",
            "Heap bytes held by the process, as counted by its allocator.",
            &[],
            move || heap() as f64,
        );
        let resident = self.resident;
        registry.gauge_fn(
            "weir_memory_resident_bytes",
            "Resident memory of the process (RSS), as the receivers last read it.",
            &[],
            move || resident() as f64,
        );
        for (state, of) in [
            (
                "in_use",
                (|c| c.in_use) as fn(memory::arena::Chunks) -> usize,
            ),
            ("warm", |c| c.warm),
        ] {
            registry.gauge_fn(
                "weir_memory_arena_bytes",
                "Decode arena chunks: in use (holding decoded telemetry or being filled), or free \
                 and kept resident for the next requests (given back after a second unused).",
                &[("state", state)],
                move || (of(memory::arena::chunks()) * memory::arena::CHUNK) as f64,
            );
        }
        for (state, of) in [
            ("held", memory::sending::held as fn() -> usize),
            ("expected", memory::sending::expected),
        ] {
            registry.gauge_fn(
                "weir_memory_sending_bytes",
                "Exporters' memory for sending beyond the batches they took: held now (encoded \
                 requests, transport copies), and expected again soon (their recent peak less what \
                 they hold), which the receivers keep free.",
                &[("state", state)],
                move || of() as f64,
            );
        }
        let me = self.clone();
        registry.gauge_fn(
            "weir_memory_reserved_bytes",
            "Bytes reserved by requests admitted and not yet decoded.",
            &[],
            move || me.reserved.load(Ordering::Relaxed) as f64,
        );
    }
}

/// Says why requests are refused, at most once a second: an operator seeing 429s needs to know
/// which of heap, reservations or resident memory is at the limit.
fn warn_refused(
    heap: usize,
    reserved: usize,
    need: usize,
    resident: usize,
    sending: usize,
    limit: usize,
) {
    use std::sync::atomic::AtomicU64;
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if LAST_SECOND.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            heap,
            reserved,
            request = need,
            resident,
            exporters_expected = sending,
            limit,
            "refusing requests: memory_limit reached; clients are told to retry"
        );
    }
}

/// Resident memory of this process, read from /proc/self/statm at most every 5 ms (a read costs a
/// few microseconds; requests arrive far more often than that under load).
fn resident_bytes() -> usize {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    static READ_AT_MS: AtomicU64 = AtomicU64::new(0);
    static VALUE: AtomicUsize = AtomicUsize::new(0);
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 10;
    let at = READ_AT_MS.load(Ordering::Relaxed);
    if now.saturating_sub(at) >= 5
        && READ_AT_MS
            .compare_exchange(at, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok());
        if let Some(pages) = pages {
            VALUE.store(pages * 4096, Ordering::Relaxed);
        }
    }
    VALUE.load(Ordering::Relaxed)
}

/// What the OTLP forwarders may hold for sending at once, by their configuration: each keeps
/// `max_in_flight` requests out and one more encoded, of up to `batch.max_bytes`, and over gRPC
/// every attempt copies its request (twice with compression). Capped at half of `limit`: it is a
/// starting guess, which decays towards what they really hold. Other exporters free the batch as
/// they encode it, so sending adds nothing to what was admitted.
pub fn sending_prior(config: &weir_config::Config, limit: usize) -> usize {
    use weir_config::{ExporterKind, SignalKind};
    let total: usize = SignalKind::ALL
        .iter()
        .flat_map(|&s| config.exporters_for(s))
        .filter_map(|(_, e, kind)| {
            let ExporterKind::Otlp(o) = kind else {
                return None;
            };
            // The encoded request itself, and what each attempt copies of it.
            let copies =
                1 + weir_exporters::otlp::backend::attempt_copies(o.protocol, o.compression);
            let request = e.batch().max_bytes.as_usize();
            Some(
                (e.max_in_flight + 1)
                    .saturating_mul(request)
                    .saturating_mul(copies),
            )
        })
        .fold(0, usize::saturating_add);
    total.min(limit / 2)
}

/// `memory_limit` as configured, or 80 % of the cgroup's limit, or what the config's queues ask for.
pub fn resolve(config: &weir_config::Config) -> (usize, &'static str) {
    if let Some(m) = config.memory_limit {
        return (m.as_usize(), "memory_limit");
    }
    if let Some(cgroup) = cgroup_limit() {
        return ((cgroup / 5 * 4) as usize, "80% of the cgroup memory limit");
    }
    (
        config.derived_memory_limit() as usize,
        "derived from the queue and tail sizes",
    )
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1 `memory.limit_in_bytes`).
fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = match controllers {
            "" => format!("/sys/fs/cgroup{path}/memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
            }
            _ => continue,
        };
        if let Some(limit) = read_limit(&file) {
            return Some(limit);
        }
    }
    None
}

/// A cgroup limit file's value; `max` and v1's "no limit" (close to `i64::MAX`) mean none.
fn read_limit(file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let value: u64 = text.trim().parse().ok()?;
    (value < 1 << 60).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static HEAP: AtomicUsize = AtomicUsize::new(0);
    fn heap() -> usize {
        HEAP.load(Ordering::Relaxed)
    }

    #[test]
    fn admits_while_heap_and_reservations_fit_and_releases_on_drop() {
        HEAP.store(0, Ordering::Relaxed);
        let b = Arc::new(MemoryBudget::with_probes(1 << 20, heap, || 0, || (0, 0)));
        let first = b.admit(Some(600 << 10)).expect("fits");
        assert!(b.admit(Some(600 << 10)).is_none(), "600K + 600K > 1M");
        drop(first);
        let again = b.admit(Some(600 << 10)).expect("released");
        drop(again);
        HEAP.store(1 << 20, Ordering::Relaxed);
        assert!(b.admit(None).is_none(), "the heap alone is at the limit");
        HEAP.store((1 << 20) - 1, Ordering::Relaxed);
        assert!(
            b.admit(Some(10 << 20)).is_some(),
            "alone, a large request is let in while the heap is under the limit"
        );
    }

    #[test]
    fn resident_memory_over_the_limit_refuses_unless_the_heap_is_mostly_free() {
        static RESIDENT: AtomicUsize = AtomicUsize::new(0);
        static LOW_HEAP: AtomicUsize = AtomicUsize::new(0);
        let b = Arc::new(MemoryBudget::with_probes(
            64 << 20,
            || LOW_HEAP.load(Ordering::Relaxed),
            || RESIDENT.load(Ordering::Relaxed),
            || (0, 0),
        ));
        LOW_HEAP.store(40 << 20, Ordering::Relaxed);
        RESIDENT.store(64 << 20, Ordering::Relaxed);
        assert!(b.admit(None).is_none(), "RSS + the request's share > limit");
        RESIDENT.store(20 << 20, Ordering::Relaxed);
        assert!(b.admit(None).is_some());
        RESIDENT.store(57 << 20, Ordering::Relaxed);
        assert!(
            b.admit(None).is_none(),
            "RSS stops an eighth short of the limit, for what admitted requests still allocate"
        );
        RESIDENT.store(50 << 20, Ordering::Relaxed);
        assert!(b.admit(None).is_some());
        RESIDENT.store(90 << 20, Ordering::Relaxed);
        LOW_HEAP.store(8 << 20, Ordering::Relaxed);
        assert!(
            b.admit(None).is_some(),
            "the allocator's free pages get reused"
        );
    }

    #[test]
    fn room_the_exporters_will_take_again_is_not_given_to_requests() {
        static EXPECTED: AtomicUsize = AtomicUsize::new(0);
        let b = Arc::new(MemoryBudget::with_probes(
            64 << 20,
            || 40 << 20,
            || 40 << 20,
            || {
                (
                    EXPECTED.load(Ordering::Relaxed),
                    EXPECTED.load(Ordering::Relaxed),
                )
            },
        ));
        assert!(b.admit(Some(1 << 20)).is_some());
        EXPECTED.store(20 << 20, Ordering::Relaxed);
        assert!(
            b.admit(Some(1 << 20)).is_none(),
            "40 MiB held + 20 MiB the exporters will copy again + the request's share > 56 MiB"
        );
        EXPECTED.store(8 << 20, Ordering::Relaxed);
        assert!(b.admit(Some(1 << 20)).is_some());
    }

    #[test]
    fn a_generous_estimate_of_the_exporters_room_does_not_refuse_the_only_request() {
        // A small limit (a sidecar's cgroup) and the start-up estimate at half of it: the
        // estimate alone must not refuse everything while it decays.
        let b = Arc::new(MemoryBudget::with_probes(
            48 << 20,
            || 8 << 20,
            || 20 << 20,
            || (24 << 20, 0),
        ));
        let only = b.admit(Some(1 << 20));
        assert!(only.is_some(), "nothing else admitted: the request goes in");
        let b = Arc::new(MemoryBudget::with_probes(
            48 << 20,
            || 8 << 20,
            || 31 << 20,
            || (24 << 20, 0),
        ));
        assert!(
            b.admit(Some(1 << 20)).is_none(),
            "a quarter of the limit of the estimate still counts: 31 + 12 MiB > 42 MiB"
        );
        let b = Arc::new(MemoryBudget::with_probes(
            48 << 20,
            || 8 << 20,
            || 20 << 20,
            || (24 << 20, 24 << 20),
        ));
        assert!(
            b.admit(Some(1 << 20)).is_none(),
            "room the exporters were seen to take is kept even for the only request"
        );
    }

    #[test]
    fn near_the_limit_freed_pages_go_back_at_once_until_resident_memory_falls() {
        static RESIDENT: AtomicUsize = AtomicUsize::new(0);
        static SWITCHED: std::sync::Mutex<Vec<bool>> = std::sync::Mutex::new(Vec::new());
        let mut b = MemoryBudget::with_probes(
            64 << 20,
            || 0,
            || RESIDENT.load(Ordering::Relaxed),
            || (0, 0),
        );
        b.on_pressure = |on| SWITCHED.lock().unwrap().push(on);
        let b = Arc::new(b);
        for mib in [10, 47, 48, 60, 48, 41, 40, 39, 47, 48] {
            RESIDENT.store(mib << 20, Ordering::Relaxed);
            let _ = b.admit(None);
        }
        assert_eq!(
            *SWITCHED.lock().unwrap(),
            [true, false, true],
            "on at 48 MiB (6/8), off below 40 MiB (5/8), once per change"
        );
    }

    #[test]
    fn the_reservation_follows_what_requests_weigh() {
        let b = Arc::new(MemoryBudget::with_probes(64 << 20, || 0, || 0, || (0, 0)));
        for _ in 0..64 {
            b.observe(4 << 20);
        }
        let typical = b.typical.load(Ordering::Relaxed);
        assert!(typical > 3 << 20 && typical <= 4 << 20, "{typical}");
        let admitted: Vec<_> = (0..32).map_while(|_| b.admit(None)).collect();
        assert!((15..=21).contains(&admitted.len()), "{}", admitted.len());
    }

    #[test]
    fn the_sending_prior_counts_otlp_forwarders_by_their_settings_and_is_capped() {
        let config = |exporters: &str| {
            weir_config::parse(&format!("exporters:\n{exporters}"), "test", |_| None).unwrap()
        };
        let grpc = config(
            "  up:\n    otlp: {endpoints: [\"a:4317\"], protocol: grpc, compression: none}\n    batch: {max_bytes: 2MiB}\n    max_in_flight: 3\n",
        );
        // Three signals, (3 + 1) requests of 2 MiB each, held and copied once per attempt.
        assert_eq!(sending_prior(&grpc, 1 << 30), 3 * 4 * (2 << 20) * 2);
        assert_eq!(
            sending_prior(&grpc, 64 << 20),
            32 << 20,
            "half the limit at most"
        );
        let others = config(
            "  ch:\n    clickhouse: {endpoint: \"http://a:8123\"}\n  bh:\n    blackhole: {}\n",
        );
        assert_eq!(sending_prior(&others, 1 << 30), 0);
    }

    #[test]
    fn cgroup_values_that_mean_no_limit_are_none() {
        let dir = std::env::temp_dir().join(format!("weir-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("limit");
        let path = file.to_str().unwrap();
        for (text, want) in [
            ("max\n", None),
            ("9223372036854771712\n", None),
            ("536870912\n", Some(512 << 20)),
        ] {
            std::fs::write(&file, text).unwrap();
            assert_eq!(read_limit(path), want, "{text:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
