//! A quick, sound "no" before the detectors' DFA. Most attribute values and bodies hold nothing a
//! detector could match, yet the multi-pattern DFA reads every byte of them (29 % of the
//! full-chain profile on SDK-shaped logs). Every built-in detector needs bytes that one table pass
//! can rule out (an email needs `@` and `.`, a card digits, an IPv4 address digits and dots), and
//! then a shape or a literal that a cheap check finds (three dotted digit groups, a 13-digit run,
//! `eyJ`, `AKIA`, `bearer`), so most strings are cleared without the DFA.
//!
//! The answer must never be a wrong "no": each condition is implied by its detector's regex (see
//! `scanner::builtin`), and the tests prove it against strings generated from those regexes and
//! against the regex itself. Text that is not ASCII is always scanned, because Unicode case
//! folding (`ſ` for `s`, `K` for `k`) and Unicode whitespace would need more than byte classes. A
//! user pattern turns the prefilter off: nothing is known about what it needs.

use aho_corasick::AhoCorasick;

/// Which bytes a string holds, as bits: one table lookup and one OR per byte.
type Seen = u16;
const DIGIT: Seen = 1;
const UPPER: Seen = 1 << 1;
const DOT: Seen = 1 << 2;
const COLON: Seen = 1 << 3;
const DASH: Seen = 1 << 4;
const AT: Seen = 1 << 5;
const EQUALS: Seen = 1 << 6;
const UNDERSCORE: Seen = 1 << 7;
/// What `\s` matches among ASCII bytes.
const SPACE: Seen = 1 << 8;
/// `b` or `B`, which `bearer` and `basic` start with.
const B: Seen = 1 << 9;
/// `A` (`AKIA` and friends, `AIza`), `J` (`eyJ`), `z` (`AIza`); each is also `UPPER` or not.
const BIG_A: Seen = 1 << 10;
const BIG_J: Seen = 1 << 11;
const Z: Seen = 1 << 12;
const NON_ASCII: Seen = 1 << 13;

const CLASS: [Seen; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'0'..=b'9' => DIGIT,
            b'A' => UPPER | BIG_A,
            b'B' => UPPER | B,
            b'C'..=b'I' | b'K'..=b'Z' => UPPER,
            b'J' => UPPER | BIG_J,
            b'b' => B,
            b'z' => Z,
            b'.' => DOT,
            b':' => COLON,
            b'-' => DASH,
            b'@' => AT,
            b'=' => EQUALS,
            b'_' => UNDERSCORE,
            b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' => SPACE,
            0x80..=0xFF => NON_ASCII,
            _ => 0,
        };
        b += 1;
    }
    t
};

fn seen(text: &[u8]) -> Seen {
    // Four accumulators, so the ORs do not wait on each other.
    let mut s = [0 as Seen; 4];
    let mut chunks = text.chunks_exact(4);
    for c in &mut chunks {
        s[0] |= CLASS[c[0] as usize];
        s[1] |= CLASS[c[1] as usize];
        s[2] |= CLASS[c[2] as usize];
        s[3] |= CLASS[c[3] as usize];
    }
    for &b in chunks.remainder() {
        s[0] |= CLASS[b as usize];
    }
    s[0] | s[1] | s[2] | s[3]
}

fn count(text: &[u8], byte: u8) -> usize {
    memchr::memchr_iter(byte, text).count()
}

/// Whether `text` has `ddd-dd-dddd`.
fn has_ssn_shape(text: &[u8]) -> bool {
    text.windows(11).any(|w| {
        w[3] == b'-'
            && w[6] == b'-'
            && w.iter()
                .enumerate()
                .all(|(i, b)| i == 3 || i == 6 || b.is_ascii_digit())
    })
}

