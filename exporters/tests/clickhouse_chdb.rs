//! The modern ClickHouse engine (chdb 26.x) accepts Weir's `otel_logs` DDL in both layouts and reads
//! Weir's RowBinary bytes back equal, field by field: UTF-8, empty and 1 MiB bodies, hundreds of
//! attributes, every non-string value kind, records with and without trace context.
//!
//! Needs `WEIR_CHDB_PYTHON` (a Python with `chdb-core`; `scripts/test.sh` sets it). Without it the test
//! says so and passes locally, but fails under CI, where the script must have provided it.

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Status};
use serde_json::{json, Value as Json};
use std::path::Path;
use std::process::Command;
use weir_exporters::clickhouse::columns::{insert_columns, MetricTable, LOG_COLUMNS, SPAN_COLUMNS};
use weir_exporters::clickhouse::encode::Encoder;
use weir_exporters::clickhouse::schema::{
    create_database, logs_shard_key, logs_table, metrics_shard_key, metrics_table, traces_tables,
    TableOptions, TRACES_SHARD_KEY,
};
use weir_exporters::clickhouse::Layout;
use weir_pipeline::fixtures;

fn python() -> Option<String> {
    match std::env::var("WEIR_CHDB_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => panic!("WEIR_CHDB_PYTHON must be set in CI"),
        Err(_) => {
            eprintln!("skipped: WEIR_CHDB_PYTHON is not set (scripts/test.sh sets it)");
            None
        }
    }
}

fn any(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: any(v),
        ..Default::default()
    }
}

/// Realistic records plus the edge cases, each tagged with attribute `row` = its index.
fn corpus() -> Vec<ResourceLogs> {
    let mut logs = fixtures::resource_logs(2, 3);
    let records = &mut logs[1].scope_logs[0].log_records;
    records[0].body = any(Value::StringValue("héllo wörld ✓ 日本語 🚀".into()));
    records[1].body = None;
    records[2].body = any(Value::StringValue("x".repeat(1 << 20)));
    records[2].attributes = (0..300)
        .map(|i| kv(&format!("attr.{i}"), Value::IntValue(i)))
        .collect();
    records[1].attributes = vec![
        kv("double", Value::DoubleValue(2.5)),
        kv("bool", Value::BoolValue(true)),
        kv("bytes", Value::BytesValue(vec![0, 1, 2, 255])),
        kv(
            "array",
            Value::ArrayValue(ArrayValue {
                values: vec![
                    any(Value::IntValue(1)).unwrap(),
                    any(Value::StringValue("two".into())).unwrap(),
                ],
            }),
        ),
        kv(
            "map",
            Value::KvlistValue(KeyValueList {
                values: vec![kv("k", Value::DoubleValue(0.25))],
            }),
        ),
        kv("empty", Value::StringValue(String::new())),
    ];
    logs[0].schema_url = "https://opentelemetry.io/schemas/1.26.0".into();
    let records = logs
        .iter_mut()
        .flat_map(|r| r.scope_logs.iter_mut())
        .flat_map(|s| s.log_records.iter_mut());
    for (row, r) in records.enumerate() {
        r.attributes.push(kv("row", Value::IntValue(row as i64)));
    }
    logs
}

fn opts(table: &str) -> TableOptions {
    TableOptions {
        database: "otel".into(),
        table: table.into(),
        // Long enough that the fixtures' 2025 timestamps are not expired on insert.
        ttl_hours: Some(24 * 365 * 20),
        cluster: None,
    }
}

/// Runs `ddl` on chdb, inserts `bytes` into `table` (`columns`), and returns `select`'s rows.
fn load(
    python: &str,
    ddl: Vec<String>,
    table: &str,
    columns: String,
    bytes: &[u8],
    select: &str,
) -> Vec<Json> {
    load_repeated(python, ddl, table, columns, bytes, select, &[])
}

