//! Redaction, proven on a corpus and by property:
//! - every detector's positives come out as expected and its negatives untouched;
//! - key rules, allowlist, hash, drop and drop_record act where they should, and are counted;
//! - redaction is idempotent, never leaves a corpus secret in its output, and leaves text that matches
//!   nothing byte for byte the same.

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{span::Event, ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use std::sync::Arc;
use weir_pipeline::metrics::Registry;
use weir_pipeline::stages::redact::{Redact, RedactPolicy};
use weir_pipeline::{Batch, Logs, Stage, Traces};

fn policy(yaml: &str) -> RedactPolicy {
    let text = format!(
        "pipeline:\n  redact:\n    enabled: true\n{yaml}exporters:\n  b: {{blackhole: {{}}}}\n"
    );
    let cfg = weir_config::parse(&text, "t.yaml", |_| None).unwrap();
    RedactPolicy::compile(&cfg.pipeline.redact, |k| {
        (k == "REDACT_KEY").then(|| "s3cret".into())
    })
    .unwrap()
}

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}

fn logs(records: Vec<LogRecord>) -> Batch<Logs> {
    Batch::measured(vec![ResourceLogs {
        scope_logs: vec![ScopeLogs {
            log_records: records,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn body_record(body: &str) -> LogRecord {
    LogRecord {
        body: s(body),
        ..Default::default()
    }
}

fn records(b: &Batch<Logs>) -> Vec<LogRecord> {
    b.resources
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| s.log_records.clone())
        .collect()
}

fn body(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    }
}

/// Redacts one string as a log body with the default detectors.
fn redact_text(stage: &Redact, text: &str) -> String {
    let mut b = logs(vec![body_record(text)]);
    stage.apply(&mut b);
    body(&records(&b)[0])
}

fn default_stage() -> (Redact, Arc<Registry>) {
    let registry = Registry::new();
    (Redact::new(policy(""), &registry), registry)
}

/// (detector, input, expected output) with every detector on and `mask`.
const CORPUS: &[(&str, &str, &str)] = &[
    ("credit_card", "card 4111 1111 1111 1111 ok", "card **** ok"),
    ("credit_card", "4111-1111-1111-1111", "****"),
    ("credit_card", "pan=5500000000000004;", "pan=****;"),
    ("credit_card", "amex 378282246310005.", "amex ****."),
    ("email", "contact alice.smith+tag@example.co.uk now", "contact **** now"),
    ("email", "<bob@corp.example>", "<****>"),
    ("ipv4", "from 192.168.10.1:8080", "from ****:8080"),
    ("ipv4", "client=10.0.0.255", "client=****"),
    ("ipv6", "peer 2001:db8::8a2e:370:7334 up", "peer **** up"),
    ("ipv6", "lo ::1", "lo ****"),
    ("ipv6", "link fe80::1ff:fe23:4567:890a%eth0 down", "link **** down"),
    (
        "jwt",
        "auth eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
        "auth **** end",
    ),
    ("credentials", "Authorization: Bearer abcDEF123456789xyz", "Authorization: Bearer ****"),
    ("credentials", "basic dXNlcjpwYXNzd29yZA==", "basic ****"),
    ("aws_access_key", "key AKIAIOSFODNN7EXAMPLE used", "key **** used"),
    ("secret_token", "t=ghp_abcdefghijklmnopqrstuvwxyz0123456789", "t=****"),
    ("secret_token", "slack xoxb-1234567890-abcdefghij", "slack ****"),
    ("secret_token", "sk_live_4eC39HqLyjWDarjtT1zdp7dc!", "****!"),
    (
        "secret_token",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- tail",
        "**** tail",
    ),
    ("secret_assignment", "login password=hunter2 ok", "login password=**** ok"),
    ("secret_assignment", "token: abc123def", "token: ****"),
    ("secret_assignment", "api_key=\"zq9-77\"&x=1", "api_key=\"****\"&x=1"),
    ("us_ssn", "ssn 123-45-6789.", "ssn ****."),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32 paid", "IBAN **** paid"),
    ("iban", "DE89370400440532013000", "****"),
];

const NEGATIVES: &[&str] = &[
    "card 4111 1111 1111 1112 fails Luhn",
    "0000000000000000 is one digit repeated",
    "user@localhost has no domain",
    "version 1.2.3 and 999.1.1.1",
    "at 12:30:45 the job ran",
    "eyJ alone is not a token",
    "bearer of news",
    "AKIA123 too short",
    "ghp_short",
    "password reset requested",
    "000-12-3456 and 666-12-3456 are not issued",
    "DE89370400440532013001 fails mod 97",
    "GET /api/v1/cart/12 200 in 3.5 ms",
    "Ünïcödé text, 日本語, emoji 🚀 — nothing here",
];

#[test]
fn every_detector_redacts_its_positives_and_leaves_its_negatives() {
    let (stage, registry) = default_stage();
    for (detector, input, want) in CORPUS {
        assert_eq!(redact_text(&stage, input), *want, "{detector}: {input}");
    }
    for input in NEGATIVES {
        assert_eq!(redact_text(&stage, input), *input, "false positive");
    }
    let text = registry.render();
    for (detector, _, _) in CORPUS {
        let want = CORPUS.iter().filter(|(d, _, _)| d == detector).count();
        let line = format!(
            "weir_redactions_total{{signal=\"logs\",detector=\"{detector}\",action=\"mask\"}} {want}"
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }
}

#[test]
fn key_rules_allowlist_actions_nested_values_and_summary() {
    let registry = Registry::new();
    let stage = Redact::new(
        policy(concat!(
            "    keys:\n",
            "      - {key: \"*password*\", action: drop}\n",
            "      - {key: authorization, action: mask}\n",
            "      - {key: user.id, action: hash}\n",
            "      - {key: \"x-kill-*\", action: drop_record}\n",
            "    detectors: {email: hash, ipv4: drop}\n",
            "    patterns:\n",
            "      - {name: order, regex: \"ORD-[0-9]{6}\"}\n",
            "    hash: {key_env: REDACT_KEY, algorithm: hmac_sha256, length: 12}\n",
            "    summary_attribute: weir.redacted.count\n",
        )),
        &registry,
    );
    let nested = Some(AnyValue {
        value: Some(Value::KvlistValue(KeyValueList {
            values: vec![
                kv("DB_PASSWORD", s("x")),
                kv("note", s("mail carol@example.org re ORD-123456")),
                kv(
                    "list",
                    Some(AnyValue {
                        value: Some(Value::ArrayValue(ArrayValue {
                            values: vec![s("keep me").unwrap(), s("10.1.2.3").unwrap()],
                        })),
                    }),
                ),
            ],
        })),
    });
    let rec = |extra: Vec<KeyValue>| LogRecord {
        attributes: [
            vec![
                kv("user.password", s("hunter2")),
                kv("Authorization", s("Bearer abc")),
                kv(
                    "user.id",
                    Some(AnyValue {
                        value: Some(Value::IntValue(42)),
                    }),
                ),
                kv("client", s("10.1.2.3")),
                kv("plain", s("nothing to see")),
            ],
            extra,
        ]
        .concat(),
        body: nested.clone(),
        ..Default::default()
    };
    let mut b = logs(vec![rec(vec![]), rec(vec![kv("X-Kill-Switch", s("1"))])]);
    stage.apply(&mut b);
    let out = records(&b);
    assert_eq!(out.len(), 1, "the record with x-kill-* is dropped");
    let attrs: Vec<(String, Option<Value>)> = out[0]
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().and_then(|v| v.value)))
        .collect();
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("user.password"), None, "dropped by key rule");
    assert_eq!(
        get("Authorization"),
        Some(Some(Value::StringValue("****".into())))
    );
    match get("user.id") {
        Some(Some(Value::StringValue(h))) => {
            assert!(h.starts_with("hash:") && h.len() == 17, "{h}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(get("client"), None, "ipv4: drop removes the attribute");
    assert_eq!(
        get("plain"),
        Some(Some(Value::StringValue("nothing to see".into())))
    );
    assert_eq!(get("weir.redacted.count"), Some(Some(Value::IntValue(8))));
    let Some(Value::KvlistValue(body)) = out[0].body.clone().and_then(|b| b.value) else {
        panic!()
    };
    assert!(
        !body.values.iter().any(|kv| kv.key == "DB_PASSWORD"),
        "key rules apply inside maps"
    );
    let note = body.values.iter().find(|kv| kv.key == "note").unwrap();
    match note.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(n)) => {
            assert!(
                n.starts_with("mail hash:") && n.ends_with(" re ****"),
                "{n}"
            );
        }
        other => panic!("{other:?}"),
    }
    let list = body.values.iter().find(|kv| kv.key == "list").unwrap();
    match list.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::ArrayValue(a)) => assert_eq!(a.values, vec![s("keep me").unwrap()]),
        other => panic!("{other:?}"),
    }
    let text = registry.render();
    for line in [
        "weir_redaction_dropped_items_total{signal=\"logs\",detector=\"key:x-kill-*\"} 1",
        "weir_redactions_total{signal=\"logs\",detector=\"key:*password*\",action=\"drop\"} 3",
        "weir_redactions_total{signal=\"logs\",detector=\"email\",action=\"hash\"} 1",
        "weir_redactions_total{signal=\"logs\",detector=\"order\",action=\"mask\"} 1",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // Equal values hash equally, so records still correlate.
    let mut again = logs(vec![rec(vec![])]);
    stage.apply(&mut again);
    assert_eq!(records(&again)[0].attributes[1..2], out[0].attributes[1..2]);
}

#[test]
fn allowlist_spans_events_links_names_and_status() {
    let registry = Registry::new();
    let stage = Redact::new(
        policy("    allow_keys: [\"http.*\", service.name]\n    span_names: true\n    status_messages: true\n"),
        &registry,
    );
    let span = Span {
        name: "login alice@example.com".into(),
        attributes: vec![kv("http.method", s("GET")), kv("db.statement", s("select"))],
        events: vec![Event {
            attributes: vec![kv("http.url", s("https://x/?token=abcd1234"))],
            ..Default::default()
        }],
        status: Some(Status {
            message: "denied for 10.0.0.1".into(),
            code: 2,
        }),
        ..Default::default()
    };
    let mut b: Batch<Traces> = Batch::measured(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    stage.apply(&mut b);
    let out = &b.resources[0].scope_spans[0].spans[0];
    assert_eq!(out.name, "login ****");
    assert_eq!(out.attributes, vec![kv("http.method", s("GET"))]);
    assert_eq!(
        out.events[0].attributes,
        vec![kv("http.url", s("https://x/?token=****"))]
    );
    assert_eq!(out.status.as_ref().unwrap().message, "denied for ****");
    assert!(registry.render().contains(
        "weir_redactions_total{signal=\"traces\",detector=\"allowlist\",action=\"drop\"} 1"
    ));
}

#[test]
fn a_disabled_policy_touches_nothing() {
    let stage = Redact::new(RedactPolicy::off(), &Registry::new());
    assert_eq!(
        redact_text(&stage, "password=hunter2 4111111111111111"),
        "password=hunter2 4111111111111111"
    );
}

fn secrets() -> Vec<&'static str> {
    vec![
        "4111 1111 1111 1111",
        "5500000000000004",
        "alice.smith+tag@example.co.uk",
        "192.168.10.1",
        "2001:db8::8a2e:370:7334",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "123-45-6789",
        "GB82 WEST 1234 5698 7654 32",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn secrets_never_survive_and_a_second_pass_changes_nothing(
        picks in proptest::collection::vec((0usize..10, "[a-z]{0,8}", 0usize..4), 1..8),
    ) {
        let (stage, _) = default_stage();
        let all = secrets();
        let seps = [" ", ", ", " | ", "\n"];
        let mut text = String::new();
        for (i, word, sep) in &picks {
            text.push_str(word);
            text.push(' ');
            text.push_str(all[*i]);
            text.push_str(seps[*sep]);
        }
        let once = redact_text(&stage, &text);
        for (i, _, _) in &picks {
            prop_assert!(!once.contains(all[*i]), "{} survived in {:?}", all[*i], once);
        }
        prop_assert_eq!(redact_text(&stage, &once), once.clone(), "not idempotent");
    }

    #[test]
    fn hashed_output_is_idempotent_too(
        picks in proptest::collection::vec(0usize..10, 1..6),
    ) {
        let stage = Redact::new(
            policy("    detectors: {credit_card: hash, email: hash, ipv4: hash, ipv6: hash, iban: hash, us_ssn: hash}\n    hash: {key_env: REDACT_KEY, algorithm: blake3}\n"),
            &Registry::new(),
        );
        let all = secrets();
        let text: Vec<&str> = picks.iter().map(|i| all[*i]).collect();
        let once = redact_text(&stage, &text.join(" and "));
        prop_assert_eq!(redact_text(&stage, &once), once.clone());
    }

    /// A pass remembers long values that scanned clean per key; it must never change a result. Values
    /// come from a small pool that repeats, with long clean ones, near copies of them that hold a
    /// secret or differ by one byte, and the same values under other keys.
    #[test]
    fn a_batch_redacts_each_record_as_it_would_alone(
        picks in proptest::collection::vec(proptest::collection::vec((0usize..4, 0usize..8), 1..6), 1..40),
    ) {
        const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)";
        // Pairs of the same length that differ in one byte, one of each pair holding a secret.
        let values = [
            format!("{UA} bob@corp.example signed in"),
            format!("{UA} bob_corp.example signed in"),
            "https://shop.example.com/api/v1/cart?from=10.0.0.1".to_string(),
            "https://shop.example.com/api/v1/cart?from=10.0.0.x".to_string(),
            format!("{UA} Bearer abcDEF123456789xyz"),
            format!("{UA} Beaver abcDEF123456789xyz"),
            UA.to_string(),
            "short".to_string(),
        ];
        let keys = ["user_agent.original", "url.full", "http.user_agent", "note"];
        let record = |attrs: &[(usize, usize)]| LogRecord {
            attributes: attrs.iter().map(|&(k, v)| kv(keys[k], s(&values[v]))).collect(),
            ..Default::default()
        };
        let (stage, registry) = default_stage();
        let mut batch = logs(picks.iter().map(|a| record(a)).collect());
        stage.apply(&mut batch);
        let (alone_stage, alone_registry) = default_stage();
        let alone: Vec<LogRecord> = picks
            .iter()
            .flat_map(|a| {
                let mut one = logs(vec![record(a)]);
                alone_stage.apply(&mut one);
                records(&one)
            })
            .collect();
        prop_assert_eq!(records(&batch), alone);
        // The same counts; series may have been registered in another order.
        let counts = |text: String| {
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            lines.sort();
            lines
        };
        prop_assert_eq!(counts(registry.render()), counts(alone_registry.render()));
    }

    #[test]
    fn text_that_matches_nothing_is_unchanged_byte_for_byte(
        text in "[ac-zA-Z ,.!?éüß日本🚀-]{0,200}",
    ) {
        let (stage, registry) = default_stage();
        let mut b = logs(vec![LogRecord {
            attributes: vec![kv("msg", s(&text))],
            body: s(&text),
            ..Default::default()
        }]);
        let before = records(&b);
        stage.apply(&mut b);
        prop_assert_eq!(records(&b), before);
        prop_assert!(!registry.render().contains("weir_redactions_total"));
    }
}

#[test]
fn metric_points_and_exemplars_are_redacted_and_dropped_one_by_one() {
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, Exemplar, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let registry = Registry::new();
    let stage = Redact::new(
        policy("    keys:\n      - {key: \"x-kill-*\", action: drop_record}\n"),
        &registry,
    );
    let point = |attrs: Vec<KeyValue>| NumberDataPoint {
        attributes: attrs,
        exemplars: vec![Exemplar {
            filtered_attributes: vec![kv("client", s("10.9.8.7"))],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut b: Batch<weir_pipeline::Metrics> = Batch::measured(vec![ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![kv("owner", s("ops@example.com"))],
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: "requests".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![
                        point(vec![kv("url", s("/login?token=abc12345"))]),
                        point(vec![kv("X-Kill-Me", s("1"))]),
                    ],
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }]);
    stage.apply(&mut b);
    let rm = &b.resources[0];
    assert_eq!(
        rm.resource.as_ref().unwrap().attributes,
        vec![kv("owner", s("****"))]
    );
    let Some(Data::Gauge(g)) = &rm.scope_metrics[0].metrics[0].data else {
        panic!()
    };
    assert_eq!(
        g.data_points.len(),
        1,
        "the point with x-kill-* is dropped, its sibling stays"
    );
    assert_eq!(
        g.data_points[0].attributes,
        vec![kv("url", s("/login?token=****"))]
    );
    assert_eq!(
        g.data_points[0].exemplars[0].filtered_attributes,
        vec![kv("client", s("****"))]
    );
    assert!(registry.render().contains(
        "weir_redaction_dropped_items_total{signal=\"metrics\",detector=\"key:x-kill-*\"} 1"
    ));
}
