//! One pass over a string for every detector at once: the built-in detectors and user patterns are
//! alternatives of a single regex, each in its own capture group, so a string that matches nothing
//! costs one DFA scan and no allocation. A candidate is then checked where a regex cannot (Luhn for
//! cards, mod-97 for IBANs, octet ranges for IPs, SSN area rules) before it counts.

use super::prefilter::Prefilter;
use regex::Regex;
use regex_automata::meta::Cache;
use regex_automata::util::iter::Searcher;
use regex_automata::Input;
use std::cell::RefCell;
use weir_config::redact::{Action, RedactConfig, Switch};

/// A detector's regex; `(?P<v>…)` marks the part to redact when it is not the whole match.
pub(super) fn builtin(name: &str) -> &'static str {
    match name {
        "jwt" => r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
        "secret_token" => concat!(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            r"|\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}",
            r"|xox[abposr]-[A-Za-z0-9-]{10,}|[sr]k_live_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_-]{35})"
        ),
        "credentials" => r"(?i:\b(?:bearer|basic))\s+(?P<v>[A-Za-z0-9._~+/-]{8,}=*)",
        "secret_assignment" => concat!(
            r"(?i:\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret",
            r"|auth[_-]?token|private[_-]?key))",
            r#"\s*[=:]\s*"?(?P<v>[^\s"&;,]+)"#
        ),
        "aws_access_key" => r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}\b",
        "email" => r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        "iban" => r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
        "credit_card" => r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
        "us_ssn" => r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        "ipv6" => r"(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[0-9A-Za-z]+)?",
        "ipv4" => r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
        other => unreachable!("no built-in detector {other}"),
    }
}

fn valid(name: &str, text: &str) -> bool {
    match name {
        "credit_card" => luhn(text),
        "iban" => iban(text),
        "us_ssn" => ssn(text),
        "ipv4" => text.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => {
            let addr = text.split('%').next().unwrap_or(text);
            addr.matches(':').count() >= 2 && addr.parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => true,
    }
}

fn luhn(text: &str) -> bool {
    let digits = || {
        text.bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| u32::from(b - b'0'))
    };
    let first = digits().next();
    if !(13..=19).contains(&digits().count()) || digits().all(|d| Some(d) == first) {
        return false;
    }
    let sum: u32 = digits()
        .rev()
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (true, x) if x > 9 => x - 9,
            (true, x) => x,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Whether `text` is one IPv4 address and nothing else, as a client or peer address attribute
/// usually is. Then the only finding a scan can make is that address, whole: every octet is one to
/// three digits, so the IPv4 regex matches from the first byte to the last and validates; no other
/// built-in detector matches a string of digits and dots this short (a card needs 13 digits in a
/// run, the rest need letters, `@`, `-` or `:`). Checked against the regex by a property test. This
/// skips the DFA's forward and reverse passes for the most common finding in HTTP telemetry.
fn whole_ipv4(text: &str) -> bool {
    (7..=15).contains(&text.len())
        && text.as_bytes()[0].is_ascii_digit()
        && text.parse::<std::net::Ipv4Addr>().is_ok()
}

/// What one detector does.
#[derive(Debug, Clone)]
pub struct Detector {
    pub name: String,
    pub action: Action,
    builtin: bool,
    /// For detectors that redact only part of their match: the same pattern with its `v` group, run
    /// on the match alone.
    value: Option<Regex>,
}

/// A redaction found in a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct Scanner {
    /// Every detector as one pattern of a multi-pattern regex: one leftmost-first DFA pass reports
    /// which detector matched, with no capture groups to track.
    all: regex_automata::meta::Regex,
    /// Tells this compilation's DFA cache from another's (clones share the regex, hence the cache).
    id: u64,
    pub detectors: Vec<Detector>,
    /// Says when no detector can match a string, so the DFA need not read it.
    prefilter: Prefilter,
    /// The IPv4 detector's index, when only built-in detectors are on: see [`whole_ipv4`].
    ipv4: Option<usize>,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The lazy DFA's cache for the scanner this thread ran last, kept warm across strings and
    /// batches. The regex's own pool hands caches out under a lock to every thread but the first:
    /// 4.5 % of a full-chain profile went to taking and returning them.
    static CACHE: RefCell<Option<(u64, Cache)>> = const { RefCell::new(None) };
}