/// Like [`load`], with the insert repeated as `retry` says: `["3", "token"]` sends it three times with
/// one deduplication token.
fn load_repeated(
    python: &str,
    ddl: Vec<String>,
    table: &str,
    columns: String,
    bytes: &[u8],
    select: &str,
    retry: &[&str],
) -> Vec<Json> {
    let dir = tempfile::tempdir().unwrap();
    let ddl_file = dir.path().join("ddl.sql");
    std::fs::write(&ddl_file, ddl.join("\n;\n")).unwrap();
    let data = dir.path().join("rows.bin");
    std::fs::write(&data, bytes).unwrap();
    let insert = format!("INSERT INTO otel.{table} ({columns})");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clickhouse/chdb_roundtrip.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&ddl_file)
        .arg(insert)
        .arg(&data)
        .arg(select)
        .args(retry)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn roundtrip(python: &str, layout: Layout, select: &str) -> Vec<Json> {
    let o = opts("otel_logs");
    let mut bytes = Vec::new();
    assert_eq!(Encoder::default().logs(&corpus(), layout, &mut bytes), 6);
    let ddl = vec![create_database(&o), logs_table(layout, &o)];
    load(
        python,
        ddl,
        "otel_logs",
        insert_columns(LOG_COLUMNS, layout),
        &bytes,
        select,
    )
}

#[test]
fn a_retried_insert_with_the_same_token_is_stored_once() {
    let Some(py) = python() else { return };
    let o = opts("otel_logs");
    let mut bytes = Vec::new();
    Encoder::default().logs(&corpus(), Layout::Modern, &mut bytes);
    let ddl = vec![create_database(&o), logs_table(Layout::Modern, &o)];
    let columns = insert_columns(LOG_COLUMNS, Layout::Modern);
    let once = "SELECT count() AS n FROM otel.otel_logs";
    let rows = load_repeated(
        &py,
        ddl.clone(),
        "otel_logs",
        columns.clone(),
        &bytes,
        once,
        &["3", "weir-token-1"],
    );
    assert_eq!(
        rows[0]["n"],
        json!(6),
        "three sends of one insert, one copy stored"
    );
    let rows = load_repeated(&py, ddl, "otel_logs", columns, &bytes, once, &["2"]);
    // The deduplication window also catches an identical retry without a token (same block hash);
    // the token still matters when a retry is split into blocks differently.
    assert_eq!(rows[0]["n"], json!(6));
}

/// Effectively once after a crash: a durable record replayed is decoded afresh from the request bytes
/// the log kept, and must come out as the same rows — so the same token — as the first time, or the
/// server stores it again.
#[test]
fn a_record_decoded_again_after_a_crash_is_the_same_insert_and_stored_once() {
    use prost::Message;
    let request = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: corpus(),
    }
    .encode_to_vec();
    let rows = |encoder: &mut Encoder| {
        let decoded =
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
                request.as_slice(),
            )
            .unwrap();
        let mut out = Vec::new();
        encoder.logs(&decoded.resource_logs, Layout::Modern, &mut out);
        out
    };
    let first = rows(&mut Encoder::default());
    // Another process, whose encoder has served other batches before.
    let mut busy = Encoder::default();
    let mut other = Vec::new();
    busy.logs(&fixtures::resource_logs(3, 50), Layout::Modern, &mut other);
    let replayed = rows(&mut busy);
    assert_eq!(first, replayed, "same record, same rows, byte for byte");
    let token = |rows: &[u8]| format!("{:032x}", cityhash_rs::cityhash_102_128(rows));
    assert_eq!(token(&first), token(&replayed));

    let Some(py) = python() else { return };
    let o = opts("otel_logs");
    let ddl = vec![create_database(&o), logs_table(Layout::Modern, &o)];
    let rows = load_repeated(
        &py,
        ddl,
        "otel_logs",
        insert_columns(LOG_COLUMNS, Layout::Modern),
        &replayed,
        "SELECT count() AS n FROM otel.otel_logs",
        &["2", &token(&first)],
    );
    assert_eq!(
        rows[0]["n"],
        json!(6),
        "the replay is recognised and dropped"
    );
}

