//! The vocabulary of validation: what a refusal is (key path and message, turned into a
//! [`crate::ConfigError`] by `load`), and the checks many sections share.

use std::net::SocketAddr;

/// A refusal: the key path and what is wrong with it.
pub(crate) type Invalid = (String, String);

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    (path.into(), message.into())
}

/// A `[min, max]` range: at least one bound, and `min <= max`.
pub(crate) fn ordered<T: PartialOrd + Copy>(
    path: &str,
    min: Option<T>,
    max: Option<T>,
) -> Result<(), Invalid> {
    match (min, max) {
        (None, None) => Err(invalid(path, "set min, max or both")),
        (Some(lo), Some(hi)) if lo > hi => Err(invalid(path, "min must not exceed max")),
        _ => Ok(()),
    }
}

/// `p` in `[0, 1]`.
pub(crate) fn probability(path: &str, p: f64) -> Result<(), Invalid> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!("{p} is not a probability between 0 and 1"),
        ))
    }
}

pub(crate) fn positive(path: &str, v: u64) -> Result<(), Invalid> {
    if v == 0 {
        Err(invalid(path, "must be greater than 0"))
    } else {
        Ok(())
    }
}

/// An address to bind: `ip:port`, no host names (binding must not wait for DNS).
pub(crate) fn socket_addr(path: &str, v: &str) -> Result<(), Invalid> {
    v.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        invalid(
            path,
            format!("`{v}` is not an address:port such as 127.0.0.1:4317 or [::1]:4317"),
        )
    })
}

/// A SHA-256 digest as `sha256sum` prints it.
pub(crate) fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}
