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

struct Shared<T> {
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
    let shared = Arc::new(Shared {
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
    shared: Arc<Shared<T>>,
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
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

impl<T: Weighted> Shared<T> {
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

impl<T: Weighted> Shared<T> {
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
}

impl<T: Weighted> Receiver<T> {
    pub fn try_recv(&self) -> Option<T> {
        self.shared.try_pop()
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

impl<T: Send> QueueLevel for Shared<T> {
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
mod tests {
    use super::*;
    use std::thread;

    #[derive(Debug, PartialEq, Eq)]
    struct Item(usize, usize);
    impl Weighted for Item {
        fn items(&self) -> usize {
            self.0
        }
        fn bytes(&self) -> usize {
            self.1
        }
    }

    fn limits(max_items: usize, max_bytes: usize) -> Limits {
        Limits {
            max_items,
            max_bytes,
        }
    }

    #[test]
    fn bounded_by_items_and_by_bytes() {
        let (tx, rx) = bounded(limits(10, 1000));
        tx.try_send(Item(6, 10)).unwrap();
        assert_eq!(
            tx.try_send(Item(5, 10)),
            Err(TrySendError::Full(Item(5, 10)))
        );
        tx.try_send(Item(4, 10)).unwrap();
        assert_eq!(rx.stats().items(), 10);
        let _ = rx.try_recv().unwrap();
        let _ = rx.try_recv().unwrap();

        tx.try_send(Item(1, 900)).unwrap();
        assert!(matches!(
            tx.try_send(Item(1, 101)),
            Err(TrySendError::Full(_))
        ));
        tx.try_send(Item(1, 100)).unwrap();
        assert_eq!((rx.stats().items(), rx.stats().bytes()), (2, 1000));
    }

    #[test]
    fn oversized_batch_is_admitted_only_into_an_empty_queue() {
        let (tx, rx) = bounded(limits(10, 100));
        tx.try_send(Item(50, 5000)).unwrap();
        assert!(matches!(
            tx.try_send(Item(1, 1)),
            Err(TrySendError::Full(_))
        ));
        assert_eq!(rx.try_recv(), Some(Item(50, 5000)));
        assert_eq!((rx.stats().items(), rx.stats().bytes()), (0, 0));
    }

    #[test]
    fn a_blocking_send_with_a_deadline_hands_the_value_back_or_waits_for_room() {
        let (tx, rx) = bounded(limits(1, 100));
        tx.try_send(Item(1, 1)).unwrap();
        let soon = std::time::Instant::now() + Duration::from_millis(30);
        assert_eq!(
            tx.send_blocking_until(Item(1, 2), soon),
            Err(SendError::Timeout(Item(1, 2)))
        );
        let popper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            (rx.try_recv(), rx)
        });
        let later = std::time::Instant::now() + Duration::from_secs(10);
        assert_eq!(tx.send_blocking_until(Item(1, 3), later), Ok(()));
        let (popped, rx) = popper.join().unwrap();
        assert_eq!(popped, Some(Item(1, 1)));
        assert_eq!(rx.try_recv(), Some(Item(1, 3)));
    }

    #[test]
    fn dropping_all_senders_closes_after_drain() {
        let (tx, rx) = bounded(limits(10, 100));
        let tx2 = tx.clone();
        tx.try_send(Item(1, 1)).unwrap();
        drop(tx);
        tx2.try_send(Item(1, 1)).unwrap();
        drop(tx2);
        assert!(rx.recv_blocking().is_some());
        assert!(rx.recv_blocking().is_some());
        assert_eq!(rx.recv_blocking(), None);
    }

    #[test]
    fn dropping_all_receivers_hands_values_back() {
        let (tx, rx) = bounded::<Item>(limits(10, 100));
        drop(rx);
        assert_eq!(
            tx.try_send(Item(1, 1)),
            Err(TrySendError::Closed(Item(1, 1)))
        );
        assert_eq!(
            tx.send_blocking(Item(2, 1)),
            Err(SendError::Closed(Item(2, 1)))
        );
    }

    #[test]
    fn mpmc_delivers_every_item_exactly_once() {
        let (tx, rx) = bounded(limits(64, usize::MAX));
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let tx = tx.clone();
                thread::spawn(move || {
                    for i in 0..5000 {
                        tx.send_blocking(Item(1, p * 10_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    while let Some(Item(_, id)) = rx.recv_blocking() {
                        seen.push(id);
                    }
                    seen
                })
            })
            .collect();
        drop(rx);
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<usize> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let expected: Vec<usize> = (0..4)
            .flat_map(|p| (0..5000).map(move |i| p * 10_000 + i))
            .collect();
        assert_eq!(all, expected);
    }

    /// Receivers racing for the last items of a closed queue all see the end: the one that loses the
    /// race must not sleep through the final pop.
    #[test]
    fn last_pop_of_a_closed_queue_wakes_every_waiting_receiver() {
        for _ in 0..2000 {
            let (tx, rx) = bounded(limits(16, usize::MAX));
            for i in 0..2 {
                tx.try_send(Item(1, i)).unwrap();
            }
            drop(tx);
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            for _ in 0..3 {
                let (rx, done) = (rx.clone(), done_tx.clone());
                thread::spawn(move || {
                    while rx.recv_blocking().is_some() {}
                    let _ = done.send(());
                });
            }
            drop(rx);
            for _ in 0..3 {
                done_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a receiver slept through the end of the queue");
            }
        }
    }

    /// Every send that returned Ok is received, even when `close` races with the senders.
    #[test]
    fn close_racing_senders_never_strands_an_acknowledged_item() {
        for round in 0..50 {
            let (tx, rx) = bounded(limits(1_000, usize::MAX));
            let senders: Vec<_> = (0..3)
                .map(|_| {
                    let tx = tx.clone();
                    thread::spawn(move || {
                        let mut ok = 0;
                        loop {
                            match tx.try_send(Item(1, 1)) {
                                Ok(()) => ok += 1,
                                Err(TrySendError::Full(_)) => thread::yield_now(),
                                Err(TrySendError::Closed(_)) => return ok,
                            }
                        }
                    })
                })
                .collect();
            let consumer = {
                let rx = rx.clone();
                thread::spawn(move || {
                    let mut got = 0;
                    while rx.recv_blocking().is_some() {
                        got += 1;
                    }
                    got
                })
            };
            thread::sleep(Duration::from_micros(200 + round * 20));
            tx.close();
            let sent: usize = senders.into_iter().map(|s| s.join().unwrap()).sum();
            let got = consumer.join().unwrap();
            assert_eq!(sent, got, "round {round}");
        }
    }

    #[test]
    fn level_packs_items_and_bytes_without_overlap() {
        assert_eq!(unpack(pack(MAX_ITEMS, MAX_BYTES)), (MAX_ITEMS, MAX_BYTES));
        assert_eq!(unpack(pack(3, 7) - pack(1, 2)), (2, 5));
    }

    #[tokio::test]
    async fn async_send_waits_for_room_and_times_out() {
        let (tx, rx) = bounded(limits(1, 100));
        tx.try_send(Item(1, 1)).unwrap();
        let err = tx.send(Item(1, 1), Some(Duration::from_millis(20))).await;
        assert_eq!(err, Err(SendError::Timeout(Item(1, 1))));

        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(Item(1, 2), None).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(rx.recv().await, Some(Item(1, 1)));
        waiter.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(Item(1, 2)));
    }

    #[tokio::test]
    async fn recv_timeout_distinguishes_timeout_from_closed() {
        let (tx, rx) = bounded::<Item>(limits(1, 100));
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(10)).await,
            Err(RecvError::Timeout)
        );
        drop(tx);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).await,
            Err(RecvError::Closed)
        );
    }
}
