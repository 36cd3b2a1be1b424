//! The pieces a redaction policy is compiled into: key globs, the mask, and the keyed hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use weir_config::redact::{HashAlgorithm, HashConfig, MaskConfig};

/// A case-insensitive key pattern where `*` matches any run of characters. Matching allocates
/// nothing.
#[derive(Debug, Clone)]
pub struct Glob {
    /// The literal pieces between stars.
    parts: Vec<Literal>,
    starts_free: bool,
    ends_free: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let lower = pattern.to_ascii_lowercase();
        Glob {
            parts: lower
                .split('*')
                .filter(|p| !p.is_empty())
                .map(Literal::new)
                .collect(),
            starts_free: lower.starts_with('*'),
            ends_free: lower.ends_with('*'),
        }
    }

    pub fn matches(&self, key: &str) -> bool {
        let n = self.parts.len();
        if n == 0 {
            return self.starts_free || key.is_empty();
        }
        let mut rest = key.as_bytes();
        for (i, part) in self.parts.iter().enumerate() {
            let text = &part.text[..];
            if i == 0 && !self.starts_free {
                if !starts_with_ci(rest, text) {
                    return false;
                }
                rest = &rest[text.len()..];
                if n == 1 && !self.ends_free {
                    return rest.is_empty();
                }
            } else if i == n - 1 && !self.ends_free {
                return ends_with_ci(rest, text);
            } else {
                match part.find_in(rest) {
                    Some(at) => rest = &rest[at + text.len()..],
                    None => return false,
                }
            }
        }
        true
    }
}

fn starts_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[..p.len()].eq_ignore_ascii_case(p)
}

fn ends_with_ci(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[s.len() - p.len()..].eq_ignore_ascii_case(p)
}

/// A lowercased piece of a glob, searched for case-insensitively with Horspool's shifts: every
/// attribute key is searched for every `*word*` rule, and most keys hold no byte of the word where
/// the shifts land, so a search looks at about one byte in `len` instead of every position.
#[derive(Debug, Clone)]
struct Literal {
    text: Vec<u8>,
    /// How far the search may move when the window's last byte is this one: the distance from
    /// that byte's last place in `text` (before its final byte, either case) to the end, or the
    /// whole length (at most 255) when it is not there.
    shift: Box<[u8; 256]>,
}

impl Literal {
    fn new(lower: &str) -> Self {
        let text = lower.as_bytes().to_vec();
        let len = u8::try_from(text.len()).unwrap_or(u8::MAX);
        let mut shift = Box::new([len; 256]);
        for (i, &c) in text.iter().enumerate().take(text.len().saturating_sub(1)) {
            let d = u8::try_from(text.len() - 1 - i).unwrap_or(u8::MAX);
            shift[usize::from(c)] = d;
            shift[usize::from(c.to_ascii_uppercase())] = d;
        }
        Literal { text, shift }
    }

    /// Where the leftmost occurrence of this piece starts in `s`, in any ASCII case.
    fn find_in(&self, s: &[u8]) -> Option<usize> {
        let p = &self.text[..];
        let Some(&last) = p.last() else {
            return Some(0);
        };
        let mut at = 0;
        while at + p.len() <= s.len() {
            let end = s[at + p.len() - 1];
            if end.to_ascii_lowercase() == last && s[at..at + p.len()].eq_ignore_ascii_case(p) {
                return Some(at);
            }
            at += usize::from(self.shift[usize::from(end)]);
        }
        None
    }
}

/// Case-insensitive substring search, the plain way: what [`Literal::find_in`] must agree with.
#[cfg(test)]
fn find_ci(s: &[u8], p: &[u8]) -> Option<usize> {
    (0..=s.len().checked_sub(p.len())?).find(|&i| s[i..i + p.len()].eq_ignore_ascii_case(p))
}

/// Replaces a secret, keeping a prefix and suffix of it when configured (and when the secret is long
/// enough that the kept characters are less than half of it).
#[derive(Debug, Clone)]
pub struct Mask {
    pub replacement: String,
    keep_prefix: usize,
    keep_suffix: usize,
}

