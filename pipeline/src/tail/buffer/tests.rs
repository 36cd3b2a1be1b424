use super::*;
use crate::fixtures;
use crate::tail::policy::{Condition, TailRule};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Status};
use std::time::Duration;

fn policy(rules: Vec<(&str, Condition)>) -> TailPolicy {
    TailPolicy {
        enabled: true,
        rules: rules
            .into_iter()
            .map(|(name, condition)| TailRule {
                name: name.into(),
                condition,
                action: crate::tail::policy::Effect::Keep,
                budget: None,
            })
            .collect(),
        decision_wait: Duration::from_secs(10),
        root_wait: Duration::from_secs(1),
        max_traces: 10_000,
        max_bytes: 64 << 20,
        cache_size: 10_000,
        attribute: Some("weir.sampling.policy".into()),
        logs_with_trace: true,
    }
}

fn errors_and_slow() -> TailPolicy {
    policy(vec![
        ("errors", Condition::Error),
        ("slow", Condition::Latency(1_000_000_000)),
    ])
}

/// Span `n` of trace `t`; span 0 is the root.
fn span(t: u64, n: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(t + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&(t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1).to_be_bytes());
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        parent_span_id: if n == 0 {
            vec![]
        } else {
            1u64.to_be_bytes().to_vec()
        },
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        ..Span::default()
    }
}

fn batch(spans: Vec<Span>) -> Batch<Traces> {
    let mut rs = fixtures::resource_spans(1, 0);
    rs[0].scope_spans[0].spans = spans;
    Batch::measured(rs)
}

fn spans_of(b: &Batch<Traces>) -> Vec<&Span> {
    b.resources
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect()
}

fn error(mut s: Span) -> Span {
    s.status = Some(Status {
        code: StatusCode::Error as i32,
        message: String::new(),
    });
    s
}

#[test]
fn root_and_wait_triggers_keep_matching_traces_whole() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    // Trace 1 errs in a child, trace 2 is slow, trace 3 is neither; children arrive before roots.
    let mut slow = span(2, 1);
    slow.end_time_unix_nano = 5_000_000_000;
    buf.push(
        batch(vec![error(span(1, 1)), slow, span(3, 1), span(1, 2)]),
        &p,
        t0,
    );
    buf.push(
        batch(vec![span(1, 0), span(2, 0), span(3, 0)]),
        &p,
        t0 + Duration::from_millis(100),
    );
    assert_eq!(buf.traces(), 3);
    buf.due(&p, t0 + Duration::from_millis(1099));
    assert!(buf.take_output().is_none(), "root_wait not over yet");
    assert_eq!(
        buf.next_deadline(&p),
        Some(t0 + Duration::from_millis(1100))
    );
    buf.due(&p, t0 + Duration::from_millis(1100));
    let out = buf.take_output().unwrap();
    let kept = spans_of(&out);
    assert_eq!(kept.len(), 5, "3 spans of trace 1, 2 of trace 2");
    assert!(kept.iter().all(|s| s.trace_id != span(3, 0).trace_id));
    assert_eq!(out.items(), 5);
    let tag = |s: &Span| match &s.attributes.last().unwrap().value.as_ref().unwrap().value {
        Some(Value::StringValue(v)) => v.clone(),
        _ => panic!(),
    };
    assert!(kept
        .iter()
        .filter(|s| s.trace_id == span(1, 0).trace_id)
        .all(|s| tag(s) == "errors"));
    assert!(kept
        .iter()
        .filter(|s| s.trace_id == span(2, 0).trace_id)
        .all(|s| tag(s) == "slow"));
    assert_eq!(
        out.resources[0].resource,
        fixtures::resource_spans(1, 0)[0].resource
    );
    let verdicts: Vec<_> = buf
        .report
        .decided
        .iter()
        .map(|d| (d.verdict.clone(), d.trigger, d.spans, d.logs))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Keep("errors".into()), Trigger::Root, 3, 0),
            (Verdict::Keep("slow".into()), Trigger::Root, 2, 0),
            (Verdict::NoMatch, Trigger::Root, 2, 0),
        ]
    );
    assert_eq!((buf.traces(), buf.bytes()), (0, 0));

    // No root ever: decided at decision_wait.
    buf.push(batch(vec![error(span(4, 3))]), &p, t0);
    assert_eq!(buf.next_deadline(&p), Some(t0 + Duration::from_secs(10)));
    buf.due(&p, t0 + Duration::from_secs(10));
    assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 1);
    assert_eq!(buf.report.decided.last().unwrap().trigger, Trigger::Wait);
}