/// Spans with events and links (one with attributes, one without), kinds and statuses.
fn spans() -> Vec<ResourceSpans> {
    let mut rs = fixtures::resource_spans(1, 4);
    let s = &mut rs[0].scope_spans[0].spans;
    s[1].events = vec![
        Event {
            time_unix_nano: 1_764_000_000_000_000_123,
            name: "exception".into(),
            attributes: vec![
                kv("exception.type", Value::StringValue("IOError".into())),
                kv("n", Value::IntValue(3)),
            ],
            ..Default::default()
        },
        Event {
            time_unix_nano: 1_764_000_000_000_000_456,
            name: "retry".into(),
            ..Default::default()
        },
    ];
    s[1].links = vec![Link {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        trace_state: "ot=th:8".into(),
        attributes: vec![kv("link.kind", Value::StringValue("follows".into()))],
        ..Default::default()
    }];
    s[2].kind = 3;
    s[2].status = Some(Status {
        code: 2,
        message: "boom".into(),
    });
    rs
}

#[test]
fn traces_modern_layout_with_events_links_and_trace_id_lookup() {
    let Some(py) = python() else { return };
    let o = opts("otel_traces");
    let mut bytes = Vec::new();
    assert_eq!(
        Encoder::default().spans(&spans(), Layout::Modern, &mut bytes),
        4
    );
    let mut ddl = vec![create_database(&o)];
    ddl.extend(traces_tables(Layout::Modern, &o));
    let rows = load(
        &py,
        ddl,
        "otel_traces",
        insert_columns(SPAN_COLUMNS, Layout::Modern),
        &bytes,
        "SELECT SpanId, ParentSpanId, SpanName, SpanKind, Duration, StatusCode, StatusMessage, \
         arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp) AS ev_ts, Events.Name AS ev_name, \
         Events.Attributes AS ev_attrs, Links.TraceId AS l_trace, Links.SpanId AS l_span, Links.TraceState AS l_state, \
         Links.Attributes AS l_attrs, SpanAttributes['http.response.status_code'] AS status_attr, \
         (SELECT count() FROM otel.otel_traces_trace_id_ts) AS lookups \
         FROM otel.otel_traces ORDER BY Timestamp",
    );
    let sent = spans();
    let s = &sent[0].scope_spans[0].spans;
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["SpanId"], json!(hex(&s[0].span_id)));
    assert_eq!(rows[0]["ParentSpanId"], "");
    assert_eq!(rows[1]["ParentSpanId"], json!(hex(&s[1].parent_span_id)));
    assert_eq!(rows[0]["SpanKind"], "Server");
    assert_eq!(rows[2]["SpanKind"], "Client");
    assert_eq!(
        rows[0]["Duration"],
        json!(s[0].end_time_unix_nano - s[0].start_time_unix_nano)
    );
    assert_eq!(rows[0]["StatusCode"], "Error", "fixture span 0 is an error");
    assert_eq!(rows[1]["StatusCode"], "Unset");
    assert_eq!(
        (
            rows[2]["StatusCode"].clone(),
            rows[2]["StatusMessage"].clone()
        ),
        (json!("Error"), json!("boom"))
    );
    assert_eq!(
        rows[1]["ev_ts"],
        json!([1_764_000_000_000_000_123u64, 1_764_000_000_000_000_456u64])
    );
    assert_eq!(rows[1]["ev_name"], json!(["exception", "retry"]));
    assert_eq!(
        rows[1]["ev_attrs"],
        json!([{"exception.type": "IOError", "n": "3"}, {}])
    );
    assert_eq!(rows[1]["l_trace"], json!(["ab".repeat(16)]));
    assert_eq!(rows[1]["l_span"], json!(["cd".repeat(8)]));
    assert_eq!(rows[1]["l_state"], json!(["ot=th:8"]));
    assert_eq!(rows[1]["l_attrs"], json!([{"link.kind": "follows"}]));
    assert_eq!(rows[0]["ev_name"], json!([]));
    assert_eq!(rows[0]["status_attr"], "500");
    assert_eq!(
        rows[0]["lookups"],
        json!(1),
        "the view fed one trace id (spans 0-3 share a trace)"
    );
}

