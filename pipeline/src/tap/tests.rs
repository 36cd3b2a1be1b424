use super::*;
use crate::fixtures::{kv, resource_logs};
use crate::stage::{Chain, Stage};
use crate::Logs;

/// Drops records whose severity is below 9, explaining why, like the sampler does.
struct DropDebug;
impl Stage<Logs> for DropDebug {
    fn name(&self) -> &'static str {
        "sample"
    }
    fn apply(&self, batch: &mut Batch<Logs>) {
        for scope in batch.resources.iter_mut().flat_map(|r| &mut r.scope_logs) {
            scope.log_records.retain(|r| {
                let keep = r.severity_number >= 9;
                if !keep {
                    explain(&r.attributes, || "log rule debug".into());
                }
                keep
            });
        }
    }
}

/// Rewrites the `user` attribute, like redaction does.
struct MaskUser;
impl Stage<Logs> for MaskUser {
    fn name(&self) -> &'static str {
        "redact"
    }
    fn apply(&self, batch: &mut Batch<Logs>) {
        for r in batch
            .resources
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
            .flat_map(|s| &mut s.log_records)
        {
            if let Some(kv) = r.attributes.iter_mut().find(|kv| kv.key == "user") {
                *kv = crate::fixtures::kv("user", "****");
                explain(&r.attributes, || "detector email".into());
            }
        }
    }
}

/// A batch of `n` records tagged `test=tag`; record i has severity 5 (debug) when i is even, else 13,
/// and a `user` attribute when i % 3 == 0.
fn batch(tag: &str, n: usize) -> Batch<Logs> {
    let mut resources = resource_logs(1, n);
    for (i, r) in resources[0].scope_logs[0]
        .log_records
        .iter_mut()
        .enumerate()
    {
        r.severity_number = if i % 2 == 0 { 5 } else { 13 };
        r.attributes.push(kv("test", tag));
        if i % 3 == 0 {
            r.attributes.push(kv("user", "ann@example.com"));
        }
    }
    Batch::measured(resources)
}

fn filter(tag: &str) -> Filter {
    Filter {
        attribute: Some(("test".into(), tag.into())),
        ..Filter::default()
    }
}

fn lines(rx: &mut tokio::sync::mpsc::Receiver<String>) -> Vec<Json> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

fn chain() -> Chain<Logs> {
    Chain::new(vec![Box::new(DropDebug), Box::new(MaskUser)])
}

#[test]
fn a_tap_shows_each_items_fate_and_leaves_the_batch_as_the_chain_made_it() {
    let mut untapped = batch("fates", 6);
    chain().apply(&mut untapped);

    let (attached, mut rx) = attach(filter("fates"), 100, 1000);
    let mut tapped = batch("fates", 6);
    chain().apply(&mut tapped);
    drop(attached);

    assert_eq!(
        tapped.resources, untapped.resources,
        "no mark is left behind"
    );
    assert_eq!(tapped.bytes(), untapped.bytes());
    let got = lines(&mut rx);
    let at = |point: &str, fate: &str| {
        got.iter()
            .filter(|l| l["point"] == point && l["fate"] == fate)
            .collect::<Vec<_>>()
    };
    assert_eq!(at("receive", "received").len(), 6);
    let dropped = at("sample", "dropped");
    assert_eq!(dropped.len(), 3, "{got:#?}");
    assert!(dropped.iter().all(|l| l["reason"] == "log rule debug"));
    assert_eq!(at("sample", "passed").len(), 3);
    // Records 3 (kept, has a user) is changed by redaction; 1 and 5 pass.
    let changed = at("redact", "changed");
    assert_eq!(changed.len(), 1, "{got:#?}");
    assert_eq!(changed[0]["changed"], json!(["attributes.user"]));
    assert_eq!(changed[0]["reason"], "detector email");
    let user = changed[0]["log_record"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == "user")
        .unwrap();
    assert_eq!(user["value"]["stringValue"], "****");
    assert_eq!(at("redact", "passed").len(), 2);
    assert!(got.iter().all(|l| l["service"] == "checkout-0"));
}

