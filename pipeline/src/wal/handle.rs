//! How a log's users talk to its owner thread, and the one way every log is stopped: close (nothing
//! more is appended; the follower hands out what is committed, then ends), abandon (the shutdown
//! deadline passed; what is in flight is kept for the next start) and finish (the last checkpoint,
//! then the threads end).

use super::LogState;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the owner thread's inbox carries.
pub enum Msg<A> {
    Append(A),
    /// Stop taking appends; keep checkpointing.
    Close,
    /// Write the last checkpoint and end.
    Finish,
    /// Makes the owner thread panic, to test what its death does.
    #[cfg(any(test, feature = "test-util"))]
    Crash,
}

/// The sending side of an owner's inbox: bounded or not, as the user needs.
pub trait Inbox<T>: Send + Sync {
    fn send(&self, msg: T) -> Result<(), SendError<T>>;
}

impl<T: Send> Inbox<T> for mpsc::Sender<T> {
    fn send(&self, msg: T) -> Result<(), SendError<T>> {
        mpsc::Sender::send(self, msg)
    }
}

impl<T: Send> Inbox<T> for mpsc::SyncSender<T> {
    fn send(&self, msg: T) -> Result<(), SendError<T>> {
        mpsc::SyncSender::send(self, msg)
    }
}

/// Stopping a log, whatever it holds; what shutdown calls.
pub trait Lifecycle: Send + Sync {
    fn close(&self);
    fn abandon(&self);
    /// Closes, writes the last checkpoint and waits for the threads.
    fn finish(&self);
}

/// A user's handle on a running log: its owner's inbox, the shared state, the threads to join.
pub struct LogHandle<A, I> {
    inbox: I,
    state: Arc<LogState>,
    closed: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _append: PhantomData<fn(A)>,
}

impl<A, I: Inbox<Msg<A>>> LogHandle<A, I> {
    pub fn new(inbox: I, state: Arc<LogState>, threads: Vec<JoinHandle<()>>) -> Self {
        LogHandle {
            inbox,
            state,
            closed: AtomicBool::new(false),
            threads: Mutex::new(threads),
            _append: PhantomData,
        }
    }

    pub fn state(&self) -> &Arc<LogState> {
        &self.state
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Puts a message in the owner's inbox (waiting for room when it is bounded); `Err` when the
    /// owner is gone.
    pub fn send(&self, msg: Msg<A>) -> Result<(), SendError<Msg<A>>> {
        self.inbox.send(msg)
    }
}

impl<A, I: Inbox<Msg<A>>> Lifecycle for LogHandle<A, I> {
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) && self.send(Msg::Close).is_err() {
            // The owner is gone: nothing more will be committed.
            self.state.set_closing();
        }
    }

    fn abandon(&self) {
        self.state.abandon();
    }

    fn finish(&self) {
        self.close();
        let _ = self.send(Msg::Finish);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}
