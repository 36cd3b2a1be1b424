//! Parsers for the trace-context formats found on log records: W3C `traceparent`, hex `trace_id` /
//! `span_id` / `trace_flags` attributes, B3 single and multi, Jaeger `uber-trace-id`, and AWS
//! `X-Amzn-Trace-Id`. Every parser either returns a valid context (16-byte trace id, 8-byte span id,
//! neither all zero) or says why not; none allocates on success.

/// A valid trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0 = sampled) when the source says.
    pub flags: Option<u8>,
}

/// Why a source could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    Format,
    Version,
    Hex,
    Length,
    ZeroId,
}

/// A digit's value by byte (lowercase only, then either case), or `NOT_HEX`: one lookup per digit and
/// one check per id, where matching each byte's range cost a branch per digit on every record that
/// carries a `traceparent`.
static DIGITS: [[u8; 256]; 2] = [digit_table(false), digit_table(true)];
/// Never a digit's value, and a bit no digit has, so OR-ing the digits of an id catches any of them.
const NOT_HEX: u8 = 0x10;

const fn digit_table(upper: bool) -> [u8; 256] {
    let mut t = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        if upper {
            t[b'A' as usize + i] = 10 + i as u8;
        }
        i += 1;
    }
    t
}

/// Decodes `s` (up to `N * 2` hex digits) right-aligned into `N` bytes: a 64-bit B3 or Jaeger id is
/// left-padded with zeros to 128 bits.
fn hex_id<const N: usize>(s: &str, allow_upper: bool, exact: bool) -> Result<[u8; N], Invalid> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > N * 2 || (exact && b.len() != N * 2) {
        return Err(Invalid::Length);
    }
    let digits = &DIGITS[usize::from(allow_upper)];
    let mut out = [0u8; N];
    let mut seen = 0u8;
    // An odd count of digits starts with a lone low half-byte.
    let (lone, pairs) = b.split_at(b.len() % 2);
    let first = N - pairs.len() / 2;
    if let [c] = lone {
        out[first - 1] = digits[usize::from(*c)];
        seen |= out[first - 1];
    }
    for (byte, pair) in out[first..].iter_mut().zip(pairs.chunks_exact(2)) {
        let (high, low) = (digits[usize::from(pair[0])], digits[usize::from(pair[1])]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    if seen & NOT_HEX != 0 {
        return Err(Invalid::Hex);
    }
    Ok(out)
}

fn nonzero<const N: usize>(id: [u8; N]) -> Result<[u8; N], Invalid> {
    if id.iter().all(|b| *b == 0) {
        Err(Invalid::ZeroId)
    } else {
        Ok(id)
    }
}

/// W3C `traceparent`: `00-<32 lowercase hex>-<16 lowercase hex>-<2 hex>`, exactly 55 characters for
/// version `00`; a higher version is read by its first four fields; `ff` is invalid.
pub fn traceparent(s: &str) -> Result<Context, Invalid> {
    let s = s.trim();
    let mut parts = s.split('-');
    let (Some(version), Some(trace), Some(span), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Format);
    };
    if version.len() != 2 || flags.len() != 2 {
        return Err(Invalid::Format);
    }
    let v = hex_id::<1>(version, false, true).map_err(|_| Invalid::Version)?[0];
    if v == 0xff || (v == 0 && s.len() != 55) {
        return Err(Invalid::Version);
    }
    Ok(Context {
        trace_id: nonzero(hex_id(trace, false, true)?)?,
        span_id: nonzero(hex_id(span, false, true)?)?,
        flags: Some(hex_id::<1>(flags, false, true)?[0]),
    })
}

/// Separate hex attributes in any case; a 64-bit trace id is left-padded.
pub fn hex_ids(trace_id: &str, span_id: &str, flags: Option<&str>) -> Result<Context, Invalid> {
    Ok(Context {
        trace_id: nonzero(
            hex_id(trace_id.trim(), true, false).and_then(|t: [u8; 16]| {
                if trace_id.trim().len() == 16 || trace_id.trim().len() == 32 {
                    Ok(t)
                } else {
                    Err(Invalid::Length)
                }
            })?,
        )?,
        span_id: nonzero(hex_id(span_id.trim(), true, true)?)?,
        flags: flags.and_then(|f| hex_id::<1>(f.trim(), true, false).ok().map(|b| b[0])),
    })
}

