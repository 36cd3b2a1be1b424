//! Bounded multi-producer multi-consumer queues with capacity in items *and* bytes.
//!
//! Storage is crossbeam's lock-free `SegQueue`; the bound is one atomic word of items and bytes reserved
//! by CAS before a push, so no slot array is allocated up front and a queue sized for 200k spans costs
//! nothing while empty. Waiting (async for receivers and exporters, blocking for stage worker threads)
//! uses `event-listener`, whose notify is a single atomic load when nobody waits: the data path takes
//! no lock unless a thread actually has to wait.
//!
//! One batch is always admitted into an empty queue even when it alone exceeds a limit, so an oversized
//! batch cannot wedge the pipeline. The queue closes when every [`Sender`] is dropped (receivers then
//! drain what is left and see `None`) or every [`Receiver`] is dropped (senders get their value back).

use crossbeam_queue::SegQueue;
use event_listener::{Event, EventListener, Listener};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What a queue counts against its limits.
pub trait Weighted {
    fn items(&self) -> usize;
    fn bytes(&self) -> usize;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_items: usize,
    pub max_bytes: usize,
}

impl From<weir_config::QueueLimits> for Limits {
    fn from(l: weir_config::QueueLimits) -> Self {
        Limits {
            max_items: l.max_items,
            max_bytes: l.max_bytes.as_usize(),
        }
    }
}

/// What a queue's senders and receivers share.
struct Channel<T> {
    queue: SegQueue<T>,
    /// Items (high 24 bits) and bytes (low 40 bits) queued or reserved; see [`pack`].
    level: AtomicU64,
    limits: Limits,
    closed: AtomicBool,
    senders: AtomicUsize,
    receivers: AtomicUsize,
    not_empty: Event,
    not_full: Event,
}

/// Creates a bounded queue.
pub fn bounded<T: Weighted>(limits: Limits) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Channel {
        queue: SegQueue::new(),
        level: AtomicU64::new(0),
        limits,
        closed: AtomicBool::new(false),
        senders: AtomicUsize::new(1),
        receivers: AtomicUsize::new(1),
        not_empty: Event::new(),
        not_full: Event::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// A refused `try_send`, handing the value back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    Full(T),
    Closed(T),
}

impl<T> TrySendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Closed(v) => v,
        }
    }
}

/// A refused blocking or timed send, handing the value back.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// Still full when the wait ran out.
    Timeout(T),
    Closed(T),
}