/// Whether `text` has digits, a dot, digits, a dot, digits, a dot, digits in a row: what every
/// IPv4 match contains (looser than the regex, which bounds each group to three digits). Only the
/// dots are visited, found by `memchr`: a quad's first dot has a digit before it.
fn has_dotted_quad(text: &[u8]) -> bool {
    let digits = |from: usize| {
        text[from.min(text.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    memchr::memchr_iter(b'.', text).any(|dot| {
        if dot == 0 || !text[dot - 1].is_ascii_digit() {
            return false;
        }
        let mut at = dot + 1;
        for group in 0..3 {
            let n = digits(at);
            if n == 0 {
                return false;
            }
            at += n;
            if group < 2 {
                if text.get(at) != Some(&b'.') {
                    return false;
                }
                at += 1;
            }
        }
        true
    })
}

/// Whether `text` has a run of at least `len` bytes of `class` holding a run that `exact` accepts.
/// Any such run covers one of every `len`-th byte, so only those are looked at until one is in
/// the class; then its whole run goes to `exact`.
fn probe_runs(
    text: &[u8],
    len: usize,
    class: impl Fn(u8) -> bool,
    exact: impl Fn(&[u8]) -> bool,
) -> bool {
    let mut probe = len - 1;
    while probe < text.len() {
        if !class(text[probe]) {
            probe += len;
            continue;
        }
        let start = text[..probe]
            .iter()
            .rposition(|&b| !class(b))
            .map_or(0, |i| i + 1);
        let end = text[probe..]
            .iter()
            .position(|&b| !class(b))
            .map_or(text.len(), |i| probe + i);
        if end - start >= len && exact(&text[start..end]) {
            return true;
        }
        probe = end + len;
    }
    false
}

/// Whether `text` has `len` digits in a row, single spaces or dashes allowed between them: what
/// every card-number match is.
fn has_digit_run(text: &[u8], len: usize) -> bool {
    probe_runs(
        text,
        len,
        |b| b.is_ascii_digit() || b == b' ' || b == b'-',
        |run| {
            let (mut digits, mut after_separator) = (0, false);
            for &b in run {
                if b.is_ascii_digit() {
                    digits += 1;
                    if digits >= len {
                        return true;
                    }
                    after_separator = false;
                } else if digits > 0 && !after_separator {
                    after_separator = true;
                } else {
                    digits = 0;
                    after_separator = false;
                }
            }
            false
        },
    )
}

/// Whether `text` has two capitals followed by two digits: how every IBAN match starts.
fn has_caps_then_digits(text: &[u8]) -> bool {
    text.windows(4).any(|w| {
        w[0].is_ascii_uppercase()
            && w[1].is_ascii_uppercase()
            && w[2].is_ascii_digit()
            && w[3].is_ascii_digit()
    })
}

/// Whether `text` has `len` capitals or digits in a row: what an AWS access key is.
fn has_key_run(text: &[u8], len: usize) -> bool {
    probe_runs(
        text,
        len,
        |b| b.is_ascii_uppercase() || b.is_ascii_digit(),
        |_| true,
    )
}

/// Whether `text` has `bearer` or `basic` in any case followed by whitespace: how every credentials
/// match starts (`\s` among ASCII bytes is [`SPACE`]; other text never gets here). Only the `b`s
/// are visited.
fn has_credentials_word(text: &[u8]) -> bool {
    memchr::memchr2_iter(b'b', b'B', text).any(|at| {
        let rest = &text[at + 1..];
        [&b"earer"[..], b"asic"].iter().any(|word| {
            rest.len() > word.len()
                && rest[..word.len()].eq_ignore_ascii_case(word)
                && CLASS[rest[word.len()] as usize] & SPACE != 0
        })
    })
}

/// The built-in detectors, as bits of [`Prefilter::on`].
#[derive(Debug, Clone, Copy)]
enum Builtin {
    Jwt,
    SecretToken,
    Credentials,
    SecretAssignment,
    Aws,
    Email,
    Iban,
    Card,
    Ssn,
    Ipv6,
    Ipv4,
}

fn builtin(detector: &str) -> Option<Builtin> {
    Some(match detector {
        "jwt" => Builtin::Jwt,
        "secret_token" => Builtin::SecretToken,
        "credentials" => Builtin::Credentials,
        "secret_assignment" => Builtin::SecretAssignment,
        "aws_access_key" => Builtin::Aws,
        "email" => Builtin::Email,
        "iban" => Builtin::Iban,
        "credit_card" => Builtin::Card,
        "us_ssn" => Builtin::Ssn,
        "ipv6" => Builtin::Ipv6,
        "ipv4" => Builtin::Ipv4,
        _ => return None,
    })
}

/// `secret_token`'s prefixes that hold a dash or an underscore (the one that does not, `AIza`, is
/// searched on its own).
const TOKEN_PREFIXES: &[&str] = &[
    "-----BEGIN",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "sk_live_",
    "rk_live_",
];
const AWS_PREFIXES: &[&str] = &[
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA",
];
/// `secret_assignment`'s key words, case-insensitive; `api[_-]?key` and the other compound ones
/// all start with the word listed.
const KEY_WORDS: &[&str] = &[
    "password", "passwd", "pwd", "secret", "token", "api", "access", "client", "auth", "private",
];

/// The prefilter for one scanner's detectors.
#[derive(Debug, Clone)]
pub(super) struct Prefilter {
    /// A bit per [`Builtin`] that is on; `None` when some detector's needs are unknown (a user
    /// pattern): then every string is scanned.
    on: Option<u16>,
    tokens: AhoCorasick,
    aws: AhoCorasick,
    key_words: AhoCorasick,
    /// Built once: `memmem::find` would build its searcher on every call.
    jwt: memchr::memmem::Finder<'static>,
    google_key: memchr::memmem::Finder<'static>,
}

impl Prefilter {
    /// `detectors`: each detector's name and whether it is built in.
    pub(super) fn new<'a>(detectors: impl IntoIterator<Item = (&'a str, bool)>) -> Prefilter {
        let on = detectors
            .into_iter()
            .try_fold(0u16, |on, (name, is_builtin)| {
                let k = builtin(name).filter(|_| is_builtin)?;
                Some(on | 1 << k as u16)
            });
        let search = |literals: &[&str], any_case: bool| {
            AhoCorasick::builder()
                .ascii_case_insensitive(any_case)
                .build(literals)
                .expect("a few short literals always build")
        };
        Prefilter {
            on,
            tokens: search(TOKEN_PREFIXES, false),
            aws: search(AWS_PREFIXES, false),
            key_words: search(KEY_WORDS, true),
            jwt: memchr::memmem::Finder::new(b"eyJ"),
            google_key: memchr::memmem::Finder::new(b"AIza"),
        }
    }

    /// False only when no detector can match anywhere in `text`. Each line is what its detector's
    /// regex (`scanner::builtin`) implies about ASCII text; the bytes seen gate every costlier
    /// check.
    pub(super) fn might_match(&self, text: &str) -> bool {
        let Some(on) = self.on else {
            return true;
        };
        let t = text.as_bytes();
        let seen = seen(t);
        let is = |k: Builtin| on & (1 << k as u16) != 0;
        let all = |bits: Seen| seen & bits == bits;
        all(NON_ASCII)
            // local@domain.tld
            || (is(Builtin::Email) && all(AT | DOT))
            // At least two colons.
            || (is(Builtin::Ipv6) && all(COLON) && count(t, b':') >= 2)
            || (is(Builtin::Ssn) && all(DIGIT | DASH) && has_ssn_shape(t))
            // 13 to 19 digits, single spaces or dashes between.
            || (is(Builtin::Card) && all(DIGIT) && t.len() >= 13 && has_digit_run(t, 13))
            || (is(Builtin::Ipv4) && all(DIGIT | DOT) && has_dotted_quad(t))
            // Two capitals and two digits, then at least eight more capitals or digits.
            || (is(Builtin::Iban) && all(DIGIT | UPPER) && t.len() >= 12 && has_caps_then_digits(t))
            // eyJ….eyJ….…
            || (is(Builtin::Jwt) && all(BIG_J | DOT) && self.jwt.find(t).is_some())
            // A four-capital prefix and 16 more capitals or digits.
            || (is(Builtin::Aws) && all(BIG_A) && has_key_run(t, 20) && self.aws.is_match(t))
            || (is(Builtin::SecretToken)
                && ((seen & (DASH | UNDERSCORE) != 0 && self.tokens.is_match(t))
                    || (all(BIG_A | Z) && self.google_key.find(t).is_some())))
            // A key word, then `=` or `:`.
            || (is(Builtin::SecretAssignment)
                && seen & (EQUALS | COLON) != 0
                && self.key_words.is_match(t))
            // bearer|basic, then whitespace.
            || (is(Builtin::Credentials) && all(SPACE | B) && has_credentials_word(t))
    }
}

#[cfg(test)]
mod tests;