/// B3 single: `{trace}-{span}[-{sampling}[-{parent}]]`, sampling `0`, `1` or `d` (debug = sampled).
pub fn b3_single(s: &str) -> Result<Context, Invalid> {
    let mut parts = s.trim().split('-');
    let (Some(trace), Some(span)) = (parts.next(), parts.next()) else {
        return Err(Invalid::Format);
    };
    let flags = match parts.next() {
        None => None,
        Some("1" | "d") => Some(1),
        Some("0") => Some(0),
        Some(_) => return Err(Invalid::Format),
    };
    hex_ids(trace, span, None).map(|c| Context { flags, ..c })
}

/// B3 multi: `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` (`0`/`1`/`true`/`false`), `X-B3-Flags`
/// (`1` = debug, which implies sampled).
pub fn b3_multi(
    trace: &str,
    span: &str,
    sampled: Option<&str>,
    debug: Option<&str>,
) -> Result<Context, Invalid> {
    let flags = match (debug.map(str::trim), sampled.map(str::trim)) {
        (Some("1"), _) => Some(1),
        (_, Some("1" | "true")) => Some(1),
        (_, Some("0" | "false")) => Some(0),
        _ => None,
    };
    hex_ids(trace, span, None).map(|c| Context { flags, ..c })
}

/// Jaeger `uber-trace-id`: `{trace}:{span}:{parent}:{flags}`, hex of variable length.
pub fn uber(s: &str) -> Result<Context, Invalid> {
    let s = s.trim().replace("%3A", ":").replace("%3a", ":");
    let parts: Vec<&str> = s.split(':').collect();
    let [trace, span, _parent, flags] = parts[..] else {
        return Err(Invalid::Format);
    };
    let flags = u8::from_str_radix(flags, 16).map_err(|_| Invalid::Hex)? & 1;
    Ok(Context {
        trace_id: nonzero(hex_id(trace, true, false)?)?,
        span_id: nonzero(hex_id(span, true, false)?)?,
        flags: Some(flags),
    })
}

