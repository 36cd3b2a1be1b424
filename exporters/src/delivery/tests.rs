use super::*;
use crate::{Encoded, ExportError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use weir_pipeline::queue::Limits;
use weir_pipeline::{bounded, fixtures, Logs};

/// Records what it was sent; fails the first `fail_first` attempts with `error`.
struct Recorder {
    sent: Mutex<Vec<usize>>,
    attempts: AtomicUsize,
    fail_first: usize,
    error: ExportError,
    deduplicates: bool,
}

impl Recorder {
    fn new(fail_first: usize, error: ExportError) -> Arc<Self> {
        Arc::new(Recorder {
            sent: Mutex::new(Vec::new()),
            attempts: AtomicUsize::new(0),
            fail_first,
            error,
            deduplicates: false,
        })
    }
}

impl Exporter<Logs> for Recorder {
    type Request = usize;
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn encode(&self, batch: Batch<Logs>) -> Result<Vec<Encoded<usize>>, ExportError> {
        Ok(vec![Encoded {
            request: batch.items(),
            items: batch.items(),
            bytes: 0,
        }])
    }
    async fn send(&self, request: &usize) -> Result<(), ExportError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.fail_first {
            return Err(self.error.clone());
        }
        self.sent.lock().unwrap().push(*request);
        Ok(())
    }
    fn deduplicates(&self) -> bool {
        self.deduplicates
    }
}

/// Delivers one batch of 5 items through a recorder that fails its first `fail_first` attempts.
async fn deliver_one_batch_of_5(
    fail_first: usize,
    error: ExportError,
) -> (Arc<Recorder>, DeliveryMetrics) {
    let rec = Recorder::new(fail_first, error);
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    tx.try_send(batch(5)).unwrap();
    drop(tx);
    deliver(
        "r".into(),
        rec.clone(),
        rx,
        settings(),
        m.clone(),
        std::future::pending(),
    )
    .await;
    (rec, m)
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        max_items: 100,
        max_bytes: usize::MAX,
        max_age: Duration::from_millis(200),
        max_in_flight: 2,
        timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        max_elapsed: Duration::from_secs(10),
        durable: false,
    }
}

fn batch(items: usize) -> Batch<Logs> {
    Batch::measured(fixtures::resource_logs(1, items))
}

fn limits() -> Limits {
    Limits {
        max_items: 10_000,
        max_bytes: usize::MAX,
    }
}

#[tokio::test(start_paused = true)]
async fn durable_records_go_out_alone_to_a_destination_that_deduplicates() {
    use weir_pipeline::ticket::{testing::Completed, Ticket};
    // (destination deduplicates, fed by a durable log) → requests, by items.
    let cases = [
        (true, true, vec![5, 7, 3, 4]),
        (false, true, vec![19]),
        (true, false, vec![19]),
    ];
    for (deduplicates, durable, want) in cases {
        let rec = Arc::new(Recorder {
            deduplicates,
            ..Arc::into_inner(Recorder::new(0, ExportError::retryable("x", "x"))).unwrap()
        });
        let sink = Arc::new(Completed::default());
        let (tx, rx) = bounded(limits());
        for (seq, items) in [(1, 5), (2, 7), (3, 3)] {
            tx.try_send(batch(items).with_ticket(Ticket::new(seq, sink.clone())))
                .unwrap();
        }
        // Items without a record (span metrics, say) still wait to fill a request.
        tx.try_send(batch(2)).unwrap();
        tx.try_send(batch(2)).unwrap();
        drop(tx);
        let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
        let settings = DeliverySettings {
            durable,
            ..settings()
        };
        deliver(
            "r".into(),
            rec.clone(),
            rx,
            settings,
            m,
            std::future::pending(),
        )
        .await;
        assert_eq!(
            *rec.sent.lock().unwrap(),
            want,
            "deduplicates={deduplicates} durable={durable}"
        );
        assert_eq!(sink.seqs(), vec![1, 2, 3]);
    }
}

