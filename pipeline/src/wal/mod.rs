//! The write-ahead log behind durable mode: an append-only directory of segment files holding
//! checksummed records, a checkpoint file naming what was delivered (everything below one record, and
//! ranges above it), and the recovery that runs on start, with the one thread that owns a log and the
//! one reader that follows it. Plain threads and synchronous file code; records are opaque bytes here
//! (the collector decides what a payload is). The collector's intake log (`durable`) and exporters'
//! spill logs (`spill`) are both built from these parts.
//!
//! # Layout
//! - [`record`]: the on-disk record: header, checksum, encode/parse.
//! - [`segment`]: segment files: naming, the appending writer, positional reads, full scans.
//! - [`payload`]: a batch as a record's payload (OTLP protobuf, zstd) and back.
//! - [`cursor`]: reading records in sequence order across segments.
//! - [`progress`]: folding out-of-order completions into the checkpoint.
//! - [`checkpoint`]: the checkpoint file.
//! - [`owner`]: the thread that owns a log: group commit, checkpoints, disk budget, with [`Hooks`] for
//!   what its user does differently.
//! - [`follower`]: the sequential reader that hands records out, from memory or disk, up to what is
//!   committed.
//! - [`state`]: what the owner, the follower and users share, and the follower's wake-up.
//! - [`handle`]: the owner's inbox ([`Msg`]) and the one stop protocol ([`Lifecycle`]).
//!
//! # Guarantees
//! A record is committed once [`Wal::commit`] returns (after `fdatasync` when syncing is on). On open,
//! every committed record the checkpoint does not name as delivered is found again; bytes after the last valid record
//! of the newest segment (a torn write) are cut off and counted, never replayed as garbage.

pub mod checkpoint;
pub mod cursor;
pub mod follower;
pub mod handle;
pub mod owner;
pub mod payload;
pub mod progress;
pub mod record;
pub mod segment;
pub mod state;

use record::RecordRef;
use segment::SegmentWriter;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use checkpoint::{Checkpoint, Passing};
pub use cursor::{Cursor, Next};
pub use follower::{Follower, Handed, Step};
pub use handle::{Inbox, Lifecycle, LogHandle, Msg};
pub use owner::{Cadence, Hooks, Owner, Parts, Refusal, Staged};
pub use progress::{Progress, Watermark};
pub use record::Record;
pub use state::{now_ms, Gauges, LogState};

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
    /// Replay starts at its `w`: every record below it, and those in its ranges, were delivered before
    /// the last stop.
    pub checkpoint: Checkpoint,
    /// The first sequence number this run will write.
    pub next_seq: u64,
    /// Records and items at or after the checkpoint and not delivered, to be replayed.
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
    /// As last stored.
    checkpoint: Checkpoint,
}

impl Wal {
    /// Opens (or creates) the log in `dir` and recovers it. Writing continues in a fresh segment.
    pub fn open(dir: &Path, opts: Options) -> io::Result<(Wal, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let stored = checkpoint::read(dir);
        let segments = segment::list(dir)?;
        let mut rec = Recovered::default();
        let checkpoint = stored.clone().unwrap_or_default();
        let mut closed = VecDeque::new();
        let mut last_seq: Option<u64> = None;
        let mut oldest: Option<u64> = None;
        let count = segments.len();
        for (i, (first, path)) in segments.into_iter().enumerate() {
            let scan = segment::scan(&path, &checkpoint)?;
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
            if scan.last_seq.is_none_or(|l| l < checkpoint.w) {
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
        let lost = stored.is_none();
        rec.checkpoint = stored.unwrap_or_else(|| Checkpoint::at(oldest.unwrap_or(0)));
        rec.next_seq = last_seq.map_or(0, |l| l + 1).max(rec.checkpoint.w);
        if lost {
            checkpoint::write(dir, &rec.checkpoint, opts.sync)?;
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
            checkpoint: rec.checkpoint.clone(),
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

    /// Whether a record with this metadata and payload can be written at all.
    pub fn fits(meta_len: usize, payload_len: usize) -> bool {
        meta_len <= usize::from(u16::MAX)
            && meta_len
                .checked_add(payload_len)
                .is_some_and(|l| l <= record::MAX_BODY as usize)
    }

    /// Adds a record to the next commit; returns its sequence number.
    ///
    /// # Panics
    /// If the record does not [`fit`](Self::fits): callers check.
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

    /// Records what is delivered: stores the checkpoint (when it changed) and deletes the segments
    /// below its `w`. Returns the bytes freed.
    pub fn release(&mut self, c: Checkpoint) -> io::Result<u64> {
        self.release_with(c, self.opts.sync)
    }

    /// [`release`](Self::release), syncing the checkpoint file only if `sync`. An unsynced checkpoint
    /// survives a crash of the process (it is in the page cache); after a power loss the older one
    /// (or none) is read, which replays more, never less.
    pub fn release_with(&mut self, c: Checkpoint, sync: bool) -> io::Result<u64> {
        if c.w < self.checkpoint.w || c == self.checkpoint {
            return Ok(0);
        }
        checkpoint::write(&self.dir, &c, sync && self.opts.sync)?;
        self.checkpoint = c;
        self.delete_covered()
    }

    /// When every record written was delivered, starts a fresh segment so the old one can go: a log
    /// that is normally empty (a spill log) then holds nothing on disk once it drained. Returns the
    /// bytes freed.
    pub fn truncate_if_drained(&mut self) -> io::Result<u64> {
        if self.checkpoint.w < self.next_seq || !self.staged.is_empty() || self.active.is_empty() {
            return Ok(0);
        }
        self.roll()?;
        self.delete_covered()
    }

    /// Deletes every closed segment whose records the checkpoint names as delivered — not only those
    /// below `w`: a few records held for long (by a stuck exporter's queue, say) must not keep every
    /// later segment on disk once those are delivered.
    fn delete_covered(&mut self) -> io::Result<u64> {
        let mut freed = 0;
        let mut i = 0;
        while let Some(c) = self.closed.get(i) {
            if c.last_seq
                .is_some_and(|l| !self.checkpoint.covers(c.first_seq, l))
            {
                i += 1;
                continue;
            }
            // Untracked only once it is gone, so the disk accounting never under-reports.
            remove(&c.path)?;
            freed += c.len;
            self.closed.remove(i);
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
        // Not lost: what the reader had passed, and what the last run delivered out of order.
        let lost = records
            .iter()
            .filter(|(seq, _)| *seq >= reader_was && !self.checkpoint.delivered(*seq));
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

#[cfg(test)]
mod tests;