/// AWS X-Ray: `Root=1-{8 hex}-{24 hex};Parent={16 hex};Sampled={0|1}` in any order; the trace id is the
/// 8 + 24 hex digits.
pub fn amzn(s: &str) -> Result<Context, Invalid> {
    let (mut root, mut parent, mut sampled) = (None, None, None);
    for field in s.split(';') {
        match field.trim().split_once('=') {
            Some(("Root", v)) => root = Some(v),
            Some(("Parent", v)) => parent = Some(v),
            Some(("Sampled", v)) => sampled = Some(v),
            _ => {}
        }
    }
    let root = root.ok_or(Invalid::Format)?;
    let mut parts = root.split('-');
    let (Some("1"), Some(epoch), Some(unique), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Format);
    };
    if epoch.len() != 8 || unique.len() != 24 {
        return Err(Invalid::Length);
    }
    let mut trace = String::with_capacity(32);
    trace.push_str(epoch);
    trace.push_str(unique);
    Ok(Context {
        trace_id: nonzero(hex_id(&trace, true, true)?)?,
        span_id: nonzero(hex_id(parent.ok_or(Invalid::Format)?, true, true)?)?,
        flags: match sampled {
            Some("1") => Some(1),
            Some("0") => Some(0),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The digit-at-a-time decoder the table replaced, kept as the reference.
    fn hex_id_reference<const N: usize>(
        s: &str,
        allow_upper: bool,
        exact: bool,
    ) -> Result<[u8; N], Invalid> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > N * 2 || (exact && b.len() != N * 2) {
            return Err(Invalid::Length);
        }
        let mut out = [0u8; N];
        let pad = N * 2 - b.len();
        for (i, c) in b.iter().enumerate() {
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' if allow_upper => c - b'A' + 10,
                _ => return Err(Invalid::Hex),
            };
            let pos = pad + i;
            out[pos / 2] |= if pos.is_multiple_of(2) { v << 4 } else { v };
        }
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn hex_ids_decode_as_the_reference_does(
            s in "[0-9a-fA-Fg-x\\-/:@`G ]{0,34}",
            upper: bool,
            exact: bool,
        ) {
            prop_assert_eq!(hex_id::<16>(&s, upper, exact), hex_id_reference::<16>(&s, upper, exact));
            prop_assert_eq!(hex_id::<8>(&s, upper, exact), hex_id_reference::<8>(&s, upper, exact));
            prop_assert_eq!(hex_id::<1>(&s, upper, exact), hex_id_reference::<1>(&s, upper, exact));
        }
    }

    const T: [u8; 16] = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const S: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

    #[test]
    fn traceparent_table() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            traceparent(ok),
            Ok(Context {
                trace_id: T,
                span_id: S,
                flags: Some(1)
            })
        );
        assert_eq!(
            traceparent(&ok.replace("-01", "-00")).unwrap().flags,
            Some(0)
        );
        assert_eq!(
            traceparent(&ok.replacen("00", "ff", 1)),
            Err(Invalid::Version)
        );
        assert_eq!(
            traceparent(&format!("{ok}-x")),
            Err(Invalid::Version),
            "version 00 is exactly 55 chars"
        );
        assert!(
            traceparent(&format!("{}-extra", ok.replacen("00", "01", 1))).is_ok(),
            "higher versions allow more fields"
        );
        assert_eq!(
            traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            Err(Invalid::ZeroId)
        );
        assert_eq!(
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
            Err(Invalid::ZeroId)
        );
        assert_eq!(
            traceparent(&ok.to_uppercase()),
            Err(Invalid::Hex),
            "uppercase is not W3C"
        );
        assert_eq!(
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01"),
            Err(Invalid::Hex)
        );
        assert_eq!(
            traceparent("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"),
            Err(Invalid::Version)
        );
        assert_eq!(traceparent("garbage"), Err(Invalid::Format));
    }

    #[test]
    fn hex_attributes_any_case_and_short_ids_padded() {
        let c = hex_ids(
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00F067AA0BA902B7",
            Some("01"),
        )
        .unwrap();
        assert_eq!((c.trace_id, c.span_id, c.flags), (T, S, Some(1)));
        let short = hex_ids("a3ce929d0e0e4736", "00f067aa0ba902b7", None).unwrap();
        assert_eq!(&short.trace_id[..8], &[0; 8]);
        assert_eq!(&short.trace_id[8..], &T[8..]);
        assert_eq!(
            hex_ids("abc", "00f067aa0ba902b7", None),
            Err(Invalid::Length)
        );
        assert_eq!(
            hex_ids(&"0".repeat(32), "00f067aa0ba902b7", None),
            Err(Invalid::ZeroId)
        );
    }

    #[test]
    fn b3_and_jaeger_and_xray() {
        let c = b3_single("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-00f067aa0ba902b8")
            .unwrap();
        assert_eq!((c.trace_id, c.span_id, c.flags), (T, S, Some(1)));
        assert_eq!(
            b3_single("a3ce929d0e0e4736-00f067aa0ba902b7-0")
                .unwrap()
                .flags,
            Some(0)
        );
        assert_eq!(
            b3_single("1"),
            Err(Invalid::Format),
            "a lone sampling flag carries no ids"
        );
        assert_eq!(
            b3_multi(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                Some("true"),
                None
            )
            .unwrap()
            .flags,
            Some(1)
        );
        assert_eq!(
            b3_multi(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00f067aa0ba902b7",
                Some("0"),
                Some("1")
            )
            .unwrap()
            .flags,
            Some(1)
        );
        let u = uber("4bf92f3577b34da6a3ce929d0e0e4736:f067aa0ba902b7:0:1").unwrap();
        assert_eq!((u.trace_id, u.span_id, u.flags), (T, S, Some(1)));
        assert_eq!(
            uber("4bf92f3577b34da6a3ce929d0e0e4736%3Af067aa0ba902b7%3A0%3A0")
                .unwrap()
                .flags,
            Some(0)
        );
        assert_eq!(uber("a:b:c"), Err(Invalid::Format));
        let x = amzn("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
            .unwrap();
        assert_eq!((x.trace_id, x.span_id, x.flags), (T, S, Some(1)));
        assert_eq!(
            amzn("Sampled=0;Parent=00f067aa0ba902b7;Root=1-4bf92f35-77b34da6a3ce929d0e0e4736")
                .unwrap()
                .flags,
            Some(0)
        );
        assert_eq!(
            amzn("Root=2-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7"),
            Err(Invalid::Format)
        );
        assert_eq!(
            amzn("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736"),
            Err(Invalid::Format),
            "no parent span"
        );
    }
}
