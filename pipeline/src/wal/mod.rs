//! The write-ahead log behind durable mode: an append-only directory of segment files holding
//! checksummed records, a checkpoint file naming the first record not yet fully delivered, and the
//! recovery that runs on start. It is plain synchronous file code, owned by one writer thread; records
//! are opaque bytes here (the collector decides what a payload is).
//!
//! # Layout
//! - [`record`]: the on-disk record: header, checksum, encode/parse.
//! - [`segment`]: segment files: naming, the appending writer, positional reads, full scans.
//! - [`payload`]: a batch as a record's payload (OTLP protobuf, zstd) and back.
//! - [`cursor`]: reading records in sequence order across segments.
//! - [`progress`]: folding out-of-order completions into the checkpoint.
//!
//! # Guarantees
//! A record is committed once [`Wal::commit`] returns (after `fdatasync` when syncing is on). On open,
//! every committed record at or after the checkpoint is found again; bytes after the last valid record
//! of the newest segment (a torn write) are cut off and counted, never replayed as garbage.

pub mod cursor;
pub mod payload;
pub mod progress;
pub mod record;
pub mod segment;

use record::RecordRef;
use segment::SegmentWriter;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use cursor::{Cursor, Next};
pub use progress::{Progress, Watermark};
pub use record::Record;

const CHECKPOINT: &str = "checkpoint";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// `fdatasync` on commit, and `fsync` the directory when files appear.
    pub sync: bool,
}

/// What opening the log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Replay starts here: every record below it was delivered before the last stop.
    pub checkpoint: u64,
    /// The first sequence number this run will write.
    pub next_seq: u64,
    /// Records and items at or after the checkpoint, to be replayed.
    pub records: u64,
    pub items: u64,
    /// Bytes that were not whole, valid records (torn writes, corruption), cut off or skipped.
    pub invalid_bytes: u64,
    /// Whether the checkpoint file was missing or unreadable (replay then starts at the oldest record).
    pub checkpoint_lost: bool,
}

/// A segment no longer written to.
#[derive(Debug)]
struct Closed {
    first_seq: u64,
    /// Sequence number of its last record; `first_seq - 1` when it holds none.
    last_seq: Option<u64>,
    path: PathBuf,
    len: u64,
}

/// Records a full disk made the log give up ([`Wal::drop_oldest`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// The first sequence number still on disk.
    pub until: u64,
    /// Records and items not yet handed out, now lost.
    pub records: u64,
    pub items: u64,
    pub bytes: u64,
}

pub struct Wal {
    dir: PathBuf,
    opts: Options,
    closed: VecDeque<Closed>,
    active: SegmentWriter,
    next_seq: u64,
    /// Records staged since the last commit, encoded.
    staged: Vec<u8>,
    staged_first: u64,
    checkpoint: u64,
}

impl Wal {
    /// Opens (or creates) the log in `dir` and recovers it. Writing continues in a fresh segment.
    pub fn open(dir: &Path, opts: Options) -> io::Result<(Wal, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let stored = read_checkpoint(dir);
        let segments = segment::list(dir)?;
        let mut rec = Recovered::default();
        let checkpoint = stored.unwrap_or(0);
        let mut closed = VecDeque::new();
        let mut last_seq: Option<u64> = None;
        let mut oldest: Option<u64> = None;
        let count = segments.len();
        for (i, (first, path)) in segments.into_iter().enumerate() {
            let scan = segment::scan(&path, checkpoint)?;
            rec.checkpoint_lost |= stored.is_none() && scan.first_seq.is_some();
            rec.invalid_bytes += scan.invalid_bytes();
            if i + 1 == count && scan.invalid_bytes() > 0 {
                // The newest segment's tail is where a crash tore a write: cut it, so nothing invalid
                // sits in front of what a later run may append.
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(scan.valid_len.max(segment::FILE_HEADER.min(scan.file_len)))?;
            }
            if scan.last_seq.is_none_or(|l| l < checkpoint) {
                std::fs::remove_file(&path)?;
                last_seq = last_seq.max(scan.last_seq);
                continue;
            }
            if let Some(f) = scan.first_seq {
                oldest = Some(oldest.map_or(f, |o: u64| o.min(f)));
            }
            rec.records += scan.records;
            rec.items += scan.items;
            last_seq = last_seq.max(scan.last_seq);
            closed.push_back(Closed {
                first_seq: first,
                last_seq: scan.last_seq,
                path,
                len: scan.valid_len,
            });
        }
        rec.checkpoint = match stored {
            Some(c) => c,
            None => oldest.unwrap_or(0),
        };
        rec.next_seq = last_seq.map_or(0, |l| l + 1).max(rec.checkpoint);
        if stored.is_none() {
            write_checkpoint(dir, rec.checkpoint, opts.sync)?;
        }
        let active = SegmentWriter::create(dir, rec.next_seq)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            opts,
            closed,
            active,
            next_seq: rec.next_seq,
            staged: Vec::new(),
            staged_first: rec.next_seq,
            checkpoint: rec.checkpoint,
        };
        wal.sync_dir()?;
        Ok((wal, rec))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number the next staged record gets; everything below it is committed once no
    /// records are staged.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Adds a record to the next commit; returns its sequence number.
    pub fn stage(
        &mut self,
        ts_ms: u64,
        items: u32,
        flags: u16,
        meta: &[u8],
        payload: &[u8],
    ) -> u64 {
        let seq = self.next_seq;
        if self.staged.is_empty() {
            self.staged_first = seq;
        }
        record::encode(
            &mut self.staged,
            &RecordRef {
                seq,
                ts_ms,
                items,
                flags,
                meta,
                payload,
            },
        );
        self.next_seq += 1;
        seq
    }

