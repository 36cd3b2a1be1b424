//! The one thread that owns a [`Wal`]. It takes appends from a channel in groups (everything queued,
//! or what arrives within `commit_interval`, up to `commit_bytes`) and commits each group with one
//! `fdatasync`, so many small appends share a disk wait. Between groups it folds completions into the
//! checkpoint and deletes delivered segments. What its users do differently — answering a receiver,
//! handing a batch to the follower in memory, sending what the log cannot take elsewhere, counting —
//! they do in [`Hooks`]; everything that touches the log is here, once.

use super::state::now_ms;
use super::{Dropped, LogState, Msg, Recovered, Wal, Watermark};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When the owner commits and checkpoints, and how much disk it may use.
#[derive(Debug, Clone, Copy)]
pub struct Cadence {
    /// How long a group stays open for more appends after its first; zero takes only what is queued.
    pub commit_interval: Duration,
    /// A group closes once this many bytes are staged.
    pub commit_bytes: usize,
    /// Commit every append on its own (`fsync: always`).
    pub commit_each: bool,
    pub checkpoint_interval: Duration,
    /// While records are out, how soon their completions reach the (unsynced) checkpoint file: a crash
    /// replays what was delivered since. `None`: only every `checkpoint_interval`.
    pub completion_checkpoint: Option<Duration>,
    /// Once everything is delivered, start a fresh segment so the old one goes: for a log that is
    /// normally empty, where holding a segment for nothing would cost disk.
    pub truncate_drained: bool,
    /// Bytes the log may hold on disk.
    pub max_bytes: u64,
    /// At `max_bytes`, delete the oldest undelivered segment instead of refusing.
    pub drop_oldest: bool,
}

/// What the owner needs to write an append.
pub struct Parts<'a> {
    pub items: u32,
    pub flags: u16,
    pub meta: &'a [u8],
    pub payload: &'a [u8],
}

/// Why an append was not staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than one record may be.
    TooLarge,
    /// The log is at `max_bytes`.
    Full,
    /// It arrived after [`Msg::Close`].
    Closed,
}

/// A staged append with the sequence number and write time it got.
pub struct Staged<A> {
    pub seq: u64,
    pub ts_ms: u64,
    pub append: A,
}

/// What a log's user does at each point of the owner's work. Called on the owner thread.
pub trait Hooks: Send + 'static {
    type Append: Send + 'static;

    fn parts(append: &Self::Append) -> Parts<'_>;

    fn refuse(&mut self, append: Self::Append, why: Refusal);

    /// The group is on disk; `committed` has not moved yet, so what is handed over here is in place
    /// before the follower can look for it. `bytes`: what the group added to the log.
    fn committed(&mut self, _group: &mut [Staged<Self::Append>], _bytes: u64) {}

    /// After every group: `ok` when it was committed (and `committed` published), else nothing in it
    /// counts as written. Called for empty groups too, so refusals held back can be dealt with.
    fn settle(&mut self, group: Vec<Staged<Self::Append>>, ok: bool);

    /// Nothing more will be appended (the owner got [`Msg::Close`], or is finishing).
    fn closed(&mut self) {}

    /// `drop_oldest` deleted undelivered records.
    fn dropped(&mut self, _dropped: &Dropped) {}

    /// A disk operation failed (`op`: `write`, `roll` or `checkpoint`); health is already marked.
    fn disk_error(&mut self, op: &'static str, error: &io::Error);
}

pub struct Owner<H: Hooks> {
    log: Wal,
    state: Arc<LogState>,
    hooks: H,
    cadence: Cadence,
    watermark: Watermark,
    /// `W` at the last checkpoint.
    watermark_w: u64,
    /// Appends staged in the current group, in sequence order.
    staged: Vec<Staged<H::Append>>,
}