#[test]
fn a_tap_takes_at_most_its_rate_and_only_what_its_filter_wants() {
    let (attached, mut rx) = attach(
        Filter {
            points: vec!["receive".into()],
            ..filter("rate")
        },
        4,
        1000,
    );
    chain().apply(&mut batch("rate", 50));
    chain().apply(&mut batch("other", 50));
    chain().apply(&mut batch("rate", 50));
    drop(attached);
    let got = lines(&mut rx);
    // Both batches may fall in two different seconds: at most two allowances.
    assert!((4..=8).contains(&got.len()), "{}", got.len());
    assert!(got.iter().all(|l| l["point"] == "receive"));
}

#[test]
fn a_slow_reader_loses_lines_and_is_told_how_many_instead_of_holding_the_chain() {
    let (attached, mut rx) = attach(filter("slow"), 1000, 2);
    chain().apply(&mut batch("slow", 20));
    let first = lines(&mut rx);
    assert_eq!(
        first.len(),
        2,
        "the channel held two lines; the rest were lost"
    );
    chain().apply(&mut batch("slow", 1));
    let next = lines(&mut rx);
    drop(attached);
    assert!(next[0]["lost_before"].as_u64().unwrap() > 10, "{next:?}");
}

#[test]
fn exporting_reports_items_handed_to_an_exporter_and_nothing_without_a_tap() {
    let mut b = batch("export", 3);
    exporting("clickhouse", &mut b);
    let (attached, mut rx) = attach(
        Filter {
            points: vec!["export".into()],
            ..filter("export")
        },
        100,
        100,
    );
    exporting("clickhouse", &mut b);
    chain().apply(&mut b);
    drop(attached);
    let got = lines(&mut rx);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.iter().all(|l| l["exporter"] == "clickhouse"));
}

#[test]
fn changed_names_fields_and_attributes_by_key() {
    let a = kv("a", "1");
    let mut b = a.clone();
    b.key = "b".into();
    assert_eq!(changed(&a, &b), ["key"]);
    let r1 = crate::fixtures::resource_logs(1, 1)[0].scope_logs[0].log_records[0].clone();
    let mut r2 = r1.clone();
    r2.attributes.push(kv("new", "x"));
    r2.severity_number = 1;
    assert_eq!(changed(&r1, &r2), ["attributes.new", "severityNumber"]);
}

/// Drops every other span, explaining it like head sampling does.
struct DropOdd;
impl Stage<crate::Traces> for DropOdd {
    fn name(&self) -> &'static str {
        "sample"
    }
    fn apply(&self, batch: &mut Batch<crate::Traces>) {
        for scope in batch.resources.iter_mut().flat_map(|r| &mut r.scope_spans) {
            let mut i = 0;
            scope.spans.retain(|s| {
                i += 1;
                if i % 2 == 0 {
                    explain(&s.attributes, || "head sampling".into());
                }
                i % 2 == 1
            });
        }
    }
}

#[test]
fn a_trace_id_filter_follows_one_trace_and_a_signal_filter_excludes_the_others() {
    let wanted = vec![0xE7; 16];
    let spans = || {
        let mut resources = crate::fixtures::resource_spans(1, 12);
        for (n, s) in resources[0].scope_spans[0].spans.iter_mut().enumerate() {
            if n < 4 {
                s.trace_id = wanted.clone();
            }
        }
        Batch::<crate::Traces>::measured(resources)
    };
    let chain = Chain::new(vec![Box::new(DropOdd) as Box<dyn Stage<crate::Traces>>]);
    let (by_trace, mut rx) = attach(
        Filter {
            trace_id: Some(wanted.clone()),
            ..Filter::default()
        },
        100,
        100,
    );
    let (logs_only, mut none) = attach(
        Filter {
            signal: Some(weir_config::SignalKind::Logs),
            trace_id: Some(wanted.clone()),
            ..Filter::default()
        },
        100,
        100,
    );
    chain.apply(&mut spans());
    drop((by_trace, logs_only));
    let got = lines(&mut rx);
    let received: Vec<&Json> = got.iter().filter(|l| l["fate"] == "received").collect();
    assert_eq!(received.len(), 4, "the trace's four spans: {got:#?}");
    assert!(received
        .iter()
        .all(|l| l["span"]["traceId"] == "e7".repeat(16)));
    let dropped: Vec<&Json> = got.iter().filter(|l| l["fate"] == "dropped").collect();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(|l| l["reason"] == "head sampling"));
    assert!(lines(&mut none).is_empty(), "a logs tap sees no spans");
}
