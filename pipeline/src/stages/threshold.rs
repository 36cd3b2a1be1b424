//! OTEP 235's threshold codec: a sampling probability as the rejection threshold T in [0, 2^56],
//! its `th` text in the `ot` member of a W3C `tracestate`, the `rv` randomness beside it, and the
//! randomness of a trace id. [`super::sample`] decides with it (keep when R ≥ T) and the tail
//! sampler's probability condition uses the same values, so both tiers agree on a trace.

use super::tracestate;

/// 2^56: randomness values and thresholds are 56-bit.
pub(crate) const MAX: u64 = 1 << 56;

/// A compiled probability: the rejection threshold T in [0, 2^56].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold(pub u64);

impl Threshold {
    pub fn from_probability(p: f64) -> Self {
        // p·2^56 first: for small p it stays exact in f64, where (1 − p)·2^56 would lose the low bits.
        let p = p.clamp(0.0, 1.0);
        Threshold(MAX - (p * MAX as f64).round() as u64)
    }

    /// `th` text: 14 hex digits with trailing zeros removed; `0` for "keep everything".
    pub fn encode(self) -> String {
        if self.0 == 0 {
            return "0".into();
        }
        let s = format!("{:014x}", self.0.min(MAX - 1));
        s.trim_end_matches('0').to_string()
    }

    pub fn decode(th: &str) -> Option<Self> {
        if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let padded = format!("{th:0<14}");
        u64::from_str_radix(&padded, 16).ok().map(Threshold)
    }
}

/// The `ot` member of a tracestate: its `th` and `rv` sub-keys.
pub(crate) fn ot_values(state: &str) -> (Option<Threshold>, Option<u64>) {
    let Some(ot) = state
        .split(',')
        .map(str::trim)
        .find_map(|m| m.strip_prefix("ot="))
    else {
        return (None, None);
    };
    let (mut th, mut rv) = (None, None);
    for kv in ot.split(';') {
        match kv.split_once(':') {
            Some(("th", v)) => th = Threshold::decode(v),
            Some(("rv", v)) if v.len() == 14 => rv = u64::from_str_radix(v, 16).ok(),
            _ => {}
        }
    }
    (th, rv)
}

/// `state` with `ot=th:<t>` set, other `ot` sub-keys and other members kept, `ot` first (W3C:
/// a modified member moves to the front).
pub(crate) fn with_threshold(state: &str, t: Threshold) -> String {
    let mut ot_parts = vec![format!("th:{}", t.encode())];
    let mut others = Vec::new();
    for m in state.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match m.strip_prefix("ot=") {
            Some(ot) => ot_parts.extend(
                ot.split(';')
                    .filter(|kv| !kv.starts_with("th:") && !kv.is_empty())
                    .map(String::from),
            ),
            None => others.push(m.to_string()),
        }
    }
    let mut out = format!("ot={}", ot_parts.join(";"));
    for m in others {
        out.push(',');
        out.push_str(&m);
    }
    tracestate::normalize(&out).unwrap_or(out)
}

/// Randomness of a trace: its id's low 56 bits.
pub fn trace_randomness(trace_id: &[u8]) -> u64 {
    if trace_id.len() != 16 {
        return 0;
    }
    trace_id[9..16]
        .iter()
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_encode_as_the_spec_shows() {
        assert_eq!(Threshold::from_probability(1.0).encode(), "0");
        assert_eq!(Threshold::from_probability(0.5).encode(), "8");
        assert_eq!(Threshold::from_probability(0.25).encode(), "c");
        assert_eq!(Threshold::from_probability(0.01).encode(), "fd70a3d70a3d71");
        assert_eq!(Threshold::decode("8"), Some(Threshold(1 << 55)));
        assert_eq!(Threshold::decode("xyz"), None);
    }

    #[test]
    fn tracestate_rewrite_keeps_other_keys_and_vendors() {
        assert_eq!(with_threshold("", Threshold(1 << 55)), "ot=th:8");
        assert_eq!(
            with_threshold("vendor=x,ot=rv:abcdef01234567;th:c", Threshold(0xe << 52)),
            "ot=th:e;rv:abcdef01234567,vendor=x"
        );
        assert_eq!(
            ot_values("ot=th:8;rv:00000000000001"),
            (Some(Threshold(1 << 55)), Some(1))
        );
    }
}