impl Scanner {
    /// `None` when no detector or pattern is on.
    pub fn compile(c: &RedactConfig) -> Result<Option<Self>, String> {
        let mut patterns = Vec::new();
        let mut detectors = Vec::new();
        for (name, switch) in c.detectors.all() {
            if let Switch::On(action) = switch {
                // ASCII word boundaries: a Unicode `\b` sends the lazy DFA to a slower engine on any
                // non-ASCII text, and every boundary these patterns need is between ASCII characters.
                patterns.push(builtin(name).replace(r"\b", r"(?-u:\b)"));
                detectors.push((name.to_string(), action, true));
            }
        }
        for p in &c.patterns {
            patterns.push(p.regex.clone());
            detectors.push((p.name.clone(), p.action, false));
        }
        if patterns.is_empty() {
            return Ok(None);
        }
        let all = regex_automata::meta::Regex::builder()
            .configure(
                regex_automata::meta::Config::new()
                    .nfa_size_limit(Some(64 << 20))
                    .hybrid_cache_capacity(8 << 20),
            )
            .build_many(&patterns)
            .map_err(|e| format!("pipeline.redact.patterns: {e}"))?;
        let detectors: Vec<Detector> = detectors
            .into_iter()
            .zip(&patterns)
            .map(|((name, action, builtin), pattern)| {
                let value = if pattern.contains("(?P<v>") {
                    Some(
                        Regex::new(pattern)
                            .map_err(|e| format!("pipeline.redact.patterns: {e}"))?,
                    )
                } else {
                    None
                };
                Ok(Detector {
                    name,
                    action,
                    builtin,
                    value,
                })
            })
            .collect::<Result<_, String>>()?;
        let prefilter = Prefilter::new(detectors.iter().map(|d| (d.name.as_str(), d.builtin)));
        let ipv4 = detectors
            .iter()
            .all(|d| d.builtin)
            .then(|| detectors.iter().position(|d| d.name == "ipv4"))
            .flatten();
        Ok(Some(Scanner {
            all,
            prefilter,
            ipv4,
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            detectors,
        }))
    }

    /// Every checked match in `text`, left to right, non-overlapping, into `found` (cleared first);
    /// `skip` says whether a region is already a redaction (so a second pass leaves it alone). The
    /// caller keeps `found` from string to string, so a match allocates nothing once it has grown.
    pub fn scan(
        &self,
        text: &str,
        skip: impl Fn(&str, usize, usize) -> bool,
        found: &mut Vec<Found>,
    ) {
        found.clear();
        if let Some(detector) = self.ipv4.filter(|_| whole_ipv4(text)) {
            if !skip(text, 0, text.len()) {
                found.push(Found {
                    detector,
                    start: 0,
                    end: text.len(),
                });
            }
            return;
        }
        if !self.prefilter.might_match(text) {
            return;
        }
        self.scan_regex(text, skip, found)
    }

    /// [`Scanner::scan`] without the shortcut for a whole IPv4 address: the reference it must agree
    /// with.
    fn scan_regex(
        &self,
        text: &str,
        skip: impl Fn(&str, usize, usize) -> bool,
        found: &mut Vec<Found>,
    ) {
        CACHE.with(|slot| match slot.try_borrow_mut() {
            Ok(mut slot) => {
                if slot.as_ref().is_none_or(|(id, _)| *id != self.id) {
                    *slot = Some((self.id, self.all.create_cache()));
                }
                let (_, cache) = slot.as_mut().expect("just filled");
                self.scan_with(cache, text, &skip, found)
            }
            // Only if `skip` itself scanned; a cold cache is merely slower.
            Err(_) => self.scan_with(&mut self.all.create_cache(), text, &skip, found),
        })
    }

    /// Whether any detector's regex matches anywhere in `text`, before validation: what the
    /// prefilter must never deny.
    #[cfg(test)]
    pub(super) fn any_regex_matches(&self, text: &str) -> bool {
        self.all.is_match(text)
    }

