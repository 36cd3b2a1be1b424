//! The last value each attribute key had that scanned clean, for the rest of one batch's pass.
//!
//! SDKs repeat long values record after record (a user agent, a URL, a host name, a resource's
//! identity): in a 500-record request the same 100-byte user agent is scanned 500 times, and long
//! values are the ones that reach the scanner's literal searches. A value byte-for-byte equal to one
//! that scanned clean under the same policy scans clean again (the scan reads nothing but the policy
//! and the text), so the pass skips it. The memo lives in one [`super::pass::Pass`], so it never
//! outlives the policy it was built under, and a hit needs the whole value equal, never a hash alone.
//!
//! Slots are picked by a hash of the key, one value per slot: two keys that share a slot just scan
//! more often. A key whose values keep changing (an id) stops being copied, and a pass where almost
//! nothing repeats stops looking (see [`CHURN`] and [`TRIAL`]).

/// Values shorter than this are cheaper to scan than to look up.
const MIN_LEN: usize = 24;
/// Keys remembered at once; a power of two.
const SLOTS: usize = 64;
/// After this many different values in a row, a key's values are copied only now and then: a key
/// that never repeats (an id, a generated text) should cost a lookup, not a copy per value.
const CHURN: u32 = 4;
/// Lookups after which a pass that almost never hits stops looking: a batch whose long values are
/// all different (generated text, ids) then pays one branch per value.
const TRIAL: u32 = 64;

#[derive(Default)]
struct Slot {
    key: String,
    value: String,
    /// Values in a row under `key` that were not `value`.
    misses: u32,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The value is the one its key last held clean: nothing to scan.
    Clean,
    /// Scan it; if it is clean, [`CleanMemo::remember`] it in this slot.
    Scan(usize),
    /// Scan it, and do not remember it (too short, or its key's values keep changing).
    ScanOnly,
}

#[derive(Default)]
pub(super) struct CleanMemo {
    /// Allocated on the first value remembered, then reused.
    slots: Vec<Slot>,
    lookups: u32,
    hits: u32,
}

impl CleanMemo {
    pub(super) fn lookup(&mut self, key: &str, value: &str) -> Lookup {
        if value.len() < MIN_LEN || self.given_up() {
            return Lookup::ScanOnly;
        }
        self.lookups += 1;
        let i = slot(key);
        let Some(s) = self.slots.get_mut(i).filter(|s| s.key == key) else {
            return Lookup::Scan(i);
        };
        if s.value == value {
            s.misses = 0;
            self.hits += 1;
            return Lookup::Clean;
        }
        s.misses += 1;
        if s.misses >= CHURN && s.misses % (CHURN * 8) != 0 {
            return Lookup::ScanOnly;
        }
        Lookup::Scan(i)
    }

    /// Whether this pass has looked long enough to know that fewer than one value in eight repeats.
    fn given_up(&self) -> bool {
        self.lookups >= TRIAL && self.hits * 8 < self.lookups
    }

    /// Remembers that `value` scanned clean under `key`, in the slot [`Self::lookup`] named.
    pub(super) fn remember(&mut self, slot: usize, key: &str, value: &str) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, Slot::default);
        }
        let s = &mut self.slots[slot];
        if s.key != key {
            s.key.clear();
            s.key.push_str(key);
            s.misses = 0;
        }
        s.value.clear();
        s.value.push_str(value);
    }
}

/// The key's length and last eight bytes, mixed: keys differ most at their ends (`http.route`,
/// `http.request.method`), and this runs once per long value.
fn slot(key: &str) -> usize {
    let b = key.as_bytes();
    let tail = b[b.len().saturating_sub(8)..]
        .iter()
        .fold(b.len() as u64, |x, &c| x << 8 | u64::from(c));
    (tail.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::{CleanMemo, Lookup, CHURN, TRIAL};

    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36";
    const KEY: &str = "user_agent.original";

    /// Looks `value` up and, as the pass does for a clean value, remembers it when told to.
    fn seen_clean(m: &mut CleanMemo, key: &str, value: &str) -> Lookup {
        let found = m.lookup(key, value);
        if let Lookup::Scan(slot) = found {
            m.remember(slot, key, value);
        }
        found
    }

    #[test]
    fn remembers_the_last_clean_value_per_key_and_needs_the_whole_value_equal() {
        let mut m = CleanMemo::default();
        assert!(matches!(seen_clean(&mut m, KEY, UA), Lookup::Scan(_)));
        assert_eq!(m.lookup(KEY, UA), Lookup::Clean);
        // Same key, a value that differs in one byte, or only in length: not known clean.
        let changed = UA.replace("537.36", "537.37");
        assert_ne!(m.lookup(KEY, &changed), Lookup::Clean);
        assert_ne!(m.lookup(KEY, &UA[..UA.len() - 1]), Lookup::Clean);
        // Same value under another key: not known clean for that key.
        assert_ne!(m.lookup("http.user_agent", UA), Lookup::Clean);
        // A new clean value replaces the old one.
        seen_clean(&mut m, KEY, &changed);
        assert_eq!(m.lookup(KEY, &changed), Lookup::Clean);
        assert_ne!(m.lookup(KEY, UA), Lookup::Clean);
    }

    #[test]
    fn short_values_are_never_remembered() {
        let mut m = CleanMemo::default();
        assert_eq!(m.lookup("http.method", "GET"), Lookup::ScanOnly);
        assert!(m.slots.is_empty(), "nothing allocated for short values");
    }

    #[test]
    fn a_key_whose_values_keep_changing_is_copied_only_now_and_then() {
        let mut m = CleanMemo::default();
        let value = |i: u32| format!("request {i:08} from the checkout service");
        let copied = (0..256)
            .filter(|&i| {
                matches!(
                    seen_clean(&mut m, "request.text", &value(i)),
                    Lookup::Scan(_)
                )
            })
            .count();
        assert!(
            copied <= CHURN as usize + TRIAL as usize / (CHURN as usize * 8),
            "{copied} copies"
        );
        // A pass where almost nothing repeats stops looking after its trial.
        assert_eq!(m.lookup("request.text", &value(0)), Lookup::ScanOnly);
    }

    #[test]
    fn a_key_that_settles_is_remembered_again() {
        let mut m = CleanMemo::default();
        let value = |i: u32| format!("request {i:08} from the checkout service");
        for i in 0..20 {
            seen_clean(&mut m, "request.text", &value(i));
        }
        let settled = value(9999);
        for _ in 0..(CHURN * 8) {
            seen_clean(&mut m, "request.text", &settled);
        }
        assert_eq!(m.lookup("request.text", &settled), Lookup::Clean);
    }
}