impl<T> SendError<T> {
    pub fn into_inner(self) -> T {
        match self {
            SendError::Timeout(v) | SendError::Closed(v) => v,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// Closed and drained: nothing will ever arrive.
    Closed,
}

pub struct Sender<T> {
    shared: Arc<Channel<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Channel<T>>,
}

/// Items and bytes share one atomic word, so a reservation checks and commits both in one CAS and a
/// refused sender never writes: two senders can never see each other's refused reservation and both
/// give up on a queue that has room.
const ITEM_SHIFT: u32 = 40;
const BYTE_MASK: u64 = (1 << ITEM_SHIFT) - 1;
/// Largest `max_items` a queue can count (2^24 − 1).
pub const MAX_ITEMS: usize = (1 << (64 - ITEM_SHIFT)) - 1;
/// Largest `max_bytes` a queue can count (1 TiB − 1).
pub const MAX_BYTES: usize = BYTE_MASK as usize;

fn unpack(level: u64) -> (usize, usize) {
    ((level >> ITEM_SHIFT) as usize, (level & BYTE_MASK) as usize)
}

fn pack(items: usize, bytes: usize) -> u64 {
    ((items as u64) << ITEM_SHIFT) | bytes as u64
}

impl<T: Weighted> Channel<T> {
    fn try_push(&self, value: T) -> Result<(), TrySendError<T>> {
        let (n, b) = (value.items().min(MAX_ITEMS), value.bytes().min(MAX_BYTES));
        let mut current = self.level.load(Ordering::SeqCst);
        loop {
            let (items, bytes) = unpack(current);
            let fits = current == 0
                || (items + n <= self.limits.max_items.min(MAX_ITEMS)
                    && bytes + b <= self.limits.max_bytes.min(MAX_BYTES));
            if !fits {
                return Err(if self.is_closed() {
                    TrySendError::Closed(value)
                } else {
                    TrySendError::Full(value)
                });
            }
            match self.level.compare_exchange_weak(
                current,
                pack(items + n, bytes + b),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        // Checked after reserving: a receiver that sees the queue closed also sees this reservation,
        // and waits for the push (or the undo below) instead of declaring the queue drained.
        if self.closed.load(Ordering::SeqCst) {
            self.level.fetch_sub(pack(n, b), Ordering::SeqCst);
            self.not_empty.notify(usize::MAX);
            return Err(TrySendError::Closed(value));
        }
        self.queue.push(value);
        self.not_empty.notify_additional(1);
        Ok(())
    }

    fn try_pop(&self) -> Option<T> {
        let value = self.queue.pop()?;
        let (n, b) = (value.items().min(MAX_ITEMS), value.bytes().min(MAX_BYTES));
        let before = self.level.fetch_sub(pack(n, b), Ordering::SeqCst);
        // The last pop of a closed queue: a receiver that found the queue empty while this pop was
        // between taking the value and releasing its reservation saw it not yet drained and went to
        // wait; the close notification came before it listened, so only this one can wake it.
        if before == pack(n, b) && self.is_closed() {
            self.not_empty.notify(usize::MAX);
        }
        // One more waiting sender per pop: it either fits, or the queue still holds items whose pops
        // will wake the next one. Waking all would stampede a full intake under overload.
        self.not_full.notify_additional(1);
        Some(value)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.not_empty.notify(usize::MAX);
        self.not_full.notify(usize::MAX);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Closed, and no item is queued or being pushed: nothing will ever arrive.
    fn is_drained(&self) -> bool {
        self.is_closed() && self.level.load(Ordering::SeqCst) == 0
    }
}

/// One step of a receive: a value, the end of the queue, or a listener to wait on.
enum RecvStep<T> {
    Ready(Option<T>),
    Wait(EventListener),
}

/// One step of a send: done (or refused for good), or the value back with a listener to wait on.
enum SendStep<T> {
    Done(Result<(), SendError<T>>),
    Wait(T, EventListener),
}

impl<T: Weighted> Channel<T> {
    /// Try, listen, try again: a push that lands between the first try and `listen` is not missed.
    fn recv_step(&self) -> RecvStep<T> {
        let attempt = || match self.try_pop() {
            Some(v) => Some(Some(v)),
            None if self.is_drained() => Some(None),
            None => None,
        };
        if let Some(r) = attempt() {
            return RecvStep::Ready(r);
        }
        let listener = self.not_empty.listen();
        match attempt() {
            Some(r) => RecvStep::Ready(r),
            None => RecvStep::Wait(listener),
        }
    }

    fn send_step(&self, value: T) -> SendStep<T> {
        let value = match self.try_push(value) {
            Ok(()) => return SendStep::Done(Ok(())),
            Err(TrySendError::Closed(v)) => return SendStep::Done(Err(SendError::Closed(v))),
            Err(TrySendError::Full(v)) => v,
        };
        let listener = self.not_full.listen();
        match self.try_push(value) {
            Ok(()) => SendStep::Done(Ok(())),
            Err(TrySendError::Closed(v)) => SendStep::Done(Err(SendError::Closed(v))),
            Err(TrySendError::Full(v)) => SendStep::Wait(v, listener),
        }
    }
}

impl<T: Weighted> Sender<T> {
    /// Enqueues without waiting.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.shared.try_push(value)
    }

    /// Waits (asynchronously) for room, up to `timeout` if given.
    pub async fn send(&self, mut value: T, timeout: Option<Duration>) -> Result<(), SendError<T>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let listener = match self.shared.send_step(value) {
                SendStep::Done(r) => return r,
                SendStep::Wait(v, l) => {
                    value = v;
                    l
                }
            };
            let Some(deadline) = deadline else {
                listener.await;
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_async(listener, left).await {
                return self.shared.try_push(value).map_err(|e| match e {
                    TrySendError::Closed(v) => SendError::Closed(v),
                    TrySendError::Full(v) => SendError::Timeout(v),
                });
            }
        }
    }

    /// Blocks the calling thread until there is room or the queue closes; for stage worker threads.
    pub fn send_blocking(&self, mut value: T) -> Result<(), SendError<T>> {
        loop {
            match self.shared.send_step(value) {
                SendStep::Done(r) => return r,
                SendStep::Wait(v, listener) => {
                    value = v;
                    listener.wait();
                }
            }
        }
    }

    /// Blocks the calling thread until there is room, the queue closes, or `deadline` passes (then
    /// the value comes back in [`SendError::Timeout`]). For threads that must also notice other events.
    pub fn send_blocking_until(
        &self,
        mut value: T,
        deadline: std::time::Instant,
    ) -> Result<(), SendError<T>> {
        loop {
            match self.shared.send_step(value) {
                SendStep::Done(r) => return r,
                SendStep::Wait(v, listener) => {
                    if listener.wait_deadline(deadline).is_none() {
                        return self.shared.try_push(v).map_err(|e| match e {
                            TrySendError::Closed(v) => SendError::Closed(v),
                            TrySendError::Full(v) => SendError::Timeout(v),
                        });
                    }
                    value = v;
                }
            }
        }
    }

    /// Closes the queue for everyone, even while other senders are alive.
    pub fn close(&self) {
        self.shared.close();
    }

    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    pub fn stats(&self) -> QueueStats
    where
        T: Send + 'static,
    {
        QueueStats(self.shared.clone())
    }

    /// Bytes waiting in the queue now.
    pub fn bytes(&self) -> usize {
        unpack(self.shared.level.load(Ordering::Relaxed)).1
    }
}

impl<T: Weighted> Receiver<T> {
    pub fn try_recv(&self) -> Option<T> {
        self.shared.try_pop()
    }

    /// Closed, and nothing queued: nothing will ever arrive.
    pub fn is_drained(&self) -> bool {
        self.shared.is_drained()
    }

    /// Waits for a value; `None` once the queue is closed and drained.
    pub async fn recv(&self) -> Option<T> {
        loop {
            match self.shared.recv_step() {
                RecvStep::Ready(v) => return v,
                RecvStep::Wait(listener) => listener.await,
            }
        }
    }

    /// Waits up to `timeout` for a value.
    pub async fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.shared.recv_step() {
                RecvStep::Ready(v) => return v.ok_or(RecvError::Closed),
                RecvStep::Wait(listener) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() || !wait_async(listener, left).await {
                        return self.shared.try_pop().ok_or(RecvError::Timeout);
                    }
                }
            }
        }
    }

