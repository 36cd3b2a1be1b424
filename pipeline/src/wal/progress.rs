//! Which records are done: the checkpoint `W` such that every record below it has been dealt with, and
//! the records above it that are done too. Records are handed out in order by one reader but complete in any order (exporters,
//! retries, the tail sampler holding spans), so the reader logs each record it hands out and tickets
//! log completions; both are lock-free queues, folded into `W` by whoever checkpoints.

use super::Checkpoint;
use crate::ticket::Completion;
use crossbeam_queue::SegQueue;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Progress {
    read: SegQueue<(u64, u64)>,
    done: SegQueue<u64>,
    /// The reader's next sequence number: everything below it was handed out or skipped.
    reader_next: AtomicU64,
    /// Set at the shutdown deadline: what is dropped after it was not delivered, whatever drops it.
    frozen: AtomicBool,
}

/// The folding side, owned by the checkpointing thread.
#[derive(Default)]
pub struct Watermark {
    /// Handed out and not yet complete, in order: (seq, write time).
    outstanding: VecDeque<(u64, u64)>,
    /// Complete, waiting for everything before them.
    done: BTreeSet<u64>,
}

impl Watermark {
    /// Starts from what the last run stored: records it delivered above its `W` stay done, so they
    /// are named in every checkpoint until `W` passes them (the reader skips them, never sends them).
    pub fn resume(c: &Checkpoint) -> Self {
        Watermark {
            outstanding: VecDeque::new(),
            done: c.done.iter().flat_map(|&(s, e)| s..e).collect(),
        }
    }

    /// The checkpoint for `w` as returned by [`Progress::fold`]: `w` and the records done above it.
    pub fn checkpoint(&mut self, w: u64) -> Checkpoint {
        // Left behind when a seeded record was handed out and completed again.
        self.done = self.done.split_off(&w);
        Checkpoint::new(w, self.done.iter().copied())
    }
}

impl Progress {
    pub fn new(start: u64) -> Self {
        Progress {
            read: SegQueue::new(),
            done: SegQueue::new(),
            reader_next: AtomicU64::new(start),
            frozen: AtomicBool::new(false),
        }
    }

