//! One record on disk: a fixed header, then the caller's metadata and payload.
//!
//! ```text
//! 0   u32  body length (metadata + payload)
//! 4   u32  CRC-32 of bytes 8.. to the end of the body
//! 8   u64  sequence number
//! 16  u64  write time, milliseconds since the Unix epoch
//! 24  u32  items (spans, log records, data points) in the payload
//! 28  u16  flags, the caller's (how the payload is encoded)
//! 30  u16  metadata length
//! 32       metadata, then payload
//! ```
//!
//! All little-endian. The checksum covers everything after itself, so a torn or flipped header is
//! caught as surely as a torn body.

/// Size of the fixed header.
pub const HEADER: usize = 32;

/// Bodies larger than this are corruption, not data: refuse before allocating.
pub const MAX_BODY: u32 = 512 << 20;

/// A record as written, borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub ts_ms: u64,
    pub items: u32,
    pub flags: u16,
    pub meta: &'a [u8],
    pub payload: &'a [u8],
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub ts_ms: u64,
    pub items: u32,
    pub flags: u16,
    pub meta: Vec<u8>,
    pub payload: Vec<u8>,
}

/// The parsed fixed header, before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub body_len: u32,
    pub crc: u32,
    pub seq: u64,
    pub ts_ms: u64,
    pub items: u32,
    pub flags: u16,
    pub meta_len: u16,
}

impl Header {
    /// Bytes the record takes on disk.
    pub fn total_len(&self) -> u64 {
        HEADER as u64 + u64::from(self.body_len)
    }

    /// Parses a header; `None` when its lengths cannot be right (the body checksum catches the rest).
    pub fn parse(b: &[u8; HEADER]) -> Option<Header> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let h = Header {
            body_len: u32_at(0),
            crc: u32_at(4),
            seq: u64_at(8),
            ts_ms: u64_at(16),
            items: u32_at(24),
            flags: u16::from_le_bytes([b[28], b[29]]),
            meta_len: u16::from_le_bytes([b[30], b[31]]),
        };
        (h.body_len <= MAX_BODY && u32::from(h.meta_len) <= h.body_len).then_some(h)
    }

    /// Whether `body` is what this header was written with.
    pub fn verify(&self, header: &[u8; HEADER], body: &[u8]) -> bool {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header[8..]);
        crc.update(body);
        crc.finalize() == self.crc
    }

    pub fn into_record(self, mut body: Vec<u8>) -> Record {
        let payload = body.split_off(usize::from(self.meta_len));
        Record {
            seq: self.seq,
            ts_ms: self.ts_ms,
            items: self.items,
            flags: self.flags,
            meta: body,
            payload,
        }
    }
}

/// Appends the encoded record to `out`; returns its length on disk.
///
/// # Panics
/// If the metadata is longer than `u16::MAX` or the body than [`MAX_BODY`]: callers bound both.
pub fn encode(out: &mut Vec<u8>, r: &RecordRef<'_>) -> usize {
    let meta_len = u16::try_from(r.meta.len()).expect("record metadata over 64 KiB");
    let body_len = u32::try_from(r.meta.len() + r.payload.len())
        .ok()
        .filter(|l| *l <= MAX_BODY)
        .expect("record body over the maximum");
    let start = out.len();
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.extend_from_slice(&r.ts_ms.to_le_bytes());
    out.extend_from_slice(&r.items.to_le_bytes());
    out.extend_from_slice(&r.flags.to_le_bytes());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(r.meta);
    out.extend_from_slice(r.payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_any_flipped_byte() {
        let mut buf = Vec::new();
        let r = RecordRef {
            seq: 42,
            ts_ms: 1_700_000_000_123,
            items: 500,
            flags: 3,
            meta: b"tenant-a",
            payload: b"payload bytes",
        };
        let n = encode(&mut buf, &r);
        assert_eq!(n, HEADER + 8 + 13);
        let head: [u8; HEADER] = buf[..HEADER].try_into().unwrap();
        let h = Header::parse(&head).unwrap();
        assert!(h.verify(&head, &buf[HEADER..]));
        let rec = h.into_record(buf[HEADER..].to_vec());
        assert_eq!(
            (
                rec.seq,
                rec.items,
                rec.flags,
                &rec.meta[..],
                &rec.payload[..]
            ),
            (42, 500, 3, &b"tenant-a"[..], &b"payload bytes"[..])
        );
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            let head: [u8; HEADER] = bad[..HEADER].try_into().unwrap();
            let ok = Header::parse(&head).is_some_and(|h| {
                h.total_len() == buf.len() as u64 && h.verify(&head, &bad[HEADER..])
            });
            assert!(!ok, "flip at byte {i} went unnoticed");
        }
    }
}