#[test]
fn late_spans_follow_the_decision() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(batch(vec![error(span(1, 0)), span(2, 0)]), &p, t0);
    buf.due(&p, t0 + Duration::from_secs(2));
    assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 1);
    buf.push(
        batch(vec![span(1, 5), span(2, 5), span(2, 6)]),
        &p,
        t0 + Duration::from_secs(3),
    );
    let late = buf.take_output().unwrap();
    assert_eq!(
        spans_of(&late).len(),
        1,
        "trace 1 was kept, so its late span is too"
    );
    assert_eq!(spans_of(&late)[0].span_id, span(1, 5).span_id);
    assert_eq!(
        buf.report.late_spans,
        Late {
            kept: 1,
            dropped: 2
        }
    );
    assert_eq!(buf.traces(), 0, "late spans are not held again");
}

#[test]
fn held_spans_keep_their_records_open_until_decided_and_delivered() {
    use crate::ticket::{testing::Completed, Ticket};
    let p = errors_and_slow();
    let sink = Arc::new(Completed::default());
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(
        batch(vec![error(span(1, 0)), span(2, 0)]).with_ticket(Ticket::new(1, sink.clone())),
        &p,
        t0,
    );
    buf.push(
        batch(vec![span(2, 1)]).with_ticket(Ticket::new(2, sink.clone())),
        &p,
        t0,
    );
    assert!(buf.take_output().is_none());
    assert!(sink.seqs().is_empty(), "held spans keep both records open");
    buf.due(&p, t0 + Duration::from_secs(2));
    assert_eq!(sink.seqs(), vec![2], "record 2 only fed a dropped trace");
    let out = buf.take_output().unwrap();
    assert_eq!(
        out.tickets().iter().map(Ticket::seq).collect::<Vec<_>>(),
        vec![1]
    );
    drop(out);
    assert_eq!(
        sink.seqs(),
        vec![1, 2],
        "delivered output completes record 1"
    );
}

#[test]
fn a_million_open_traces_stay_within_the_bounds_and_every_span_is_accounted() {
    let mut p = errors_and_slow();
    p.max_traces = 20_000;
    p.max_bytes = 8 << 20;
    p.cache_size = 50_000;
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    let (mut kept, mut decided, mut peak_traces, mut peak_bytes) = (0, 0, 0, 0);
    for chunk in 0..1000u64 {
        // Child spans only: no trace ever reaches its root trigger; every 100th errs.
        let spans = (0..1000)
            .map(|i| {
                let t = chunk * 1000 + i;
                if t % 100 == 0 {
                    error(span(t, 1))
                } else {
                    span(t, 1)
                }
            })
            .collect();
        buf.push(batch(spans), &p, t0);
        peak_traces = peak_traces.max(buf.traces());
        peak_bytes = peak_bytes.max(buf.bytes());
        if let Some(b) = buf.take_output() {
            kept += b.items();
        }
        decided += std::mem::take(&mut buf.report.decided).len();
    }
    assert!(peak_traces <= 20_000, "{peak_traces} traces held");
    assert!(peak_bytes <= 8 << 20, "{peak_bytes} bytes held");
    buf.flush(&p, t0);
    kept += buf.take_output().map_or(0, |b| b.items());
    decided += buf.report.decided.len();
    assert_eq!(
        decided, 1_000_000,
        "every trace decided, none evicted unseen"
    );
    assert_eq!(kept, 10_000, "exactly the erring traces kept");
    assert!(buf.cached() <= 50_000);
    assert!(buf.by_first.len() <= 2 * buf.traces() + 1024);
}

#[test]
fn flush_decides_everything_and_disabled_passes_through() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(batch(vec![error(span(1, 1)), span(2, 1)]), &p, t0);
    // A reload switches tail sampling off: what is held goes out kept, new spans pass straight.
    let off = TailPolicy::disabled();
    buf.push(batch(vec![span(3, 1)]), &off, t0);
    let out = buf.take_output().unwrap();
    assert_eq!(spans_of(&out).len(), 3);
    assert!(
        spans_of(&out).iter().all(|s| s.attributes.is_empty()),
        "no policy to name"
    );
    assert_eq!(buf.traces(), 0);
}

#[test]
fn spans_without_a_trace_pass_through() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let mut zero = span(1, 0);
    zero.trace_id = vec![0; 16];
    buf.push(batch(vec![zero.clone(), zero]), &p, Instant::now());
    assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 2);
    assert_eq!(buf.traces(), 0);
}

#[test]
fn a_reload_keeps_held_spans_and_decides_them_under_the_new_rules() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(batch(vec![span(1, 0), span(1, 1)]), &p, t0);
    let everything = policy(vec![("all", Condition::Any)]);
    buf.due(&everything, t0 + Duration::from_secs(1));
    assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 2);
}