    pub fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Bytes a record of this size adds on disk.
    pub fn record_len(meta: usize, payload: usize) -> u64 {
        (record::HEADER + meta + payload) as u64
    }

    /// Writes what was staged and, when syncing, waits for the disk. On error nothing staged counts as
    /// committed, and writing moves to a fresh segment: after a failed `fsync` the old file's pages
    /// cannot be trusted.
    pub fn commit(&mut self) -> io::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let before = self.active.len();
        let result = self.active.append(&self.staged).and_then(|()| {
            if self.opts.sync {
                // After a failed sync the written bytes are of unknown fate: cut them, so a record
                // whose client was told to retry is not also delivered from here.
                self.active.sync().inspect_err(|_| self.active.cut(before))
            } else {
                Ok(())
            }
        });
        self.staged.clear();
        if result.is_err() {
            let _ = self.roll();
        }
        result
    }

    /// Starts a new segment once the active one is full. Separate from [`commit`](Self::commit): a
    /// failure here leaves what was committed committed, and writing goes on in the old segment
    /// until a later call succeeds.
    pub fn maybe_roll(&mut self) -> io::Result<()> {
        if self.active.len() >= self.opts.segment_bytes {
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        if self.next_seq == self.active.first_seq {
            // No sequence number was used since it was created: the fresh segment would be this file.
            return Ok(());
        }
        let fresh = SegmentWriter::create(&self.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.active, fresh);
        let last = (self.next_seq > old.first_seq).then(|| self.next_seq - 1);
        if old.is_empty() {
            let _ = std::fs::remove_file(&old.path);
        } else {
            self.closed.push_back(Closed {
                first_seq: old.first_seq,
                last_seq: last,
                path: old.path.clone(),
                len: old.len(),
            });
        }
        self.sync_dir()
    }

    /// Bytes the log holds on disk.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|c| c.len).sum::<u64>() + self.active.len()
    }

    pub fn segments(&self) -> usize {
        self.closed.len() + 1
    }

    /// Records that everything below `w` is delivered: stores the checkpoint (when it moved) and
    /// deletes the segments it covers. Returns the bytes freed.
    pub fn release(&mut self, w: u64) -> io::Result<u64> {
        if w <= self.checkpoint {
            return Ok(0);
        }
        write_checkpoint(&self.dir, w, self.opts.sync)?;
        self.checkpoint = w;
        let mut freed = 0;
        while let Some(c) = self
            .closed
            .front()
            .filter(|c| c.last_seq.is_none_or(|l| l < w))
        {
            // Untracked only once it is gone, so the disk accounting never under-reports.
            remove(&c.path)?;
            freed += c.len;
            self.closed.pop_front();
        }
        Ok(freed)
    }

    /// Deletes the oldest closed segment to make room. `skip_to` is told the first sequence number that
    /// stays and answers where the reader was: records from there on in the segment are lost and
    /// reported. `None` when only the active segment is left.
    pub fn drop_oldest(&mut self, skip_to: impl FnOnce(u64) -> u64) -> io::Result<Option<Dropped>> {
        let Some(c) = self.closed.front() else {
            return Ok(None);
        };
        // Read and delete first: on error nothing changed. A reader that still gets at the records
        // before the skip below hands them out, and then they are not counted as dropped.
        let records = segment::headers(&c.path)?;
        remove(&c.path)?;
        let c = self.closed.pop_front().expect("checked");
        let until = self
            .closed
            .front()
            .map_or(self.active.first_seq, |n| n.first_seq);
        let reader_was = skip_to(until);
        let lost = records.iter().filter(|(seq, _)| *seq >= reader_was);
        Ok(Some(Dropped {
            until,
            records: lost.clone().count() as u64,
            items: lost.map(|(_, items)| u64::from(*items)).sum(),
            bytes: c.len,
        }))
    }

    fn sync_dir(&self) -> io::Result<()> {
        if self.opts.sync {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn read_checkpoint(dir: &Path) -> Option<u64> {
    let bytes = std::fs::read(dir.join(CHECKPOINT)).ok()?;
    let (value, crc) = bytes.split_at_checked(8)?;
    let value: [u8; 8] = value.try_into().ok()?;
    let crc: [u8; 4] = crc.try_into().ok()?;
    (crc32fast::hash(&value) == u32::from_le_bytes(crc)).then(|| u64::from_le_bytes(value))
}

/// Replaces the checkpoint atomically: a crash leaves the old one or the new one, never half of each.
fn write_checkpoint(dir: &Path, w: u64, sync: bool) -> io::Result<()> {
    let mut bytes = w.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&w.to_le_bytes()).to_le_bytes());
    let tmp = dir.join("checkpoint.tmp");
    {
        use std::io::Write;
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        if sync {
            f.sync_data()?;
        }
    }
    std::fs::rename(&tmp, dir.join(CHECKPOINT))
}

#[cfg(test)]
mod tests;