#[tokio::test(start_paused = true)]
async fn batches_by_items_and_flushes_by_age_and_on_close() {
    let registry = Registry::new();
    let rec = Recorder::new(0, ExportError::retryable("x", "x"));
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&registry, "r", "logs");
    let task = tokio::spawn(deliver(
        "r".into(),
        rec.clone(),
        rx,
        settings(),
        m.clone(),
        std::future::pending(),
    ));
    for _ in 0..4 {
        tx.try_send(batch(30)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        *rec.sent.lock().unwrap(),
        vec![90],
        "sent before the batch that would take it over 100, so nothing needs splitting"
    );
    tx.try_send(batch(7)).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        rec.sent.lock().unwrap().len(),
        1,
        "young partial batch waits"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*rec.sent.lock().unwrap(), vec![90, 37], "flushed by age");
    tx.try_send(batch(3)).unwrap();
    drop(tx);
    task.await.unwrap();
    assert_eq!(
        *rec.sent.lock().unwrap(),
        vec![90, 37, 3],
        "flushed on close"
    );
    assert_eq!(m.sent_items.get(), 130);
}

#[tokio::test(start_paused = true)]
async fn retries_retryable_errors_then_delivers() {
    let (rec, m) = deliver_one_batch_of_5(3, ExportError::retryable("io", "disk hiccup")).await;
    assert_eq!(*rec.sent.lock().unwrap(), vec![5]);
    assert_eq!(m.retries.get(), 3);
    assert_eq!(m.sent_items.get(), 5);
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_counted_not_retried() {
    let (rec, m) =
        deliver_one_batch_of_5(usize::MAX, ExportError::permanent("rejected", "bad schema")).await;
    assert_eq!(rec.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(m.failed("rejected").get(), 5);
}

#[tokio::test(start_paused = true)]
async fn abort_counts_pending_in_flight_and_queued_items() {
    let registry = Registry::new();
    let rec = Recorder::new(usize::MAX, ExportError::retryable("io", "down"));
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&registry, "r", "logs");
    let mut s = settings();
    s.max_in_flight = 1;
    s.max_items = 10;
    for _ in 0..3 {
        tx.try_send(batch(10)).unwrap();
    }
    let abort = tokio::time::sleep(Duration::from_secs(3));
    deliver("r".into(), rec.clone(), rx, s, m.clone(), abort).await;
    assert_eq!(
        m.failed("shutdown_deadline").get(),
        30,
        "in flight + waiting for a permit + queued"
    );
    assert_eq!(m.sent_items.get(), 0);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_exporter_not_ready_by_the_deadline_leaves_its_queue_counted_as_undelivered() {
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    for _ in 0..3 {
        tx.try_send(batch(10)).unwrap();
    }
    let never = std::future::pending::<Arc<Recorder>>();
    let abort = tokio::time::sleep(Duration::from_secs(3));
    deliver_once_ready("r".into(), never, rx, settings(), m.clone(), abort).await;
    assert_eq!(m.failed("shutdown_deadline").get(), 30);
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_exporter_never_ready_with_nothing_queued_does_not_hold_up_shutdown() {
    let (tx, rx) = bounded::<Batch<Logs>>(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    drop(tx);
    let never = std::future::pending::<Arc<Recorder>>();
    let done = tokio::time::timeout(
        Duration::from_secs(5),
        deliver_once_ready(
            "r".into(),
            never,
            rx,
            settings(),
            m.clone(),
            std::future::pending(),
        ),
    )
    .await;
    assert!(
        done.is_ok(),
        "still waiting for an exporter with nothing to deliver"
    );
    assert_eq!(m.failed("shutdown_deadline").get(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_exporter_ready_late_delivers_what_waited_for_it() {
    let rec = Recorder::new(0, ExportError::retryable("io", "down"));
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    tx.try_send(batch(5)).unwrap();
    drop(tx);
    let ready = {
        let rec = rec.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            rec
        }
    };
    deliver_once_ready(
        "r".into(),
        ready,
        rx,
        settings(),
        m.clone(),
        std::future::pending(),
    )
    .await;
    assert_eq!(*rec.sent.lock().unwrap(), [5]);
    assert_eq!(m.failed("shutdown_deadline").get(), 0);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_elapsed_and_counts_it() {
    let (_, m) = deliver_one_batch_of_5(usize::MAX, ExportError::retryable("io", "down")).await;
    assert_eq!(m.failed("retries_exhausted").get(), 5);
    assert!(m.retries.get() >= 4, "retried before giving up");
    assert_eq!(m.sent_items.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_error_about_part_of_a_request_counts_the_rest_as_sent() {
    let (_, m) = deliver_one_batch_of_5(
        1,
        ExportError::permanent("rejected", "one backend").for_items(2),
    )
    .await;
    assert_eq!((m.failed("rejected").get(), m.sent_items.get()), (2, 3));
    let (_, m) = deliver_one_batch_of_5(
        usize::MAX,
        ExportError::retryable("io", "down").for_items(4),
    )
    .await;
    assert_eq!(
        (m.failed("retries_exhausted").get(), m.sent_items.get()),
        (4, 1)
    );
}

/// Panics on every send.
struct Panicker;

impl Exporter<Logs> for Panicker {
    type Request = usize;
    fn kind(&self) -> &'static str {
        "panicker"
    }
    fn encode(&self, batch: Batch<Logs>) -> Result<Vec<Encoded<usize>>, ExportError> {
        Ok(vec![Encoded {
            request: batch.items(),
            items: batch.items(),
            bytes: 0,
        }])
    }
    async fn send(&self, _: &usize) -> Result<(), ExportError> {
        panic!("a bug in an exporter")
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_send_is_counted_and_leaves_its_record_incomplete() {
    use weir_pipeline::ticket::{testing::Completed, Ticket};
    let sink = Arc::new(Completed::default());
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "p", "logs");
    tx.try_send(batch(5).with_ticket(Ticket::new(9, sink.clone())))
        .unwrap();
    drop(tx);
    deliver(
        "p".into(),
        Arc::new(Panicker),
        rx,
        settings(),
        m.clone(),
        std::future::pending(),
    )
    .await;
    assert_eq!(m.failed("panic").get(), 5);
    assert_eq!(m.sent_items.get(), 0);
    assert!(
        sink.seqs().is_empty(),
        "the record must be replayed, not completed"
    );
}

#[tokio::test(start_paused = true)]
async fn merged_batches_never_make_a_request_over_the_limit() {
    let rec = Recorder::new(0, ExportError::retryable("x", "x"));
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    for _ in 0..3 {
        tx.try_send(batch(80)).unwrap();
    }
    tx.try_send(batch(1000)).unwrap();
    drop(tx);
    deliver(
        "r".into(),
        rec.clone(),
        rx,
        settings(),
        m.clone(),
        std::future::pending(),
    )
    .await;
    let sent = rec.sent.lock().unwrap().clone();
    assert!(sent.iter().all(|&n| n <= 100), "{sent:?}");
    assert_eq!(sent.iter().sum::<usize>(), 1240);
    assert_eq!(m.sent_items.get(), 1240);
    assert_eq!(m.received_items.get(), 1240);
}

#[tokio::test(start_paused = true)]
async fn requests_are_filled_to_max_bytes_on_the_wire_not_in_memory() {
    let rec = Recorder::new(0, ExportError::retryable("x", "x"));
    let (tx, rx) = bounded(limits());
    let m = DeliveryMetrics::new(&Registry::new(), "r", "logs");
    // Decoded batches weigh about 2.5× their encoded size; max_bytes is about requests.
    let one = batch(10);
    let encoded = one.encoded_bytes();
    for _ in 0..4 {
        let b = batch(10);
        tx.try_send(Batch::received(b.resources, encoded * 5 / 2, encoded))
            .unwrap();
    }
    drop(tx);
    let settings = DeliverySettings {
        max_bytes: encoded * 4,
        ..settings()
    };
    deliver(
        "r".into(),
        rec.clone(),
        rx,
        settings,
        m,
        std::future::pending(),
    )
    .await;
    assert_eq!(
        *rec.sent.lock().unwrap(),
        vec![40],
        "four batches fill one request of 4 × their encoded size"
    );
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_capped_at_the_policys_maximum() {
    let start = Instant::now();
    let (rec, m) = deliver_one_batch_of_5(
        2,
        ExportError::retry_after("http_retryable", "429", Some(Duration::MAX)),
    )
    .await;
    assert_eq!(*rec.sent.lock().unwrap(), vec![5]);
    assert_eq!(m.sent_items.get(), 5);
    let waited = start.elapsed();
    assert!(
        waited <= settings().max_backoff * 2 + Duration::from_millis(100),
        "{waited:?}"
    );
}