/// A log record of trace `t` (no trace when `t` is None) at `severity`.
fn log(t: Option<u64>, severity: i32) -> LogRecord {
    LogRecord {
        trace_id: t.map_or_else(Vec::new, |t| span(t, 0).trace_id),
        span_id: t.map_or_else(Vec::new, |_| 1u64.to_be_bytes().to_vec()),
        severity_number: severity,
        ..LogRecord::default()
    }
}

fn logs(records: Vec<LogRecord>) -> Batch<Logs> {
    let mut rl = fixtures::resource_logs(1, 0);
    rl[0].scope_logs[0].log_records = records;
    Batch::measured(rl)
}

fn records_of(b: &Batch<Logs>) -> Vec<&LogRecord> {
    b.resources
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .collect()
}

/// Adds what the buffer has output, spans and logs per trace id.
fn count_output(buf: &mut TailBuffer, got: &mut HashMap<Vec<u8>, (usize, usize)>) {
    for s in buf.take_output().iter().flat_map(spans_of) {
        got.entry(s.trace_id.clone()).or_default().0 += 1;
    }
    for r in buf.take_logs().iter().flat_map(records_of) {
        got.entry(r.trace_id.clone()).or_default().1 += 1;
    }
}

const ERROR: i32 = 17;
const INFO: i32 = 9;

#[test]
fn logs_leave_with_their_traces_decision_and_late_logs_follow_it() {
    let p = errors_and_slow();
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    // Logs arrive before and with the spans; trace 1 errs, trace 2 does not.
    buf.push(logs(vec![log(Some(1), INFO), log(Some(2), INFO)]), &p, t0);
    buf.push(batch(vec![error(span(1, 0)), span(2, 0)]), &p, t0);
    buf.push(logs(vec![log(Some(1), INFO), log(Some(2), INFO)]), &p, t0);
    assert_eq!(buf.traces(), 2, "logs and spans of a trace are one entry");
    assert!(buf.take_logs().is_none(), "held until the decision");
    buf.due(&p, t0 + Duration::from_secs(1));
    let kept = buf.take_logs().unwrap();
    let records = records_of(&kept);
    assert_eq!(records.len(), 2, "both logs of the erring trace");
    assert!(records.iter().all(|r| r.trace_id == span(1, 0).trace_id));
    assert_eq!(
        crate::attrs::string(&records[0].attributes, "weir.sampling.policy"),
        Some("errors"),
        "kept logs name the policy like spans do"
    );
    assert_eq!(spans_of(&buf.take_output().unwrap()).len(), 1);
    let decided: Vec<_> = buf
        .report
        .decided
        .iter()
        .map(|d| (d.spans, d.logs))
        .collect();
    assert_eq!(decided, [(1, 2), (1, 2)]);

    buf.push(
        logs(vec![
            log(Some(1), INFO),
            log(Some(2), ERROR),
            log(Some(2), INFO),
        ]),
        &p,
        t0 + Duration::from_secs(2),
    );
    assert_eq!(records_of(&buf.take_logs().unwrap()).len(), 1);
    assert_eq!(
        buf.report.late_logs,
        Late {
            kept: 1,
            dropped: 2
        }
    );
    assert_eq!(buf.traces(), 0, "late logs are not held again");
}

#[test]
fn an_error_log_saves_a_trace_with_no_error_span() {
    let p = policy(vec![("error-logs", Condition::LogSeverity(ERROR))]);
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(batch(vec![span(1, 0), span(1, 1), span(2, 0)]), &p, t0);
    buf.push(logs(vec![log(Some(1), ERROR), log(Some(2), INFO)]), &p, t0);
    buf.due(&p, t0 + Duration::from_secs(1));
    assert_eq!(
        spans_of(&buf.take_output().unwrap()).len(),
        2,
        "trace 1 whole"
    );
    assert_eq!(records_of(&buf.take_logs().unwrap()).len(), 1);
    assert_eq!(buf.report.decided[1].verdict, Verdict::NoMatch);
}

#[test]
fn logs_without_a_trace_pass_and_a_logs_only_trace_waits_its_turn() {
    let p = policy(vec![("error-logs", Condition::LogSeverity(ERROR))]);
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    buf.push(logs(vec![log(None, INFO), log(Some(5), ERROR)]), &p, t0);
    assert_eq!(
        records_of(&buf.take_logs().unwrap()).len(),
        1,
        "no trace id: passes"
    );
    assert_eq!(buf.traces(), 1);
    assert_eq!(
        buf.next_deadline(&p),
        Some(t0 + p.decision_wait),
        "no root span: decided at decision_wait"
    );
    buf.due(&p, t0 + p.decision_wait);
    assert_eq!(records_of(&buf.take_logs().unwrap()).len(), 1);
    assert_eq!(buf.report.decided[0].trigger, Trigger::Wait);
}

