//! The checkpoint file: the first record not yet delivered, and the records above it that were
//! delivered out of order. Completions arrive out of order (the tail sampler holds spans, exporters
//! retry), so without the second part a restart would replay everything delivered after the oldest
//! record still out. Replaced atomically (tmp + rename) and checked by CRC; a file written before the
//! ranges existed (the number and its CRC) still reads.

use std::fs::File;
use std::io;
use std::path::Path;

const NAME: &str = "checkpoint";
const TMP: &str = "checkpoint.tmp";

/// Ranges kept at most: a file of 64 KiB. Beyond them the highest ranges are left out, and their
/// records are replayed (duplicates, never loss).
pub const MAX_RANGES: usize = 4096;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every record below it was delivered.
    pub w: u64,
    /// Records at or above `w` delivered too: sorted, disjoint, non-empty half-open ranges.
    pub done: Vec<(u64, u64)>,
}

impl Checkpoint {
    pub fn at(w: u64) -> Self {
        Checkpoint {
            w,
            done: Vec::new(),
        }
    }

    /// Builds the ranges from delivered sequence numbers in ascending order; those below `w` are
    /// ignored.
    pub fn new(w: u64, delivered: impl IntoIterator<Item = u64>) -> Self {
        let mut done: Vec<(u64, u64)> = Vec::new();
        for seq in delivered.into_iter().filter(|s| *s >= w) {
            let full = done.len() == MAX_RANGES;
            match done.last_mut() {
                Some((_, end)) if *end == seq => *end += 1,
                Some((_, end)) if *end > seq => {}
                _ if full => break,
                _ => done.push((seq, seq + 1)),
            }
        }
        Checkpoint { w, done }
    }

    pub fn delivered(&self, seq: u64) -> bool {
        seq < self.w
            || self
                .done
                .binary_search_by(|&(start, end)| {
                    if end <= seq {
                        std::cmp::Ordering::Less
                    } else if start > seq {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok()
    }

    /// Whether every record from `first` to `last` (inclusive) was delivered.
    pub fn covers(&self, first: u64, last: u64) -> bool {
        let from = first.max(self.w);
        from > last
            || self
                .done
                .iter()
                .any(|&(start, end)| start <= from && last < end)
    }

    /// Records above `w` that were delivered.
    pub fn done_records(&self) -> u64 {
        self.done.iter().map(|(s, e)| e - s).sum()
    }

    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + 16 * self.done.len());
        b.extend_from_slice(&self.w.to_le_bytes());
        if !self.done.is_empty() {
            b.extend_from_slice(&(self.done.len() as u32).to_le_bytes());
            for (start, end) in &self.done {
                b.extend_from_slice(&start.to_le_bytes());
                b.extend_from_slice(&end.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let u64_at =
            |b: &[u8], i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
        let w = u64_at(body, 0)?;
        if body.len() == 8 {
            return Some(Checkpoint::at(w));
        }
        let n = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?) as usize;
        if n > MAX_RANGES || body.len() != 12 + 16 * n {
            return None;
        }
        let mut done = Vec::with_capacity(n);
        let mut floor = w;
        for i in 0..n {
            let (start, end) = (u64_at(body, 12 + 16 * i)?, u64_at(body, 20 + 16 * i)?);
            if start < floor || end <= start {
                return None;
            }
            done.push((start, end));
            floor = end;
        }
        Some(Checkpoint { w, done })
    }
}

/// A checkpoint's ranges for a reader that passes over them in ascending order.
pub struct Passing(std::collections::VecDeque<(u64, u64)>);

impl Passing {
    pub fn new(c: Checkpoint) -> Self {
        Passing(c.done.into())
    }

    /// Whether record `seq`, above the checkpoint's `w`, was delivered; `seq` never goes down between
    /// calls.
    pub fn delivered(&mut self, seq: u64) -> bool {
        while self.0.front().is_some_and(|&(_, end)| end <= seq) {
            self.0.pop_front();
        }
        self.0.front().is_some_and(|&(start, _)| start <= seq)
    }
}

/// The stored checkpoint; `None` when it is missing or damaged.
pub fn read(dir: &Path) -> Option<Checkpoint> {
    Checkpoint::decode(&std::fs::read(dir.join(NAME)).ok()?)
}

/// Replaces the checkpoint atomically: a crash leaves the old one or the new one, never half of each.
pub fn write(dir: &Path, c: &Checkpoint, sync: bool) -> io::Result<()> {
    let tmp = dir.join(TMP);
    {
        use std::io::Write;
        let mut f = File::create(&tmp)?;
        f.write_all(&c.encode())?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, dir.join(NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_and_answer_membership() {
        let c = Checkpoint::new(10, [3, 10, 12, 13, 14, 20, 20, 21]);
        assert_eq!(c.done, vec![(10, 11), (12, 15), (20, 22)]);
        assert_eq!(c.done_records(), 6);
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c.clone()));
        let delivered: Vec<u64> = (0..25).filter(|s| c.delivered(*s)).collect();
        let mut expected: Vec<u64> = (0..11).collect();
        expected.extend([12, 13, 14, 20, 21]);
        assert_eq!(delivered, expected);
    }

    #[test]
    fn covers_a_span_only_when_every_record_in_it_was_delivered() {
        let c = Checkpoint::new(10, [12, 13, 14, 15, 20]);
        assert!(c.covers(0, 9));
        assert!(c.covers(12, 15));
        assert!(c.covers(13, 14));
        assert!(c.covers(20, 20));
        assert!(!c.covers(9, 12), "10 and 11 are out");
        assert!(!c.covers(12, 16));
        assert!(!c.covers(15, 20), "16 to 19 are out");
    }

    #[test]
    fn the_number_alone_reads_as_written_by_earlier_versions() {
        let mut old = 77u64.to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(&77u64.to_le_bytes()).to_le_bytes());
        assert_eq!(Checkpoint::decode(&old), Some(Checkpoint::at(77)));
        assert_eq!(Checkpoint::at(77).encode(), old);
    }

    #[test]
    fn damage_and_impossible_ranges_are_refused() {
        let good = Checkpoint::new(5, [6, 9]).encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert_eq!(Checkpoint::decode(&bad), None, "byte {i}");
        }
        for cut in 0..good.len() {
            assert_eq!(Checkpoint::decode(&good[..cut]), None, "cut at {cut}");
        }
        let below_w = Checkpoint {
            w: 5,
            done: vec![(4, 6)],
        };
        assert_eq!(Checkpoint::decode(&below_w.encode()), None);
    }

    #[test]
    fn too_many_ranges_keep_the_lowest() {
        let c = Checkpoint::new(0, (0..3 * MAX_RANGES as u64).map(|s| s * 2));
        assert_eq!(c.done.len(), MAX_RANGES);
        assert_eq!(
            c.done.last(),
            Some(&(2 * (MAX_RANGES as u64 - 1), 2 * MAX_RANGES as u64 - 1))
        );
        assert_eq!(Checkpoint::decode(&c.encode()), Some(c));
    }
}