#[test]
fn traces_portable_layout_reads_back() {
    let Some(py) = python() else { return };
    let o = opts("otel_traces");
    let mut bytes = Vec::new();
    Encoder::default().spans(&spans(), Layout::Portable, &mut bytes);
    let mut ddl = vec![create_database(&o)];
    ddl.extend(traces_tables(Layout::Portable, &o));
    let rows = load(
        &py,
        ddl,
        "otel_traces",
        insert_columns(SPAN_COLUMNS, Layout::Portable),
        &bytes,
        "SELECT EventsTimestampNanos, EventsName, EventsAttributesKeys, EventsAttributesValues, LinksTraceId, \
         LinksAttributesKeys, LinksAttributesValues, SpanKind FROM otel.otel_traces ORDER BY TimestampNanos",
    );
    assert_eq!(rows[1]["EventsName"], json!(["exception", "retry"]));
    assert_eq!(
        rows[1]["EventsTimestampNanos"],
        json!([1_764_000_000_000_000_123u64, 1_764_000_000_000_000_456u64])
    );
    assert_eq!(
        rows[1]["EventsAttributesKeys"],
        json!([["exception.type", "n"], []])
    );
    assert_eq!(
        rows[1]["EventsAttributesValues"],
        json!([["IOError", "3"], []])
    );
    assert_eq!(rows[1]["LinksTraceId"], json!(["ab".repeat(16)]));
    assert_eq!(rows[1]["LinksAttributesKeys"], json!([["link.kind"]]));
    assert_eq!(rows[1]["LinksAttributesValues"], json!([["follows"]]));
    assert_eq!(rows[2]["SpanKind"], "Client");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn modern_layout_reads_back_field_by_field() {
    let Some(py) = python() else { return };
    let rows = roundtrip(
        &py,
        Layout::Modern,
        "SELECT toUnixTimestamp64Nano(Timestamp) AS ts, toUnixTimestamp(TimestampTime) AS secs, TraceId, SpanId, \
         TraceFlags, SeverityText, SeverityNumber, ServiceName, Body, ResourceSchemaUrl, ResourceAttributes, \
         ScopeSchemaUrl, ScopeName, ScopeVersion, ScopeAttributes, LogAttributes \
         FROM otel.otel_logs ORDER BY toInt64(LogAttributes['row'])",
    );
    let corpus = corpus();
    let expected: Vec<_> = corpus
        .iter()
        .flat_map(|rl| rl.scope_logs.iter().map(move |sl| (rl, sl)))
        .flat_map(|(rl, sl)| sl.log_records.iter().map(move |r| (rl, sl, r)))
        .collect();
    assert_eq!(rows.len(), expected.len());
    for (row, (rl, sl, r)) in rows.iter().zip(&expected) {
        assert_eq!(row["ts"], json!(r.time_unix_nano));
        assert_eq!(row["secs"], json!(r.time_unix_nano / 1_000_000_000));
        assert_eq!(row["TraceId"], json!(hex(&r.trace_id)));
        assert_eq!(row["SpanId"], json!(hex(&r.span_id)));
        assert_eq!(row["TraceFlags"], json!(r.flags));
        assert_eq!(row["SeverityText"], json!(r.severity_text));
        assert_eq!(row["SeverityNumber"], json!(r.severity_number));
        assert_eq!(row["ResourceSchemaUrl"], json!(rl.schema_url));
        assert_eq!(row["ScopeName"], json!(sl.scope.as_ref().unwrap().name));
        assert_eq!(
            row["ScopeVersion"],
            json!(sl.scope.as_ref().unwrap().version)
        );
        assert_eq!(row["ScopeAttributes"], json!({}));
        let service = &rl.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let Some(Value::StringValue(service)) = service.value.clone().unwrap().value else {
            panic!("service.name is a string in the fixtures")
        };
        assert_eq!(row["ServiceName"], json!(service));
        assert_eq!(row["ResourceAttributes"]["service.name"], json!(service));
        assert_eq!(row["ResourceAttributes"].as_object().unwrap().len(), 5);
        let body = match r.body.as_ref().and_then(|b| b.value.clone()) {
            Some(Value::StringValue(s)) => s,
            None => String::new(),
            other => panic!("unexpected body {other:?}"),
        };
        assert_eq!(row["Body"], json!(body));
        assert_eq!(
            row["LogAttributes"].as_object().unwrap().len(),
            r.attributes.len()
        );
    }
    let special = &rows[4]["LogAttributes"];
    assert_eq!(special["double"], "2.5");
    assert_eq!(special["bool"], "true");
    assert_eq!(special["bytes"], "AAEC/w==");
    assert_eq!(special["array"], r#"[1,"two"]"#);
    assert_eq!(special["map"], r#"{"k":0.25}"#);
    assert_eq!(special["empty"], "");
    assert_eq!(rows[5]["LogAttributes"]["attr.299"], "299");
    assert_eq!(rows[5]["Body"].as_str().unwrap().len(), 1 << 20);
    assert_eq!(rows[3]["Body"], "héllo wörld ✓ 日本語 🚀");
    assert_eq!(
        rows[1]["TraceId"], "",
        "records without trace context keep empty ids"
    );
}

#[test]
fn portable_layout_reads_back_on_the_modern_engine_too() {
    let Some(py) = python() else { return };
    let rows = roundtrip(
        &py,
        Layout::Portable,
        "SELECT TimestampNanos, toUnixTimestamp(Timestamp) AS secs, TraceId, Body, LogAttributesKeys, \
         LogAttributesValues, ResourceAttributesKeys FROM otel.otel_logs \
         ORDER BY toInt64(LogAttributesValues[indexOf(LogAttributesKeys, 'row')])",
    );
    let corpus = corpus();
    let first = &corpus[0].scope_logs[0].log_records[0];
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["TimestampNanos"], json!(first.time_unix_nano));
    assert_eq!(rows[0]["secs"], json!(first.time_unix_nano / 1_000_000_000));
    assert_eq!(rows[0]["TraceId"], json!(hex(&first.trace_id)));
    assert_eq!(
        rows[0]["LogAttributesKeys"],
        json!(["code.function", "order.items", "row"])
    );
    assert_eq!(
        rows[0]["LogAttributesValues"],
        json!(["process_order", "0", "0"])
    );
    assert_eq!(rows[0]["ResourceAttributesKeys"][0], "service.name");
    assert_eq!(rows[3]["Body"], "héllo wörld ✓ 日本語 🚀");
}

/// One metric of each kind, with exemplars, bucket arrays and quantiles.
fn metrics() -> Vec<opentelemetry_proto::tonic::metrics::v1::ResourceMetrics> {
    use opentelemetry_proto::tonic::metrics::v1::{
        exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
        summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
        ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric, Summary,
        SummaryDataPoint,
    };
    let mut rm = fixtures::resource_metrics(1, 4);
    let t = 1_764_000_000_000_000_000u64;
    let exemplar = Exemplar {
        filtered_attributes: vec![kv("user", Value::StringValue("u1".into()))],
        time_unix_nano: t + 5,
        value: Some(exemplar::Value::AsInt(7)),
        span_id: vec![0x11; 8],
        trace_id: vec![0x22; 16],
    };
    let metrics = &mut rm[0].scope_metrics[0].metrics;
    if let Some(Data::Gauge(g)) = &mut metrics[0].data {
        g.data_points[0].exemplars = vec![exemplar.clone()];
        g.data_points[1].value = Some(number_data_point::Value::AsInt(-3));
    }
    metrics.push(Metric {
        name: "http.server.duration".into(),
        unit: "ms".into(),
        description: "request latency".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: vec![kv("route", Value::StringValue("/a".into()))],
                start_time_unix_nano: t,
                time_unix_nano: t + 10,
                count: 6,
                sum: Some(42.5),
                bucket_counts: vec![1, 2, 3],
                explicit_bounds: vec![10.0, 100.0],
                exemplars: vec![exemplar],
                min: Some(0.5),
                max: Some(250.0),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    });
    metrics.push(Metric {
        name: "queue.wait".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: t + 20,
                count: 9,
                sum: Some(3.25),
                scale: 3,
                zero_count: 1,
                positive: Some(Buckets {
                    offset: -2,
                    bucket_counts: vec![4, 4],
                }),
                negative: None,
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    });
    metrics.push(Metric {
        name: "gc.pause".into(),
        data: Some(Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                time_unix_nano: t + 30,
                count: 100,
                sum: 12.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 0.1,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 0.9,
                    },
                ],
                ..Default::default()
            }],
        })),
        ..Default::default()
    });
    rm
}