#[test]
fn a_million_open_traces_with_logs_stay_within_the_bounds() {
    let mut p = errors_and_slow();
    p.max_traces = 20_000;
    p.max_bytes = 8 << 20;
    p.cache_size = 50_000;
    let mut buf = TailBuffer::default();
    let t0 = Instant::now();
    let (mut kept_spans, mut kept_logs, mut decided, mut peak_bytes) = (0, 0, 0, 0);
    for chunk in 0..1000u64 {
        let ids = (0..1000).map(|i| chunk * 1000 + i);
        let spans = ids
            .clone()
            .map(|t| {
                if t % 100 == 0 {
                    error(span(t, 1))
                } else {
                    span(t, 1)
                }
            })
            .collect();
        // Two log records per trace; the logs arrive first.
        buf.push(
            logs(
                ids.flat_map(|t| [log(Some(t), INFO), log(Some(t), INFO)])
                    .collect(),
            ),
            &p,
            t0,
        );
        peak_bytes = peak_bytes.max(buf.bytes());
        buf.push(batch(spans), &p, t0);
        peak_bytes = peak_bytes.max(buf.bytes());
        assert!(buf.traces() <= 20_000);
        kept_spans += buf.take_output().map_or(0, |b| b.items());
        kept_logs += buf.take_logs().map_or(0, |b| b.items());
        decided += std::mem::take(&mut buf.report.decided).len();
    }
    assert!(peak_bytes <= 8 << 20, "{peak_bytes} bytes held");
    buf.flush(&p, t0);
    kept_spans += buf.take_output().map_or(0, |b| b.items());
    kept_logs += buf.take_logs().map_or(0, |b| b.items());
    decided += buf.report.decided.len();
    assert_eq!(
        decided, 1_000_000,
        "every trace decided, none evicted unseen"
    );
    // A trace decided under pressure before its spans came is decided on its logs alone (dropped);
    // its spans then follow that decision as late spans. Either way spans and logs agree.
    assert_eq!(
        kept_logs,
        2 * kept_spans,
        "every kept trace kept both its logs"
    );
    assert!(kept_spans <= 10_000);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Spans and logs of 40 traces arrive in random order, split across random batches and times,
    /// with reloads between policies; a trace's spans and logs always share one fate.
    #[test]
    fn a_traces_spans_and_logs_share_one_decision(
        events in proptest::collection::vec((0u64..40, proptest::bool::ANY, 0u8..4, 0u64..30), 1..300),
        reloads in proptest::collection::vec(0usize..300, 0..4),
    ) {
        let policies = [
            errors_and_slow(),
            policy(vec![("error-logs", Condition::LogSeverity(ERROR))]),
            policy(vec![("half", Condition::Probability(crate::stages::threshold::Threshold::from_probability(0.5)))]),
        ];
        let mut buf = TailBuffer::default();
        let t0 = Instant::now();
        let mut sent: HashMap<Vec<u8>, (usize, usize)> = HashMap::new();
        let mut got: HashMap<Vec<u8>, (usize, usize)> = HashMap::new();
        let mut current = 0;
        for (i, (t, is_span, kind, at)) in events.into_iter().enumerate() {
            if reloads.contains(&i) {
                current = (current + 1) % policies.len();
            }
            let p = &policies[current];
            let now = t0 + Duration::from_millis(at * 500 + i as u64);
            let id = span(t, 0).trace_id;
            let entry = sent.entry(id).or_default();
            if is_span {
                entry.0 += 1;
                let s = if kind == 0 { error(span(t, u64::from(kind) + 1)) } else { span(t, u64::from(kind)) };
                buf.push(batch(vec![s]), p, now);
            } else {
                entry.1 += 1;
                buf.push(logs(vec![log(Some(t), if kind == 0 { ERROR } else { INFO })]), p, now);
            }
            buf.due(p, now);
            count_output(&mut buf, &mut got);
        }
        buf.flush(&policies[current], t0 + Duration::from_secs(3600));
        count_output(&mut buf, &mut got);
        for (id, (spans, logs)) in &sent {
            let out = got.get(id).copied().unwrap_or_default();
            // Kept: everything that arrived while held or after the keep; dropped: none of it. The
            // cache is large enough here that no trace is decided twice.
            proptest::prop_assert!(out == (0, 0) || out == (*spans, *logs), "trace {id:?}: sent {spans}/{logs}, got {out:?}");
        }
    }
}
