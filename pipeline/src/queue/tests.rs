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
