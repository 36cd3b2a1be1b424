//! Decode → stage chain → encode for realistic batches, in items per second, next to decode alone so
//! the ratio shows how close the pipeline runs to the cost of parsing.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use weir_exporters::{Blackhole, Exporter, JsonLines};
use weir_pipeline::{fixtures, Batch, Chain, Logs, Signal, Traces};

fn file_exporter(signal: weir_config::SignalKind) -> (JsonLines, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = weir_config::FileExporter {
        path: dir.path().display().to_string(),
        rotate_bytes: weir_config::ByteSize::mib(64),
        max_files: 1,
    };
    (JsonLines::new(&cfg, signal).unwrap(), dir)
}

fn bench_signal<S: Signal>(c: &mut Criterion, name: &str, body: Vec<u8>, items: usize)
where
    JsonLines: Exporter<S>,
    Blackhole: Exporter<S>,
{
    let chain = Chain::<S>::pass();
    let (file, _dir) = file_exporter(S::KIND);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(items as u64));
    g.bench_function("decode", |b| b.iter(|| S::decode(&body[..]).unwrap()));
    g.bench_function("decode_prost", |b| {
        b.iter(|| S::Request::decode(&body[..]).unwrap())
    });
    g.bench_function("decode_chain_blackhole", |b| {
        b.iter(|| {
            let req = S::decode(&body[..]).unwrap();
            let mut batch = Batch::<S>::new(S::into_resources(req), body.len());
            chain.apply(&mut batch);
            Exporter::<S>::encode(&Blackhole, batch).unwrap()
        })
    });
    g.bench_function("decode_chain_file_json_encode", |b| {
        b.iter(|| {
            let req = S::decode(&body[..]).unwrap();
            let mut batch = Batch::<S>::new(S::into_resources(req), body.len());
            chain.apply(&mut batch);
            Exporter::<S>::encode(&file, batch).unwrap()
        })
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let logs = ExportLogsServiceRequest {
        resource_logs: fixtures::resource_logs(10, 100),
    }
    .encode_to_vec();
    bench_signal::<Logs>(c, "logs_1000", logs, 1000);
    let traces = ExportTraceServiceRequest {
        resource_spans: fixtures::resource_spans(10, 100),
    }
    .encode_to_vec();
    bench_signal::<Traces>(c, "traces_1000", traces, 1000);
}

/// RowBinary rows for ClickHouse's `otel_logs`, both layouts, and the LZ4 block compression after it.
fn clickhouse(c: &mut Criterion) {
    use weir_exporters::clickhouse::client::compress;
    use weir_exporters::clickhouse::encode::Encoder;
    use weir_exporters::clickhouse::Layout;
    let logs = fixtures::resource_logs(10, 1000);
    let mut g = c.benchmark_group("clickhouse_logs_10000");
    g.throughput(Throughput::Elements(10_000));
    let mut encoder = Encoder::default();
    let mut out = Vec::new();
    for (name, layout) in [
        ("rowbinary_modern", Layout::Modern),
        ("rowbinary_portable", Layout::Portable),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encoder.logs(&logs, layout, &mut out)
            })
        });
    }
    out.clear();
    encoder.logs(&logs, Layout::Modern, &mut out);
    g.bench_function("lz4_blocks", |b| {
        b.iter(|| compress(&out, weir_config::ClickHouseCompression::Lz4))
    });
    g.finish();
}

/// Loki: labels, metadata, grouping by stream, sorting, protobuf and snappy, for 10 000 records.
fn loki(c: &mut Criterion) {
    use weir_exporters::loki::encode::{encode, Rules};
    use weir_exporters::loki::streams::StreamGuard;
    let yaml = "exporters:\n  l:\n    loki: {endpoint: \"http://127.0.0.1:3100\"}\n";
    let cfg = weir_config::parse(yaml, "bench", |_| None)
        .unwrap()
        .exporters["l"]
        .loki
        .clone()
        .unwrap();
    let rules = Rules::new(&cfg);
    let guard = StreamGuard::new(cfg.max_streams, cfg.stream_window.0);
    let logs = fixtures::resource_logs(10, 1000);
    let mut g = c.benchmark_group("loki_logs_10000");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("encode_push", |b| b.iter(|| encode(&rules, &guard, &logs)));
    g.finish();
}