    #[cfg(test)]
    pub(super) fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    fn scan_with(
        &self,
        cache: &mut Cache,
        text: &str,
        skip: &impl Fn(&str, usize, usize) -> bool,
        found: &mut Vec<Found>,
    ) {
        let mut matches = Searcher::new(Input::new(text));
        while let Some(m) = matches.advance(|input| Ok(self.all.search_with(cache, input))) {
            let detector = m.pattern().as_usize();
            let d = &self.detectors[detector];
            let (mut start, mut end) = (m.start(), m.end());
            if let Some(v) = d
                .value
                .as_ref()
                .and_then(|re| re.captures(&text[start..end]))
            {
                if let Some(g) = v.name("v") {
                    (start, end) = (m.start() + g.start(), m.start() + g.end());
                }
            }
            if start == end
                || (d.builtin && !valid(&d.name, &text[start..end]))
                || skip(text, start, end)
            {
                continue;
            }
            found.push(Found {
                detector,
                start,
                end,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every detector on, and each alone: the scanners the shortcut must agree with the regex for.
    fn scanners() -> Vec<Scanner> {
        let all = Scanner::compile(&RedactConfig::default()).unwrap().unwrap();
        let mut ipv4_only = RedactConfig::default();
        let on = ipv4_only.detectors.ipv4;
        ipv4_only.detectors = weir_config::redact::Detectors {
            ipv4: on,
            ..off(ipv4_only.detectors.clone())
        };
        vec![all, Scanner::compile(&ipv4_only).unwrap().unwrap()]
    }

    fn off(mut d: weir_config::redact::Detectors) -> weir_config::redact::Detectors {
        for s in [
            &mut d.credit_card,
            &mut d.email,
            &mut d.ipv4,
            &mut d.ipv6,
            &mut d.jwt,
            &mut d.credentials,
            &mut d.aws_access_key,
            &mut d.secret_token,
            &mut d.secret_assignment,
            &mut d.us_ssn,
            &mut d.iban,
        ] {
            *s = Switch::Off;
        }
        d
    }

    fn both_ways(scanner: &Scanner, text: &str) -> (Vec<Found>, Vec<Found>) {
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        scanner.scan(text, |_, _, _| false, &mut fast);
        scanner.scan_regex(text, |_, _, _| false, &mut slow);
        (fast, slow)
    }

    #[test]
    fn a_whole_address_is_found_whole_without_the_regex() {
        for scanner in scanners() {
            for text in ["10.1.2.3", "255.255.255.255", "0.0.0.0", "192.168.100.200"] {
                let (fast, slow) = both_ways(&scanner, text);
                assert_eq!(fast.len(), 1, "{text}");
                assert_eq!((fast[0].start, fast[0].end), (0, text.len()));
                assert_eq!(fast, slow, "{text}");
            }
            for text in [
                "01.2.3.4",
                "256.1.1.1",
                "1.2.3",
                "1.2.3.4.5",
                "1.2.3.4 ",
                "a1.2.3.4",
            ] {
                assert_eq!(
                    both_ways(&scanner, text).0,
                    both_ways(&scanner, text).1,
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn a_whole_address_already_redacted_is_left_alone() {
        let scanner = &scanners()[0];
        let mut found = Vec::new();
        scanner.scan("10.1.2.3", |_, _, _| true, &mut found);
        assert!(found.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn strings_of_digits_and_dots_scan_as_the_regex_scans_them(
            text in prop_oneof![
                "[0-9.]{0,17}",
                (0u16..1000, 0u16..1000, 0u16..1000, 0u16..1000, "0?", "[.0-9]{0,2}")
                    .prop_map(|(a, b, c, d, zero, tail)| format!("{zero}{a}.{b}.{c}.{d}{tail}")),
            ]
        ) {
            for scanner in scanners() {
                let (fast, slow) = both_ways(&scanner, &text);
                prop_assert_eq!(fast, slow, "{}", text);
            }
        }
    }

    #[test]
    fn validators() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("0000000000000000"), "all one digit is never a card");
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        assert!(ssn("123-45-6789"));
        assert!(!ssn("000-12-3456") && !ssn("666-12-3456") && !ssn("900-12-3456"));
        assert!(
            valid("ipv6", "2001:db8::1") && valid("ipv6", "::1") && valid("ipv6", "fe80::1%eth0")
        );
        assert!(!valid("ipv6", "12:30:45"), "a time is not an address");
        assert!(!valid("ipv4", "999.1.1.1"));
    }
}
