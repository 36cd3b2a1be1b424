//! Worst-case requests at the receiver's size limit, built to hit each stage's weak spot: a tracestate
//! with tens of thousands of members, tens of thousands of attributes, thousands of resources or scopes,
//! tiny records by the thousand, a huge log body full of things to redact, deeply nested values. Each
//! goes through the real binary with every stage on (normalisation, head and tail sampling, log rules,
//! redaction with all detectors) and must come out in time linear in its size.
//!
//! The bound here is generous so CI never flakes (debug build, shared cores); the release numbers
//! (`cargo test --release -p weir-collector --test cpu_bound -- --nocapture`) are in the README.

mod common;

use common::{http_request, Options, Weir};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::{Duration, Instant};

const LIMIT: usize = 1 << 20;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn span(i: usize) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    trace_id[8] = 1;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
        name: "op".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Span::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", "hostile")],
        ..Resource::default()
    })
}

fn traces(resource_spans: Vec<ResourceSpans>) -> Vec<u8> {
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn one_scope(spans: Vec<Span>) -> Vec<ResourceSpans> {
    vec![ResourceSpans {
        resource: resource(),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }]
}

/// Adds items made by `make` until the encoded request would pass the size limit.
fn fill<T>(make: impl Fn(usize) -> T, size: impl Fn(&[T]) -> usize) -> Vec<T> {
    let mut items: Vec<T> = Vec::new();
    let mut step = 1024;
    while step > 0 {
        let n = items.len();
        let more: Vec<T> = (n..n + step).map(&make).collect();
        items.extend(more);
        if size(&items) > LIMIT - 4096 {
            items.truncate(n);
            step /= 2;
        }
    }
    items
}

fn logs(records: Vec<LogRecord>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
    .encode_to_vec()
}

fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(any_value::Value::StringValue("leaf".into())),
    };
    for _ in 0..depth {
        v = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![
                    KeyValue {
                        key: "password".into(),
                        value: Some(v),
                        ..KeyValue::default()
                    },
                    kv("card", "4111 1111 1111 1111"),
                ],
            })),
        };
    }
    v
}

/// (name, signal path, body, items).
fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, usize)> {
    let mut out = Vec::new();
    // tracestate with as many members as fit.
    let members: Vec<String> = (0..110_000).map(|i| format!("k{i}=v")).collect();
    let mut s = span(0);
    s.trace_state = members.join(",");
    s.trace_state.truncate(LIMIT - 8192);
    out.push((
        "tracestate_members",
        "/v1/traces",
        traces(one_scope(vec![s])),
        1,
    ));
    // One span with as many attributes as fit, many of them keys the redactor drops.
    let attrs = fill(
        |i| kv(&format!("user.password.{i}"), "hunter2"),
        |a| a.iter().map(|k| k.encoded_len() + 4).sum(),
    );
    let mut s = span(1);
    s.attributes = attrs;
    out.push((
        "span_attributes",
        "/v1/traces",
        traces(one_scope(vec![s])),
        1,
    ));
    // Thousands of resources, one span each.
    let resources = fill(
        |i| ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(i)],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        },
        |r| traces(r.to_vec()).len(),
    );
    let n = resources.len();
    out.push(("resources", "/v1/traces", traces(resources), n));
    // Thousands of scopes under one resource.
    let scopes = fill(
        |i| ScopeSpans {
            spans: vec![span(i)],
            ..ScopeSpans::default()
        },
        |s| s.iter().map(|x| x.encoded_len() + 4).sum::<usize>() + 64,
    );
    let n = scopes.len();
    out.push((
        "scopes",
        "/v1/traces",
        traces(vec![ResourceSpans {
            resource: resource(),
            scope_spans: scopes,
            ..ResourceSpans::default()
        }]),
        n,
    ));
    // Tiny spans by the ten thousand, one trace each.
    let spans = fill(span, |s| {
        s.iter().map(|x| x.encoded_len() + 4).sum::<usize>() + 64
    });
    let n = spans.len();
    out.push(("tiny_spans", "/v1/traces", traces(one_scope(spans)), n));
    // One log body of almost a MiB, dense with things every detector matches.
    let dense = "mail a.b@example.com card 4111 1111 1111 1111 ip 10.1.2.3 token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig ";
    let body = dense.repeat((LIMIT - 8192) / dense.len());
    let record = LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        severity_number: 9,
        ..LogRecord::default()
    };
    out.push(("log_body_to_redact", "/v1/logs", logs(vec![record]), 1));
    // The same length with nothing to find (regexes scanning a long miss).
    let record = LogRecord {
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue("x".repeat(LIMIT - 8192))),
        }),
        ..LogRecord::default()
    };
    out.push(("log_body_plain", "/v1/logs", logs(vec![record]), 1));
    // Tiny log records by the ten thousand.
    let records = fill(
        |i| LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!("r{i}"))),
            }),
            severity_number: 9,
            ..LogRecord::default()
        },
        |r| r.iter().map(|x| x.encoded_len() + 4).sum::<usize>() + 64,
    );
    let n = records.len();
    out.push(("tiny_logs", "/v1/logs", logs(records), n));
    // Nested values, as deep as the decoder allows, repeated.
    let records = fill(
        |_| LogRecord {
            body: Some(nested(30)),
            ..LogRecord::default()
        },
        |r| r.iter().map(|x| x.encoded_len() + 4).sum::<usize>() + 64,
    );
    let n = records.len();
    out.push(("nested_values", "/v1/logs", logs(records), n));
    out
}