impl From<&MaskConfig> for Mask {
    fn from(c: &MaskConfig) -> Self {
        Mask {
            replacement: c.replacement.clone(),
            keep_prefix: c.keep_prefix,
            keep_suffix: c.keep_suffix,
        }
    }
}

impl Mask {
    pub fn apply(&self, secret: &str, out: &mut String) {
        let chars = secret.chars().count();
        let kept = self.keep_prefix + self.keep_suffix;
        if kept == 0 || kept * 2 > chars {
            out.push_str(&self.replacement);
            return;
        }
        let prefix_end = secret
            .char_indices()
            .nth(self.keep_prefix)
            .map_or(secret.len(), |(i, _)| i);
        let suffix_start = secret
            .char_indices()
            .nth(chars - self.keep_suffix)
            .map_or(secret.len(), |(i, _)| i);
        out.push_str(&secret[..prefix_end]);
        out.push_str(&self.replacement);
        out.push_str(&secret[suffix_start..]);
    }

    /// Whether `region` is already masked, so a second pass leaves it alone. Asked of every
    /// finding: `memmem::find` searches short regions without the setup `str::contains` pays.
    pub fn is_output(&self, region: &str) -> bool {
        region.len() >= self.replacement.len()
            && memchr::memmem::find(region.as_bytes(), self.replacement.as_bytes()).is_some()
    }
}

/// A keyed hash, truncated to hex: equal inputs give equal outputs, so records still correlate, and
/// without the key nobody can test a guess.
#[derive(Clone)]
pub struct Hasher {
    algorithm: HashAlgorithm,
    key: Vec<u8>,
    length: usize,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

pub const HASH_PREFIX: &str = "hash:";

impl Hasher {
    /// Reads the key from the environment; a missing or empty variable is an error naming it.
    pub fn new(c: &HashConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let secret = env(&c.key_env).filter(|k| !k.is_empty()).ok_or_else(|| {
            format!(
                "pipeline.redact.hash.key_env: environment variable {} is not set or empty",
                c.key_env
            )
        })?;
        let key = match c.algorithm {
            HashAlgorithm::HmacSha256 => secret.into_bytes(),
            HashAlgorithm::Blake3 => {
                blake3::derive_key("weir redaction hash key v1", secret.as_bytes()).to_vec()
            }
        };
        Ok(Hasher {
            algorithm: c.algorithm,
            key,
            length: c.length,
        })
    }