/// Normalize: spans (validation, tracestate), logs that already carry ids or have no source, and logs
/// whose context must be parsed from a `traceparent` attribute.
fn normalize(c: &mut Criterion) {
    use weir_pipeline::stage::Stage;
    use weir_pipeline::stages::normalize::{Normalize, NormalizePolicy};
    let registry = weir_pipeline::metrics::Registry::new();
    let n = Normalize::new(
        NormalizePolicy {
            enabled: true,
            invalid_spans: weir_config::InvalidSpans::Flag,
            remove_source_attributes: false,
        },
        &registry,
    );
    let mut g = c.benchmark_group("normalize_1000");
    g.throughput(Throughput::Elements(1000));
    let spans = fixtures::resource_spans(10, 100);
    g.bench_function("spans", |b| {
        b.iter_batched(
            || Batch::<Traces>::new(spans.clone(), 0),
            |mut batch| Stage::<Traces>::apply(&n, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    let logs = fixtures::resource_logs(10, 100);
    g.bench_function("logs_mixed", |b| {
        b.iter_batched(
            || Batch::<Logs>::new(logs.clone(), 0),
            |mut batch| Stage::<Logs>::apply(&n, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    let mut with_tp = fixtures::resource_logs(10, 100);
    for r in with_tp
        .iter_mut()
        .flat_map(|r| r.scope_logs.iter_mut())
        .flat_map(|s| s.log_records.iter_mut())
    {
        r.trace_id.clear();
        r.span_id.clear();
        r.attributes.push(fixtures::kv(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ));
    }
    g.bench_function("logs_fill_from_traceparent", |b| {
        b.iter_batched(
            || Batch::<Logs>::new(with_tp.clone(), 0),
            |mut batch| Stage::<Logs>::apply(&n, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Sample: head sampling at 10 % over spans, and log rules over records.
fn sample(c: &mut Criterion) {
    use weir_pipeline::stage::Stage;
    use weir_pipeline::stages::sample::{Sample, SamplePolicy};
    let yaml = "pipeline:\n  sample:\n    traces: {probability: 0.1}\n    logs:\n      rules:\n        - {min_severity: warn, probability: 1}\n        - {severity: info, probability: 0.1}\nexporters:\n  b: {blackhole: {}}\n";
    let cfg = weir_config::parse(yaml, "bench", |_| None).unwrap();
    let s = Sample::new(
        SamplePolicy::from(&cfg.pipeline.sample),
        &weir_pipeline::metrics::Registry::new(),
    );
    let mut g = c.benchmark_group("sample_1000");
    g.throughput(Throughput::Elements(1000));
    let spans = fixtures::resource_spans(10, 100);
    g.bench_function("spans_head_10pct", |b| {
        b.iter_batched(
            || Batch::<Traces>::new(spans.clone(), 0),
            |mut batch| Stage::<Traces>::apply(&s, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    let logs = fixtures::resource_logs(10, 100);
    g.bench_function("logs_rules", |b| {
        b.iter_batched(
            || Batch::<Logs>::new(logs.clone(), 0),
            |mut batch| Stage::<Logs>::apply(&s, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    let limited = weir_config::parse(
        "pipeline:\n  sample:\n    rate_limits:\n      - {name: per-service, signal: logs, items_per_second: 1e12, bytes_per_second: 1000GiB}\nexporters:\n  b: {blackhole: {}}\n",
        "bench",
        |_| None,
    )
    .unwrap();
    let rl = Sample::new(
        SamplePolicy::from(&limited.pipeline.sample),
        &weir_pipeline::metrics::Registry::new(),
    );
    g.bench_function("logs_rate_limit_per_service", |b| {
        b.iter_batched(
            || Batch::<Logs>::new(logs.clone(), 0),
            |mut batch| Stage::<Logs>::apply(&rl, &mut batch),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Tail sampling: 1000 spans (250 traces of four) held, then decided at their root trigger, per
/// policy kind. Trace ids are fresh every iteration, so nothing is answered from the decision cache.
fn tail(c: &mut Criterion) {
    use weir_pipeline::tail::buffer::TailBuffer;
    use weir_pipeline::tail::policy::TailPolicy;
    let policies = [
        ("error", "{name: p, error: true}"),
        ("latency", "{name: p, latency: 200ms}"),
        (
            "attribute",
            "{name: p, attribute: {key: http.request.method, values: [POST, PUT]}}",
        ),
        ("probability_10pct", "{name: p, probability: 0.1}"),
        ("rate", "{name: p, rate: 1000000}"),
        (
            "attribute_regex",
            "{name: p, attribute: {key: http.route, regex: \"^/api/v[0-9]+/orders\"}}",
        ),
        ("span_count", "{name: p, span_count: {min: 4}}"),
        (
            "and",
            "{name: p, and: [{status_code: [error]}, {numeric_attribute: {key: http.response.status_code, min: 500}}]}",
        ),
    ];
    let spans = fixtures::resource_spans(10, 100);
    let mut g = c.benchmark_group("tail_1000");
    g.throughput(Throughput::Elements(1000));
    for (name, policy) in policies {
        let yaml = format!("pipeline:\n  sample:\n    tail:\n      policies:\n        - {policy}\nexporters:\n  b: {{blackhole: {{}}}}\n");
        let cfg = weir_config::parse(&yaml, "bench", |_| None).unwrap();
        let policy = TailPolicy::from_config(&cfg.pipeline.sample);
        let mut buffer = TailBuffer::default();
        let mut round = 0u64;
        let start = std::time::Instant::now();
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    Batch::<Traces>::new(fresh_spans(&spans, round), 200_000)
                },
                |batch| {
                    buffer.push(batch, &policy, start);
                    buffer.due(&policy, start + std::time::Duration::from_secs(2));
                    buffer.report.decided.clear();
                    buffer.take_output()
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// `spans` with `round` in every trace id, so a tail buffer never answers them from its cache.
fn fresh_spans(
    spans: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans],
    round: u64,
) -> Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans> {
    let mut s = spans.to_vec();
    for span in s
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|x| &mut x.spans)
    {
        span.trace_id[..8].copy_from_slice(&round.to_be_bytes());
    }
    s
}

/// `logs: with_trace`: 1000 log records (250 traces of four) held with their traces, then decided
/// with them by a log-severity policy; the same traces' spans arrive in the same round.
fn tail_logs(c: &mut Criterion) {
    use weir_pipeline::tail::buffer::TailBuffer;
    use weir_pipeline::tail::policy::TailPolicy;
    let yaml = "pipeline:\n  sample:\n    tail:\n      logs: with_trace\n      policies:\n        - {name: p, log_severity: error}\nexporters:\n  b: {blackhole: {}}\n";
    let cfg = weir_config::parse(yaml, "bench", |_| None).unwrap();
    let policy = TailPolicy::from_config(&cfg.pipeline.sample);
    let spans = fixtures::resource_spans(10, 100);
    let mut logs = fixtures::resource_logs(10, 100);
    let ids: Vec<Vec<u8>> = spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.trace_id.clone())
        .collect();
    for (r, id) in logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
        .zip(&ids)
    {
        r.trace_id = id.clone();
    }
    let mut g = c.benchmark_group("tail_logs_1000");
    g.throughput(Throughput::Elements(1000));
    let mut buffer = TailBuffer::default();
    let mut round = 0u64;
    let start = std::time::Instant::now();
    g.bench_function("held_with_spans_then_decided", |b| {
        b.iter_batched(
            || {
                round += 1;
                let mut l = logs.clone();
                for r in l
                    .iter_mut()
                    .flat_map(|r| &mut r.scope_logs)
                    .flat_map(|x| &mut x.log_records)
                {
                    r.trace_id[..8].copy_from_slice(&round.to_be_bytes());
                }
                (
                    Batch::<Logs>::new(l, 300_000),
                    Batch::<Traces>::new(fresh_spans(&spans, round), 200_000),
                )
            },
            |(logs, spans)| {
                buffer.push(logs, &policy, start);
                buffer.push(spans, &policy, start);
                buffer.due(&policy, start + std::time::Duration::from_secs(2));
                buffer.report.decided.clear();
                (buffer.take_output(), buffer.take_logs())
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Redaction per log record with no detector, one, and all of them, on the same realistic records the
/// decode bench parses (so the two can be compared), clean and with a secret in every body.
fn redact(c: &mut Criterion) {
    use weir_pipeline::stage::Stage;
    use weir_pipeline::stages::redact::{Redact, RedactPolicy};
    let policy = |yaml: &str| {
        let text = format!("pipeline:\n  redact:\n{yaml}exporters:\n  b: {{blackhole: {{}}}}\n");
        let cfg = weir_config::parse(&text, "bench", |_| None).unwrap();
        RedactPolicy::compile(&cfg.pipeline.redact, |_| Some("bench-key".into())).unwrap()
    };
    let none = "    enabled: true\n    detectors: {credit_card: off, email: off, ipv4: off, ipv6: off, jwt: off, credentials: off, aws_access_key: off, secret_token: off, secret_assignment: off, us_ssn: off, iban: off}\n";
    let one = "    enabled: true\n    detectors: {credit_card: off, ipv4: off, ipv6: off, jwt: off, credentials: off, aws_access_key: off, secret_token: off, secret_assignment: off, us_ssn: off, iban: off}\n";
    let all = "    enabled: true\n    keys:\n      - {key: \"*password*\", action: drop}\n      - {key: authorization, action: mask}\n";
    let clean = fixtures::resource_logs(10, 100);
    let mut dirty = clean.clone();
    for r in dirty
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
    {
        r.body = Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    "payment by alice@example.com card 4111 1111 1111 1111 accepted".into(),
                ),
            ),
        });
    }
    let body = ExportLogsServiceRequest {
        resource_logs: clean.clone(),
    }
    .encode_to_vec();
    let registry = weir_pipeline::metrics::Registry::new();
    let mut g = c.benchmark_group("redact_1000");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode_same_records", |b| {
        b.iter(|| Logs::decode(&body[..]).unwrap())
    });
    for (name, yaml, records) in [
        ("no_detector", none, &clean),
        ("one_detector", one, &clean),
        ("all_detectors", all, &clean),
        ("all_detectors_secret_in_every_body", all, &dirty),
    ] {
        let stage = Redact::new(policy(yaml), &registry);
        g.bench_function(name, |b| {
            b.iter_batched(
                || Batch::<Logs>::new(records.clone(), 0),
                |mut batch| {
                    Stage::<Logs>::apply(&stage, &mut batch);
                    batch
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Span metrics, per span, on the decode bench's spans (10 services × 13 span names × 2 statuses, so
/// every series exists after the first iteration): the steady state, one lookup by borrowed key and
/// three additions per span; with one dimension, looked up on the span.
fn span_metrics(c: &mut Criterion) {
    use weir_pipeline::spanmetrics::SpanMetrics;
    use weir_pipeline::Stage;
    let mut g = c.benchmark_group("span_metrics_1000");
    g.throughput(Throughput::Elements(1000));
    for (name, yaml) in [
        ("fixed_dimensions", "{}"),
        ("one_dimension", "{dimensions: [http.request.method]}"),
    ] {
        let text =
            format!("pipeline:\n  span_metrics: {yaml}\nexporters: {{b: {{blackhole: {{}}}}}}\n");
        let cfg = weir_config::parse(&text, "bench", |_| None).unwrap();
        let registry = weir_pipeline::metrics::Registry::new();
        let metrics = SpanMetrics::new(cfg.pipeline.span_metrics.as_ref().unwrap(), &registry, 1);
        let stage = metrics.stage();
        // The stage only reads the batch, so one batch serves every iteration.
        let mut batch = Batch::<Traces>::measured(fixtures::resource_spans(10, 100));
        g.bench_function(name, |b| b.iter(|| stage.apply(&mut batch)));
    }
    g.finish();
}

criterion_group!(
    benches,
    pipeline,
    clickhouse,
    loki,
    normalize,
    sample,
    tail,
    tail_logs,
    redact,
    span_metrics
);
criterion_main!(benches);