#[test]
fn every_worst_case_request_costs_time_linear_in_its_size() {
    let weir = Weir::start_with(Options {
        destination: Some("    blackhole: {}".into()),
        pipeline: "pipeline:\n  workers: 2\n  sample:\n    logs:\n      rules:\n        - {name: problems, min_severity: warn, probability: 1.0}\n        - {name: info, severity: info, probability: 1.0}\n    tail:\n      decision_wait: 50ms\n      root_wait: 0s\n      policies:\n        - {name: errors, error: true}\n        - {name: vip, attribute: {key: customer.tier, values: [gold]}}\n        - {name: rest, probability: 1.0}\n  redact:\n    enabled: true\n    keys:\n      - {key: \"*password*\", action: drop}\n".into(),
        ..Options::default()
    });
    // Debug builds on shared CI cores are ~20x slower than release; quadratic work blows past both.
    let bound_ms_per_mib = if cfg!(debug_assertions) {
        5000.0
    } else {
        250.0
    };
    let mut report = Vec::new();
    for (name, path, body, items) in cases() {
        assert!(body.len() <= LIMIT, "{name}: {} bytes", body.len());
        let signal = if path == "/v1/traces" {
            "traces"
        } else {
            "logs"
        };
        let labels = [format!("signal=\"{signal}\"")];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let before = weir.metric("weir_exporter_sent_items_total", &labels);
        let start = Instant::now();
        let r = http_request(
            weir.http,
            "POST",
            path,
            &[("Content-Type", "application/x-protobuf")],
            &body,
        )
        .unwrap();
        assert_eq!(
            r.status,
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let deadline = start + Duration::from_secs(60);
        while weir.metric("weir_exporter_sent_items_total", &labels) < before + items as f64 {
            assert!(
                Instant::now() < deadline,
                "{name} never came out; log:\n{}",
                weir.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let per_mib = ms / (body.len() as f64 / LIMIT as f64);
        report.push(format!(
            "{name:>20}: {:>7} bytes, {items:>6} items, {ms:>8.1} ms, {per_mib:>8.1} ms/MiB",
            body.len()
        ));
        assert!(
            per_mib <= bound_ms_per_mib,
            "{name}: {per_mib:.0} ms per MiB (bound {bound_ms_per_mib})"
        );
    }
    eprintln!("{}", report.join("\n"));
}