impl<H: Hooks> Owner<H> {
    pub fn new(
        log: Wal,
        recovered: &Recovered,
        state: Arc<LogState>,
        cadence: Cadence,
        hooks: H,
    ) -> Self {
        Owner {
            log,
            state,
            hooks,
            cadence,
            watermark: Watermark::resume(&recovered.checkpoint),
            watermark_w: recovered.checkpoint.w,
            staged: Vec::new(),
        }
    }

    /// Runs the owner on a thread of its own. If it panics (a bug), `on_death` is told and the state
    /// says so: appends fail from then on, and the follower hands out what was committed and ends.
    pub fn spawn(
        self,
        name: String,
        inbox: Receiver<Msg<H::Append>>,
        on_death: impl FnOnce() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let state = self.state.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            if catch_unwind(AssertUnwindSafe(move || self.run(&inbox))).is_err() {
                state.died();
                on_death();
            }
        })
    }

    pub fn run(mut self, inbox: &Receiver<Msg<H::Append>>) {
        self.checkpoint(true);
        let mut last_checkpoint = Instant::now();
        let mut last_completion = Instant::now();
        let mut closing = false;
        loop {
            let mut wait = self
                .cadence
                .checkpoint_interval
                .saturating_sub(last_checkpoint.elapsed());
            if let Some(soon) = self.cadence.completion_checkpoint {
                if self.in_flight() {
                    wait = wait.min(soon);
                }
            }
            let finish = match inbox.recv_timeout(wait) {
                Ok(Msg::Append(a)) if !closing => {
                    let finish = self.group(a, inbox, &mut closing);
                    self.commit();
                    finish
                }
                Ok(Msg::Append(a)) => {
                    self.hooks.refuse(a, Refusal::Closed);
                    false
                }
                Ok(Msg::Close) => {
                    closing = true;
                    false
                }
                Ok(Msg::Finish) | Err(RecvTimeoutError::Disconnected) => true,
                #[cfg(any(test, feature = "test-util"))]
                Ok(Msg::Crash) => panic!("crash requested by a test"),
                Err(RecvTimeoutError::Timeout) => false,
            };
            if (closing || finish) && !self.state.closing() {
                // Everything acknowledged is committed: the follower may stop once it has read it.
                self.hooks.closed();
                self.state.set_closing();
            }
            if finish {
                self.checkpoint(true);
                return;
            }
            if last_checkpoint.elapsed() >= self.cadence.checkpoint_interval {
                self.checkpoint(true);
                last_checkpoint = Instant::now();
            } else if self
                .cadence
                .completion_checkpoint
                .is_some_and(|soon| last_completion.elapsed() >= soon)
                && self.state.progress().has_completions()
            {
                // Unsynced: enough for a process crash, which is what replays come from.
                self.checkpoint(false);
                last_completion = Instant::now();
            }
        }
    }

    /// Whether records were handed out that may not be complete yet.
    fn in_flight(&self) -> bool {
        let progress = self.state.progress();
        progress.has_completions() || progress.reader_next() > self.watermark_w
    }

    /// Stages `first` and whatever joins it before the group closes; true if `Finish` arrived.
    fn group(
        &mut self,
        first: H::Append,
        inbox: &Receiver<Msg<H::Append>>,
        closing: &mut bool,
    ) -> bool {
        let deadline = Instant::now() + self.cadence.commit_interval;
        self.stage(first);
        while self.log.staged_bytes() < self.cadence.commit_bytes {
            let next = match inbox.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match inbox.recv_timeout(left) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return true,
                    }
                }
            };
            match next {
                Msg::Append(a) => self.stage(a),
                Msg::Close => {
                    *closing = true;
                    break;
                }
                Msg::Finish => return true,
                #[cfg(any(test, feature = "test-util"))]
                Msg::Crash => panic!("crash requested by a test"),
            }
        }
        false
    }

    fn stage(&mut self, a: H::Append) {
        let p = H::parts(&a);
        if !Wal::fits(p.meta.len(), p.payload.len()) {
            self.hooks.refuse(a, Refusal::TooLarge);
            return;
        }
        if !self.make_room(Wal::record_len(p.meta.len(), p.payload.len())) {
            self.hooks.refuse(a, Refusal::Full);
            return;
        }
        let ts_ms = now_ms();
        let seq = self.log.stage(ts_ms, p.items, p.flags, p.meta, p.payload);
        self.staged.push(Staged {
            seq,
            ts_ms,
            append: a,
        });
        if self.cadence.commit_each {
            self.commit();
        }
    }

    /// Whether `need` more bytes fit in `max_bytes`, after freeing delivered segments and, under
    /// `drop_oldest`, undelivered ones.
    fn make_room(&mut self, need: u64) -> bool {
        let used = |log: &Wal| log.bytes() + log.staged_bytes() as u64;
        if used(&self.log) + need <= self.cadence.max_bytes {
            return true;
        }
        self.checkpoint(true);
        while used(&self.log) + need > self.cadence.max_bytes {
            if !self.cadence.drop_oldest {
                return false;
            }
            let progress = self.state.progress().clone();
            match self.log.drop_oldest(|until| progress.skip_to(until)) {
                Ok(Some(d)) => self.hooks.dropped(&d),
                Ok(None) => return false,
                Err(e) => {
                    self.disk_error("checkpoint", &e);
                    return false;
                }
            }
        }
        true
    }

    /// Commits the staged group, hands it to the hooks, then publishes it to the follower.
    fn commit(&mut self) {
        let mut group = std::mem::take(&mut self.staged);
        if group.is_empty() {
            self.hooks.settle(group, true);
            return;
        }
        let bytes = self.log.staged_bytes() as u64;
        let ok = match self.log.commit() {
            Ok(()) => {
                self.state.set_healthy(true);
                self.hooks.committed(&mut group, bytes);
                self.state.publish_committed(self.log.next_seq());
                true
            }
            Err(e) => {
                self.disk_error("write", &e);
                false
            }
        };
        self.hooks.settle(group, ok);
        if ok {
            if let Err(e) = self.log.maybe_roll() {
                self.disk_error("roll", &e);
            }
        }
        self.publish_size();
    }

    /// Folds completions into the checkpoint, deletes delivered segments, updates the gauges.
    fn checkpoint(&mut self, sync: bool) {
        let progress = self.state.progress();
        let (w, oldest_ts) = progress.fold(&mut self.watermark);
        self.watermark_w = w;
        let checkpoint = self.watermark.checkpoint(w);
        let committed = self.state.committed();
        let undelivered = committed
            .saturating_sub(w)
            .saturating_sub(checkpoint.done_records());
        let truncate = self.cadence.truncate_drained;
        let released = self.log.release_with(checkpoint, sync).and_then(|_| {
            if truncate {
                self.log.truncate_if_drained()
            } else {
                Ok(0)
            }
        });
        let oldest = oldest_ts.or_else(|| {
            // Nothing handed out is pending, but the follower may be behind: its last record's age.
            (progress.reader_next() < committed)
                .then(|| self.state.followed_ts())
                .filter(|t| *t > 0)
        });
        let g = &self.state.gauges;
        g.undelivered
            .store(undelivered, std::sync::atomic::Ordering::Relaxed);
        g.oldest_age_ms.store(
            oldest.map_or(0, |t| now_ms().saturating_sub(t)),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let Err(e) = released {
            self.disk_error("checkpoint", &e);
        }
        self.publish_size();
    }

    fn publish_size(&self) {
        let g = &self.state.gauges;
        g.bytes
            .store(self.log.bytes(), std::sync::atomic::Ordering::Relaxed);
        g.segments.store(
            self.log.segments() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn disk_error(&mut self, op: &'static str, e: &io::Error) {
        self.state.set_healthy(false);
        self.hooks.disk_error(op, e);
    }
}

#[cfg(test)]
#[path = "owner/tests.rs"]
mod tests;
