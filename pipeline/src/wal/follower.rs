//! The one sequential reader of a log: hands out its records in order, from a checkpoint up to what
//! the owner has committed, each claimed in [`Progress`](super::Progress) so the checkpoint can pass
//! it. Records the owner hands over in memory are taken as they are, when they are next in line; the
//! rest is read back from disk. Records the last run delivered out of order are passed over. With
//! nothing to read it sleeps on the log's wake-up (a commit, close or abandon ends the sleep), and it
//! ends once the log is closed and everything committed was handed out, or at once when abandoned.

use super::{Checkpoint, Cursor, LogState, Next, Passing, Record};
use crate::queue::Weighted;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long the follower sleeps when nothing wakes it: a safety net, and the pause after a read that
/// found nothing where a record was committed (or failed).
pub const IDLE: Duration = Duration::from_millis(50);

/// A committed record handed from the owner to the follower in memory, so the common case never
/// reads back what was just written.
pub struct Handed<T> {
    pub seq: u64,
    pub ts_ms: u64,
    pub item: T,
}

impl<T: Weighted> Weighted for Handed<T> {
    fn items(&self) -> usize {
        self.item.items()
    }
    fn bytes(&self) -> usize {
        self.item.bytes()
    }
}

/// What [`Follower::next`] found. A record returned is claimed: the caller hands it on or completes
/// it.
pub enum Step<T> {
    /// Read back from disk.
    Disk(Record),
    /// Taken from the hand-over.
    Memory(Handed<T>),
    /// Reading failed; the follower pauses before it tries again.
    ReadError(std::io::Error),
    /// Closed and everything committed handed out, or abandoned.
    End,
}

enum Read<T> {
    Got(Step<T>),
    /// Passed over (delivered by the last run, or dropped to make room): look again.
    Passed,
    NotYet,
}

pub struct Follower<T> {
    state: Arc<LogState>,
    cursor: Cursor,
    next: u64,
    /// Ranges above the checkpoint the last run delivered: passed over, never handed out again.
    passing: Passing,
    /// A hand-over that must wait for the records before it to be read from disk.
    held: Option<Handed<T>>,
    /// The last read found nothing where something was committed, or failed: pause before the next.
    stalled: bool,
}

impl<T> Follower<T> {
    pub fn new(state: Arc<LogState>, dir: PathBuf, resume: Checkpoint) -> Self {
        Follower {
            state,
            cursor: Cursor::new(dir),
            next: resume.w,
            passing: Passing::new(resume),
            held: None,
            stalled: false,
        }
    }

    pub fn state(&self) -> &Arc<LogState> {
        &self.state
    }

    /// The next record to hand out.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Segments whose damaged remainder was skipped since the last call.
    pub fn take_skipped_segments(&mut self) -> u64 {
        std::mem::take(&mut self.cursor.skipped_segments)
    }

    /// Blocks until there is a record to hand out, or the end. `handed` gives the owner's next
    /// hand-over, if any.
    pub fn next(&mut self, handed: &mut impl FnMut() -> Option<Handed<T>>) -> Step<T> {
        loop {
            // The caller came back: whatever it was handed before is dealt with.
            self.state.set_followed(self.next);
            if self.state.abandoned() {
                return Step::End;
            }
            // Moved on by the owner when a full disk made it delete what was not read yet.
            self.next = self.next.max(self.state.progress().reader_next());
            if let Some(h) = self.held.take().or_else(&mut *handed) {
                if h.seq < self.next {
                    // Already read from disk while the hand-over waited.
                    continue;
                }
                if h.seq == self.next {
                    if self.claim(h.seq, h.ts_ms) {
                        return Step::Memory(h);
                    }
                    continue;
                }
                if self.stalled {
                    // Pause first (below); the records before it are tried again after.
                    self.held = Some(h);
                } else {
                    match self.read_disk() {
                        Read::Got(step) => {
                            self.held = Some(h);
                            return step;
                        }
                        Read::Passed => {
                            self.held = Some(h);
                            continue;
                        }
                        // Records before it cannot be read yet: handing it out would claim past
                        // them. It is on disk, and is read from there in order.
                        Read::NotYet => self.stalled = true,
                    }
                }
            }
            // `closing` first: the owner sets it after its last commit, so `committed` is then final.
            let closing = self.state.closing();
            let committed = self.state.committed();
            if self.next < committed && !self.stalled {
                match self.read_disk() {
                    Read::Got(step) => return step,
                    Read::Passed => continue,
                    Read::NotYet => self.stalled = true,
                }
            }
            if closing && self.next >= committed {
                return Step::End;
            }
            let state = &self.state;
            if std::mem::take(&mut self.stalled) {
                state.wait(IDLE, || state.abandoned());
            } else {
                let next = self.next;
                state.wait(IDLE, || {
                    next < state.committed() || state.closing() || state.abandoned()
                });
            }
        }
    }

    fn read_disk(&mut self) -> Read<T> {
        match self.cursor.next(self.next) {
            Ok(Next::Record(r)) => {
                let passed = self.passing.delivered(r.seq);
                // Claimed even when passed over, so `W` passes it; the owner's watermark has it done.
                if self.claim(r.seq, r.ts_ms) && !passed {
                    Read::Got(Step::Disk(r))
                } else {
                    self.next = self.next.max(r.seq + 1);
                    Read::Passed
                }
            }
            Ok(Next::NotYet) => Read::NotYet,
            Err(e) => {
                self.stalled = true;
                Read::Got(Step::ReadError(e))
            }
        }
    }

    /// False when a full disk dropped the record first: it counts as complete and is not handed out.
    fn claim(&mut self, seq: u64, ts_ms: u64) -> bool {
        let progress = self.state.progress();
        if progress.hand_out(seq, ts_ms) {
            self.next = seq + 1;
            self.state.set_followed_ts(ts_ms);
            true
        } else {
            self.next = self.next.max(progress.reader_next());
            false
        }
    }
}