    pub fn apply(&self, secret: &str, out: &mut String) {
        let digest: Vec<u8> = match self.algorithm {
            HashAlgorithm::HmacSha256 => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
                mac.update(secret.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            HashAlgorithm::Blake3 => {
                let key: [u8; 32] = self
                    .key
                    .as_slice()
                    .try_into()
                    .expect("derived keys are 32 bytes");
                blake3::keyed_hash(&key, secret.as_bytes())
                    .as_bytes()
                    .to_vec()
            }
        };
        out.push_str(HASH_PREFIX);
        for b in digest.iter().take(self.length.div_ceil(2)) {
            out.push_str(&format!("{b:02x}"));
        }
        out.truncate(out.len() - (self.length % 2));
    }

    /// Whether `region` is a hash this hasher wrote (or lies inside one).
    pub fn is_output(&self, text: &str, start: usize, end: usize) -> bool {
        let token_start = text[..start]
            .rfind(|c: char| !c.is_ascii_hexdigit())
            .map_or(0, |i| i + 1);
        let before = &text[..token_start];
        let token_end = text[end..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .map_or(text.len(), |i| end + i);
        before.ends_with(HASH_PREFIX) && token_end - token_start == self.length
            || text[start..end].starts_with(HASH_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shifted_search_finds_what_the_plain_one_finds() {
        let words = [
            "password",
            "ab",
            "a",
            "aab",
            "token",
            "x-api",
            "é",
            "passpassword",
            "ssw",
        ];
        let keys = [
            "db.PassWord.x",
            "passwor",
            "xpASSWORD",
            "",
            "aab",
            "aaab",
            "http.request.method",
            "user.password.hash",
            "PASSPASSPASSWORD",
            "refresh_TOKEN",
            "X-API-Key",
            "é.é",
            "sswssw",
        ];
        for w in words {
            let lit = Literal::new(w);
            for k in keys {
                let k = k.as_bytes();
                assert_eq!(lit.find_in(k), find_ci(k, w.as_bytes()), "{w} in {k:?}");
            }
        }
        let long = "x".repeat(300) + "y";
        let lit = Literal::new(&long);
        let hay = "x".repeat(700) + "y";
        assert_eq!(
            lit.find_in(hay.as_bytes()),
            Some(400),
            "shifts past 255 are capped"
        );
    }

    proptest::proptest! {
        #[test]
        fn shifted_search_agrees_with_plain_search(
            word in "[a-dA-D._]{0,6}",
            key in "[a-dA-D._]{0,24}",
        ) {
            let lower = word.to_ascii_lowercase();
            let lit = Literal::new(&lower);
            proptest::prop_assert_eq!(
                lit.find_in(key.as_bytes()),
                find_ci(key.as_bytes(), lower.as_bytes())
            );
        }
    }

    #[test]
    fn case_insensitive_search() {
        assert_eq!(find_ci(b"db.PassWord.x", b"password"), Some(3));
        assert_eq!(find_ci(b"passwor", b"password"), None);
        assert_eq!(find_ci(b"xpASSWORD", b"password"), Some(1));
        assert_eq!(find_ci(b"abc", b""), Some(0));
        assert_eq!(find_ci(b"", b"a"), None);
        assert_eq!(find_ci(b"aab", b"ab"), Some(1));
    }

    #[test]
    fn globs() {
        let g = Glob::new("*password*");
        assert!(
            g.matches("password") && g.matches("DB_PASSWORD") && g.matches("user.password.hash")
        );
        assert!(!g.matches("passw0rd"));
        let exact = Glob::new("Authorization");
        assert!(exact.matches("authorization") && !exact.matches("authorization2"));
        let prefix = Glob::new("x-api-*");
        assert!(prefix.matches("X-API-Key") && !prefix.matches("my-x-api-key"));
        let suffix = Glob::new("*_token");
        assert!(suffix.matches("refresh_token") && !suffix.matches("token_refresh"));
        let mid = Glob::new("a*b*c");
        assert!(mid.matches("abc") && mid.matches("aXbYc") && !mid.matches("aXbYcZ"));
    }

    #[test]
    fn mask_keeps_ends_only_of_long_secrets() {
        let m = Mask {
            replacement: "****".into(),
            keep_prefix: 0,
            keep_suffix: 4,
        };
        let mut out = String::new();
        m.apply("4111111111111111", &mut out);
        assert_eq!(out, "****1111");
        out.clear();
        m.apply("abc", &mut out);
        assert_eq!(out, "****", "too short to keep anything");
    }

    #[test]
    fn hashes_are_keyed_stable_and_recognised() {
        let cfg = |algorithm| HashConfig {
            key_env: "K".into(),
            algorithm,
            length: 16,
        };
        for alg in [HashAlgorithm::HmacSha256, HashAlgorithm::Blake3] {
            let a = Hasher::new(&cfg(alg), |_| Some("k1".into())).unwrap();
            let b = Hasher::new(&cfg(alg), |_| Some("k2".into())).unwrap();
            let h = |h: &Hasher, s| {
                let mut o = String::new();
                h.apply(s, &mut o);
                o
            };
            assert_eq!(h(&a, "alice@example.com"), h(&a, "alice@example.com"));
            assert_ne!(h(&a, "alice@example.com"), h(&b, "alice@example.com"));
            let out = h(&a, "alice@example.com");
            assert_eq!(out.len(), HASH_PREFIX.len() + 16);
            assert!(a.is_output(&out, 5, out.len()));
            assert!(a.is_output(&format!("x {out} y"), 7, 7 + 16));
        }
        let err = Hasher::new(&cfg(HashAlgorithm::Blake3), |_| None).unwrap_err();
        assert!(err.contains("K"), "{err}");
        let known = Hasher::new(&cfg(HashAlgorithm::HmacSha256), |_| Some("key".into())).unwrap();
        let mut o = String::new();
        known.apply("The quick brown fox jumps over the lazy dog", &mut o);
        assert_eq!(
            o, "hash:f7bc83f430538424",
            "RFC-style HMAC-SHA256 test vector"
        );
    }
}