fn metric_rows(py: &str, layout: Layout, kind: MetricTable, select: &str) -> Vec<Json> {
    let o = opts("otel_metrics");
    let mut out: [Vec<u8>; 5] = Default::default();
    let rows = Encoder::default().metrics(&metrics(), layout, &mut out);
    assert_eq!(rows, [2, 2, 1, 1, 1]);
    let table = format!("otel_metrics_{}", kind.suffix());
    let ddl = vec![create_database(&o), metrics_table(kind, layout, &o)];
    load(
        py,
        ddl,
        &table,
        insert_columns(kind.columns(), layout),
        &out[kind as usize],
        select,
    )
}

// ClickHouse's JSON writes integral doubles without a fraction (7, not 7.0).
#[test]
fn metrics_modern_layout_all_five_tables() {
    let Some(py) = python() else { return };
    let g = metric_rows(
        &py,
        Layout::Modern,
        MetricTable::Gauge,
        "SELECT MetricName, Value, Attributes, ServiceName, Exemplars.Value AS ev, Exemplars.TraceId AS et, \
         Exemplars.FilteredAttributes AS ea, toUnixTimestamp64Nano(TimeUnix) AS t FROM otel.otel_metrics_gauge ORDER BY t",
    );
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["MetricName"], "system.cpu.utilization");
    assert_eq!(g[0]["ev"], json!([7]));
    assert_eq!(g[0]["et"], json!(["22".repeat(16)]));
    assert_eq!(g[0]["ea"], json!([{"user": "u1"}]));
    assert_eq!(g[1]["Value"], json!(-3));
    assert_eq!(g[0]["Attributes"], json!({"cpu": "0"}));
    let s = metric_rows(
        &py,
        Layout::Modern,
        MetricTable::Sum,
        "SELECT Value, AggregationTemporality, IsMonotonic FROM otel.otel_metrics_sum ORDER BY Value",
    );
    assert_eq!(
        s[0],
        json!({"Value": 1, "AggregationTemporality": 2, "IsMonotonic": true})
    );
    let h = metric_rows(
        &py,
        Layout::Modern,
        MetricTable::Histogram,
        "SELECT MetricUnit, MetricDescription, Count, Sum, BucketCounts, ExplicitBounds, Min, Max, \
         AggregationTemporality, Exemplars.SpanId AS es FROM otel.otel_metrics_histogram",
    );
    assert_eq!(
        h[0],
        json!({"MetricUnit": "ms", "MetricDescription": "request latency", "Count": 6, "Sum": 42.5,
               "BucketCounts": [1, 2, 3], "ExplicitBounds": [10, 100], "Min": 0.5, "Max": 250,
               "AggregationTemporality": 2, "es": ["11".repeat(8)]})
    );
    let e = metric_rows(
        &py,
        Layout::Modern,
        MetricTable::ExponentialHistogram,
        "SELECT Count, Scale, ZeroCount, PositiveOffset, PositiveBucketCounts, NegativeBucketCounts \
         FROM otel.otel_metrics_exponential_histogram",
    );
    assert_eq!(
        e[0],
        json!({"Count": 9, "Scale": 3, "ZeroCount": 1, "PositiveOffset": -2, "PositiveBucketCounts": [4, 4],
               "NegativeBucketCounts": []})
    );
    let q = metric_rows(
        &py,
        Layout::Modern,
        MetricTable::Summary,
        "SELECT Count, Sum, ValueAtQuantiles.Quantile AS q, ValueAtQuantiles.Value AS v FROM otel.otel_metrics_summary",
    );
    assert_eq!(
        q[0],
        json!({"Count": 100, "Sum": 12, "q": [0.5, 0.99], "v": [0.1, 0.9]})
    );
}