    /// Blocks the calling thread for a value; `None` once closed and drained. For stage worker threads.
    pub fn recv_blocking(&self) -> Option<T> {
        loop {
            match self.shared.recv_step() {
                RecvStep::Ready(v) => return v,
                RecvStep::Wait(listener) => listener.wait(),
            }
        }
    }

    /// Blocks the calling thread for a value until `deadline` (forever when `None`). For threads that
    /// also keep timers, like the tail sampler.
    pub fn recv_blocking_until(
        &self,
        deadline: Option<std::time::Instant>,
    ) -> Result<T, RecvError> {
        loop {
            match self.shared.recv_step() {
                RecvStep::Ready(v) => return v.ok_or(RecvError::Closed),
                RecvStep::Wait(listener) => match deadline {
                    None => listener.wait(),
                    Some(d) => {
                        if listener.wait_deadline(d).is_none() {
                            return self.shared.try_pop().ok_or(RecvError::Timeout);
                        }
                    }
                },
            }
        }
    }

    pub fn stats(&self) -> QueueStats
    where
        T: Send + 'static,
    {
        QueueStats(self.shared.clone())
    }
}

/// Waits for `listener` at most `timeout`; true if it was notified.
async fn wait_async(listener: EventListener, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, listener).await.is_ok()
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.closed.store(true, Ordering::SeqCst);
            self.shared.not_empty.notify(usize::MAX);
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.closed.store(true, Ordering::SeqCst);
            self.shared.not_full.notify(usize::MAX);
        }
    }
}

/// A read-only view of a queue's fill level, for metrics.
#[derive(Clone)]
pub struct QueueStats(Arc<dyn QueueLevel>);

trait QueueLevel: Send + Sync {
    fn level(&self) -> (usize, usize);
    fn limits(&self) -> Limits;
}

impl<T: Send> QueueLevel for Channel<T> {
    fn level(&self) -> (usize, usize) {
        unpack(self.level.load(Ordering::Relaxed))
    }
    fn limits(&self) -> Limits {
        self.limits
    }
}

impl QueueStats {
    pub fn items(&self) -> usize {
        self.0.level().0
    }
    pub fn bytes(&self) -> usize {
        self.0.level().1
    }
    pub fn limits(&self) -> Limits {
        self.0.limits()
    }
}

#[cfg(test)]
mod tests;