    /// The reader is about to hand out record `seq` (written at `ts_ms`): logs it, then claims it
    /// against [`skip_to`](Self::skip_to). False when a full disk dropped it first: then it counts as
    /// complete and must not be handed out.
    pub fn hand_out(&self, seq: u64, ts_ms: u64) -> bool {
        // Logged before the claim: once `reader_next` passes it, a fold must see it outstanding.
        self.read.push((seq, ts_ms));
        let mut cur = self.reader_next.load(Ordering::Acquire);
        loop {
            if cur > seq {
                self.done.push(seq);
                return false;
            }
            match self.reader_next.compare_exchange_weak(
                cur,
                seq + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Moves the reader past everything below `until` (deleted to make room); returns where the reader
    /// was, so the caller counts exactly the records it will never hand out.
    pub fn skip_to(&self, until: u64) -> u64 {
        self.reader_next.fetch_max(until, Ordering::AcqRel)
    }

    /// Whether completions arrived since the last fold.
    pub fn has_completions(&self) -> bool {
        !self.done.is_empty()
    }

    /// The reader will next look at this sequence number: records below it were handed out or are gone.
    pub fn reader_next(&self) -> u64 {
        self.reader_next.load(Ordering::Acquire)
    }

    /// From now on completions are ignored: the process is giving up on what it holds, and the records
    /// must be replayed on the next start.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::Release);
    }

    /// Folds what happened since the last call; returns `W` and the write time of the oldest record
    /// handed out and not complete.
    pub fn fold(&self, w: &mut Watermark) -> (u64, Option<u64>) {
        // Loaded first: every record below this was logged as handed out before the store.
        let next = self.reader_next();
        while let Some(r) = self.read.pop() {
            w.outstanding.push_back(r);
        }
        while let Some(seq) = self.done.pop() {
            w.done.insert(seq);
        }
        while let Some(&(seq, _)) = w.outstanding.front() {
            if !w.done.remove(&seq) {
                break;
            }
            w.outstanding.pop_front();
        }
        match w.outstanding.front() {
            Some(&(seq, ts)) => (seq, Some(ts)),
            None => (next, None),
        }
    }
}

impl Completion for Progress {
    fn complete(&self, seq: u64) {
        if !self.frozen.load(Ordering::Acquire) {
            self.done.push(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_waits_for_the_oldest_and_skips_gaps() {
        let p = Progress::new(10);
        let mut w = Watermark::default();
        assert_eq!(p.fold(&mut w), (10, None));
        for seq in [10, 11, 14] {
            assert!(p.hand_out(seq, seq * 100));
        }
        p.complete(11);
        p.complete(14);
        assert_eq!(p.fold(&mut w), (10, Some(1000)), "10 is still out");
        p.complete(10);
        assert_eq!(
            p.fold(&mut w),
            (15, None),
            "12 and 13 were never handed out (damaged or dropped)"
        );
        assert!(p.hand_out(15, 1));
        p.freeze();
        p.complete(15);
        assert_eq!(p.fold(&mut w), (15, Some(1)), "frozen: not complete");
    }

    #[test]
    fn completions_above_w_are_named_and_survive_a_restart() {
        let p = Progress::new(0);
        let mut w = Watermark::default();
        for seq in 0..6 {
            assert!(p.hand_out(seq, seq));
        }
        for seq in [1, 2, 4] {
            p.complete(seq);
        }
        let (at, _) = p.fold(&mut w);
        let stored = w.checkpoint(at);
        assert_eq!(stored, Checkpoint::new(0, [1, 2, 4]));

        // The next run: the reader passes over 1, 2 and 4 (hands them out, never completes them).
        let p = Progress::new(stored.w);
        let mut w = Watermark::resume(&stored);
        assert!(p.hand_out(0, 0));
        assert!(p.hand_out(1, 0));
        let (at, _) = p.fold(&mut w);
        assert_eq!(
            w.checkpoint(at),
            Checkpoint::new(0, [1, 2, 4]),
            "0 is out again"
        );
        p.complete(0);
        let (at, _) = p.fold(&mut w);
        assert_eq!(w.checkpoint(at), Checkpoint::new(2, [2, 4]));
        for seq in 2..6 {
            assert!(p.hand_out(seq, 0));
        }
        p.complete(3);
        p.complete(5);
        let (at, _) = p.fold(&mut w);
        assert_eq!(w.checkpoint(at), Checkpoint::at(6));
    }

    #[test]
    fn a_record_is_either_handed_out_or_dropped_never_both() {
        let p = Progress::new(0);
        assert!(p.hand_out(0, 0));
        assert_eq!(
            p.skip_to(5),
            1,
            "records 1..5 are dropped: the reader had not reached them"
        );
        assert!(!p.hand_out(3, 0), "dropped before the reader got to it");
        assert!(p.hand_out(5, 0));
        assert_eq!(p.skip_to(4), 6, "nothing to drop below the reader");
        let mut w = Watermark::default();
        p.complete(0);
        p.complete(5);
        assert_eq!(
            p.fold(&mut w),
            (6, None),
            "the refused claim counts as complete"
        );
    }

    #[test]
    fn racing_claims_and_drops_account_for_every_record_once() {
        for _ in 0..200 {
            let p = std::sync::Arc::new(Progress::new(0));
            let reader = {
                let p = p.clone();
                std::thread::spawn(move || {
                    (0..2000u64).filter(|s| p.hand_out(*s, 0)).count() as u64
                })
            };
            let mut dropped = 0;
            for until in (100..2000).step_by(100) {
                let was = p.skip_to(until);
                dropped += until.saturating_sub(was);
            }
            let handed = reader.join().unwrap();
            assert_eq!(handed + dropped, 2000);
        }
    }
}