#[test]
fn metrics_portable_layout_reads_back() {
    let Some(py) = python() else { return };
    let g = metric_rows(
        &py,
        Layout::Portable,
        MetricTable::Gauge,
        "SELECT ExemplarsValue, ExemplarsFilteredAttributesKeys AS k, ExemplarsTimeUnixNanos AS t, AttributesValues \
         FROM otel.otel_metrics_gauge ORDER BY TimeUnixNanos",
    );
    assert_eq!(g[0]["ExemplarsValue"], json!([7]));
    assert_eq!(g[0]["k"], json!([["user"]]));
    assert_eq!(g[0]["t"], json!([1_764_000_000_000_000_005u64]));
    let q = metric_rows(
        &py,
        Layout::Portable,
        MetricTable::Summary,
        "SELECT ValueAtQuantilesQuantile AS q, ValueAtQuantilesValue AS v FROM otel.otel_metrics_summary",
    );
    assert_eq!(q[0], json!({"q": [0.5, 0.99], "v": [0.1, 0.9]}));
}

/// The sharding keys of a cluster's Distributed tables are valid expressions over Weir's rows on the
/// modern engine, in both layouts (the 18.16 cluster test in tests/python runs them for real): a log
/// with a trace id goes where its trace's spans go, the others by their content.
#[test]
fn cluster_sharding_keys_evaluate_over_the_rows() {
    let Some(py) = python() else { return };
    for layout in [Layout::Modern, Layout::Portable] {
        let rows = roundtrip(
            &py,
            layout,
            &format!(
                "SELECT TraceId, {} AS key, {TRACES_SHARD_KEY} AS trace FROM otel.otel_logs",
                logs_shard_key(layout)
            ),
        );
        assert_eq!(rows.len(), 6);
        let (traced, untraced): (Vec<&Json>, Vec<&Json>) =
            rows.iter().partition(|r| r["TraceId"] != "");
        assert!(!traced.is_empty() && !untraced.is_empty(), "{rows:?}");
        for r in traced {
            assert_eq!(r["key"], r["trace"], "{layout:?}: {r}");
        }
        let keys: std::collections::HashSet<String> =
            untraced.iter().map(|r| r["key"].to_string()).collect();
        assert_eq!(
            keys.len(),
            untraced.len(),
            "untraced logs spread by content"
        );
        let points = metric_rows(
            &py,
            layout,
            MetricTable::Gauge,
            &format!(
                "SELECT {} AS key FROM otel.otel_metrics_gauge",
                metrics_shard_key(layout)
            ),
        );
        assert_eq!(points.len(), 2, "{layout:?}");
    }
}
