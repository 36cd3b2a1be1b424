//! Flushes: what the totals look like as OTLP over time, and the flusher thread's life.

use super::*;
use crate::queue::{bounded, Limits};
use crate::stage::Stage;
use crate::{Batch, Traces};
use std::time::Duration;

#[test]
fn flushes_are_cumulative_from_one_start_time() {
    let (m, _) = metrics("{namespace: rpc}", 1);
    let batch = || {
        vec![resource(
            "svc",
            vec![],
            vec![span("op", 2, 3, vec![]), span("op", 0, 3, vec![])],
        )]
    };
    assert!(
        m.resource_metrics(SystemTime::now()).is_empty(),
        "nothing to say before a span"
    );
    m.record(&batch());
    let first = m.resource_metrics(SystemTime::now());
    m.record(&batch());
    let second = m.resource_metrics(SystemTime::now() + Duration::from_secs(1));
    assert_eq!(
        sums(&first),
        [
            (
                "service=svc;span.name=op,span.kind=SPAN_KIND_SERVER,status.code=STATUS_CODE_ERROR"
                    .into(),
                1
            ),
            (
                "service=svc;span.name=op,span.kind=SPAN_KIND_SERVER,status.code=STATUS_CODE_UNSET"
                    .into(),
                1
            ),
        ]
    );
    assert_eq!(
        sums(&second).iter().map(|(_, v)| *v).collect::<Vec<_>>(),
        [2, 2]
    );
    let metric = &second[0].scope_metrics[0].metrics;
    assert_eq!(
        (metric[0].name.as_str(), metric[0].unit.as_str()),
        ("rpc.calls", "1")
    );
    assert_eq!(
        (metric[1].name.as_str(), metric[1].unit.as_str()),
        ("rpc.duration", "ms")
    );
    let Some(Data::Sum(s1)) = &first[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    let Some(Data::Sum(s2)) = &metric[0].data else {
        panic!()
    };
    assert!(
        s2.is_monotonic && s2.aggregation_temporality == 2,
        "cumulative"
    );
    assert_eq!(
        s1.data_points[0].start_time_unix_nano,
        s2.data_points[0].start_time_unix_nano
    );
    assert!(s2.data_points[0].time_unix_nano > s1.data_points[0].time_unix_nano);
}
#[test]
fn the_flusher_sends_every_interval_and_once_more_when_the_stage_is_gone() {
    let (m, registry) = metrics("{interval: 20ms}", 1);
    let stage = m.stage();
    let (tx, rx) = bounded::<Batch<crate::Metrics>>(Limits {
        max_items: 1000,
        max_bytes: 1 << 20,
    });
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = finished.clone();
    let flusher = m
        .spawn_flusher(tx, move || {
            f.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .unwrap();
    let mut batch = Batch::<Traces>::measured(vec![resource(
        "svc",
        vec![],
        vec![span("op", 0, 1, vec![])],
    )]);
    stage.apply(&mut batch);
    assert_eq!(batch.items(), 1, "the stage changes nothing");
    let first = rx.recv_blocking().unwrap();
    assert_eq!(sums(&first.resources)[0].1, 1);
    stage.apply(&mut batch);
    drop(stage);
    flusher.join().unwrap();
    assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    let last = std::iter::from_fn(|| rx.try_recv()).last().unwrap();
    assert_eq!(
        sums(&last.resources)[0].1,
        2,
        "the final flush carries every span"
    );
    // A full queue drops the flush, and says so.
    let (tx, _rx) = bounded::<Batch<crate::Metrics>>(Limits {
        max_items: 1,
        max_bytes: 1 << 20,
    });
    m.flush(&tx, false);
    m.flush(&tx, false);
    assert!(registry
        .render()
        .contains("weir_span_metrics_dropped_flushes_total 1\n"));
}
