use super::*;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::trace::v1::Status;

/// A trace as conditions see it: spans and logs under one resource.
#[derive(Default)]
pub(crate) struct T {
    pub id: Vec<u8>,
    pub spans: Vec<Span>,
    pub logs: Vec<LogRecord>,
    pub resource: Resource,
    pub bytes: usize,
}

impl TraceView for T {
    fn trace_id(&self) -> &[u8] {
        &self.id
    }
    fn spans(&self) -> impl Iterator<Item = (&Span, Option<&Resource>)> {
        self.spans.iter().map(|s| (s, Some(&self.resource)))
    }
    fn logs(&self) -> impl Iterator<Item = (&LogRecord, Option<&Resource>)> {
        self.logs.iter().map(|l| (l, Some(&self.resource)))
    }
    fn bytes(&self) -> usize {
        self.bytes
    }
}

pub(crate) fn span(start: u64, end: u64) -> Span {
    Span {
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Span::default()
    }
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn status(code: StatusCode) -> Option<Status> {
    Some(Status {
        code: code as i32,
        message: String::new(),
    })
}

fn attr(key: &str, values: &[&str]) -> AttrMatch {
    AttrMatch {
        key: key.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
        regex: None,
        invert: false,
    }
}

fn two_spans() -> T {
    T {
        id: vec![0; 16],
        spans: vec![span(0, 10), span(5, 30)],
        ..T::default()
    }
}

#[test]
fn error_latency_and_probability() {
    let mut t = two_spans();
    assert!(Condition::Latency(30).holds(&t), "trace spans 0..30");
    assert!(!Condition::Latency(31).holds(&t));
    assert!(!Condition::Error.holds(&t));
    t.spans[1].status = status(StatusCode::Error);
    assert!(Condition::Error.holds(&t));

    t.id = vec![0xff; 16];
    assert!(Condition::Probability(Threshold::from_probability(0.01)).holds(&t));
    t.id = vec![0; 16];
    assert!(!Condition::Probability(Threshold::from_probability(0.99)).holds(&t));
}

#[test]
fn attributes_by_value_regex_and_inverted() {
    let mut t = two_spans();
    assert!(!Condition::Attribute(attr("tier", &[])).holds(&t));
    t.resource
        .attributes
        .push(kv("tier", Value::StringValue("gold".into())));
    assert!(
        Condition::Attribute(attr("tier", &[])).holds(&t),
        "resource attributes count"
    );
    assert!(Condition::Attribute(attr("tier", &["silver", "gold"])).holds(&t));
    assert!(!Condition::Attribute(attr("tier", &["silver"])).holds(&t));
    t.spans[0].attributes.push(kv("n", Value::IntValue(3)));
    assert!(
        Condition::Attribute(attr("n", &["3"])).holds(&t),
        "non-string values compare by parse"
    );

    let re = |pattern: &str, invert| {
        Condition::Attribute(AttrMatch {
            regex: Some(Pattern(regex::Regex::new(pattern).unwrap())),
            invert,
            ..attr("http.route", &[])
        })
    };
    t.spans[1].attributes.push(kv(
        "http.route",
        Value::StringValue("/api/v2/orders".into()),
    ));
    assert!(re("^/api/v[0-9]+/", false).holds(&t));
    assert!(!re("^/healthz$", false).holds(&t));
    assert!(
        re("^/healthz$", true).holds(&t),
        "no span is a health check"
    );
    assert!(
        !re("orders", true).holds(&t),
        "one span matches, so inverted fails"
    );
    t.spans[0].attributes.push(kv("n2", Value::IntValue(404)));
    assert!(
        Condition::Attribute(AttrMatch {
            regex: Some(Pattern(regex::Regex::new("^4[0-9]{2}$").unwrap())),
            ..attr("n2", &[])
        })
        .holds(&t),
        "a regex sees a number as its text"
    );
}

#[test]
fn numbers_status_counts_and_size() {
    let mut t = two_spans();
    let numeric = |min: f64, max: f64| Condition::Numeric {
        key: "retries".into(),
        min,
        max,
    };
    assert!(!numeric(1.0, f64::INFINITY).holds(&t));
    t.spans[1]
        .attributes
        .push(kv("retries", Value::IntValue(4)));
    assert!(numeric(3.0, f64::INFINITY).holds(&t));
    assert!(!numeric(5.0, 9.0).holds(&t));
    t.spans[1].attributes[0] = kv("retries", Value::DoubleValue(0.5));
    assert!(numeric(f64::NEG_INFINITY, 1.0).holds(&t));
    t.spans[0]
        .attributes
        .push(kv("retries", Value::StringValue("7".into())));
    assert!(!numeric(6.0, 8.0).holds(&t), "strings are not numbers");

    let unset = StatusCode::Unset as i32;
    let ok = StatusCode::Ok as i32;
    assert!(
        Condition::Status(vec![unset]).holds(&t),
        "no status is UNSET"
    );
    assert!(!Condition::Status(vec![ok]).holds(&t));
    t.spans[0].status = status(StatusCode::Ok);
    assert!(Condition::Status(vec![ok, StatusCode::Error as i32]).holds(&t));

    let count = |min, max| Condition::SpanCount { min, max };
    assert!(count(2, 2).holds(&t));
    assert!(!count(3, u64::MAX).holds(&t));
    assert!(count(0, 5).holds(&t));

    t.bytes = 10_000;
    let size = |min, max| Condition::TraceBytes { min, max };
    assert!(size(0, 10_000).holds(&t));
    assert!(!size(0, 9_999).holds(&t));
    assert!(size(5_000, usize::MAX).holds(&t));
}

#[test]
fn log_conditions_see_the_traces_records() {
    let mut t = two_spans();
    let error = 17;
    assert!(!Condition::LogSeverity(error).holds(&t), "no logs held");
    t.logs.push(LogRecord {
        severity_number: 9,
        ..LogRecord::default()
    });
    assert!(!Condition::LogSeverity(error).holds(&t));
    t.logs.push(LogRecord {
        severity_number: 18,
        attributes: vec![kv("exception.type", Value::StringValue("Timeout".into()))],
        ..LogRecord::default()
    });
    assert!(Condition::LogSeverity(error).holds(&t));
    assert!(Condition::LogAttribute(attr("exception.type", &["Timeout"])).holds(&t));
    assert!(
        !Condition::Attribute(attr("exception.type", &[])).holds(&t),
        "span conditions do not read log attributes"
    );
}

#[test]
fn and_needs_every_condition() {
    let mut t = two_spans();
    t.resource
        .attributes
        .push(kv("service.name", Value::StringValue("checkout".into())));
    let slow_checkout = Condition::And(vec![
        Condition::Attribute(attr("service.name", &["checkout"])),
        Condition::Latency(25),
    ]);
    assert!(slow_checkout.holds(&t));
    t.spans[1].end_time_unix_nano = 20;
    assert!(!slow_checkout.holds(&t));
}
