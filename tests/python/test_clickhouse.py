"""Logs sent by the OpenTelemetry Python SDK reach a real ClickHouse server (Debian's 18.16, so the
portable layout) through weir, with exact values and exactly as many rows as records sent — also when
ClickHouse is down for 30 seconds in the middle of the load."""

import logging
import threading
import time

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from conftest import REPO, Weir

DB = "weir_e2e"


def start_weir(tmp_path, clickhouse):
    # The shipped example, pointed at this test's server; quick retries so the outage test is short.
    config = tmp_path / "clickhouse.yaml"
    text = (REPO / "examples" / "clickhouse.yaml").read_text()
    text = text.replace("    max_in_flight: 2\n", "    max_in_flight: 2\n    retry: {initial_backoff: 100ms, max_backoff: 1s}\n")
    text = text.replace("      max_age: 5s\n", "      max_age: 200ms\n")
    config.write_text(text)
    return Weir(tmp_path, config=config, env={"CLICKHOUSE_URL": clickhouse.url, "CLICKHOUSE_DATABASE": DB})


def sdk_logger(weir, name):
    provider = LoggerProvider(resource=Resource.create({"service.name": "py-clickhouse"}))
    exporter = OTLPLogExporter(endpoint=f"http://{weir.grpc}", insecure=True)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=100))
    log = logging.getLogger(name)
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    return provider, log


def wait_rows(clickhouse, want, timeout=60):
    deadline = time.time() + timeout
    n = -1
    while time.time() < deadline:
        try:
            n = int(clickhouse.query(f"SELECT count() FROM {DB}.otel_logs"))
        except OSError:
            n = -1
        if n >= want:
            return n
        time.sleep(0.2)
    return n


def test_sdk_logs_arrive_as_exact_rows(tmp_path, clickhouse):
    weir = start_weir(tmp_path, clickhouse)
    provider, log = sdk_logger(weir, "ch-exact")
    tracer = TracerProvider().get_tracer("t")
    sent = {}
    for i in range(500):
        with tracer.start_as_current_span("op") as span:
            log.error("payment %d failed: ünïcode ✓", i, extra={"i": i, "amount": i * 1.5, "ok": False})
            sent[i] = f"{span.get_span_context().trace_id:032x}"
    provider.shutdown()

    assert wait_rows(clickhouse, 500) == 500, weir.log()
    rows = clickhouse.rows(
        f"SELECT TimestampNanos, TraceId, SpanId, SeverityText, SeverityNumber, ServiceName, Body, "
        f"LogAttributesKeys AS k, LogAttributesValues AS v, ScopeName FROM {DB}.otel_logs")
    assert len(rows) == 500
    seen = set()
    for r in rows:
        attrs = dict(zip(r["k"], r["v"]))
        i = int(attrs["i"])
        seen.add(i)
        assert r["Body"] == f"payment {i} failed: ünïcode ✓"
        assert r["TraceId"] == sent[i]
        assert len(r["SpanId"]) == 16
        assert r["SeverityText"] == "ERROR" and r["SeverityNumber"] == 17
        assert r["ServiceName"] == "py-clickhouse"
        # Doubles as their shortest round-trip text, without a trailing ".0" (as the collector writes them).
        amount = repr(i * 1.5)
        assert attrs["amount"] == (amount[:-2] if amount.endswith(".0") else amount)
        assert attrs["ok"] == "false"
        assert r["ScopeName"] == "ch-exact"
        assert int(r["TimestampNanos"]) > 1_700_000_000 * 10**9
    assert seen == set(range(500))
    assert weir.metric("weir_exporter_sent_items_total", 'exporter="clickhouse"') == 500
    assert weir.stop() == 0


def test_thirty_second_outage_loses_nothing_and_duplicates_nothing(tmp_path, clickhouse):
    weir = start_weir(tmp_path, clickhouse)
    provider, log = sdk_logger(weir, "ch-outage")

    def load(start, count):
        for i in range(start, start + count):
            log.warning("event %d", i, extra={"i": i})
            if i % 100 == 99:
                time.sleep(0.05)
        provider.force_flush()

    load(0, 1000)
    assert wait_rows(clickhouse, 1000) == 1000, weir.log()
    clickhouse.stop()
    down_since = time.time()
    # While ClickHouse is down weir keeps accepting, holds the batches and retries.
    sender = threading.Thread(target=load, args=(1000, 2000))
    sender.start()
    sender.join()
    provider.shutdown()
    assert weir.metric("weir_receiver_accepted_items_total", 'signal="logs"') == 3000
    time.sleep(max(0.0, 30 - (time.time() - down_since)))
    assert weir.metric("weir_exporter_retries_total", 'exporter="clickhouse"') > 0, weir.log()
    clickhouse.start()

    assert wait_rows(clickhouse, 3000) == 3000, weir.log()
    distinct = int(clickhouse.query(
        f"SELECT uniqExact(LogAttributesValues[indexOf(LogAttributesKeys, 'i')]) FROM {DB}.otel_logs"))
    assert distinct == 3000
    time.sleep(1)
    assert int(clickhouse.query(f"SELECT count() FROM {DB}.otel_logs")) == 3000, "no duplicates"
    assert weir.metric("weir_exporter_failed_items_total", 'exporter="clickhouse"') == 0
    assert weir.stop() == 0


def test_sdk_spans_arrive_with_events_links_and_status(tmp_path, clickhouse):
    from opentelemetry import trace as api
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    weir = start_weir(tmp_path, clickhouse)
    provider = TracerProvider(resource=Resource.create({"service.name": "py-traces"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{weir.grpc}", insecure=True)))
    tracer = provider.get_tracer("ch-traces")
    sent = {}
    for i in range(200):
        with tracer.start_as_current_span("parent", kind=api.SpanKind.SERVER, attributes={"i": i}) as parent:
            parent.add_event("checkpoint", {"step": i})
            with tracer.start_as_current_span("child", kind=api.SpanKind.CLIENT,
                                              links=[api.Link(parent.get_span_context(), {"why": "retry"})]) as child:
                child.set_status(api.Status(api.StatusCode.ERROR, "backend down"))
            ctx = parent.get_span_context()
            sent[f"{ctx.span_id:016x}"] = (f"{ctx.trace_id:032x}", f"{child.get_span_context().span_id:016x}", i)
    provider.shutdown()

    deadline = time.time() + 60
    n = 0
    while time.time() < deadline and n < 400:
        n = int(clickhouse.query(f"SELECT count() FROM {DB}.otel_traces"))
        time.sleep(0.2)
    assert n == 400, weir.log()
    parents = clickhouse.rows(
        f"SELECT SpanId, TraceId, SpanKind, ServiceName, EventsName, EventsAttributesKeys, EventsAttributesValues, "
        f"SpanAttributesValues, Duration FROM {DB}.otel_traces WHERE SpanName = 'parent'")
    assert len(parents) == 200
    for p in parents:
        trace_id, _, i = sent[p["SpanId"]]
        assert p["TraceId"] == trace_id
        assert p["SpanKind"] == "Server" and p["ServiceName"] == "py-traces"
        assert p["EventsName"] == ["checkpoint"]
        assert p["EventsAttributesKeys"] == [["step"]] and p["EventsAttributesValues"] == [[str(i)]]
        assert p["SpanAttributesValues"] == [str(i)]
        assert int(p["Duration"]) > 0
    children = clickhouse.rows(
        f"SELECT SpanId, ParentSpanId, SpanKind, StatusCode, StatusMessage, LinksTraceId, LinksSpanId, "
        f"LinksAttributesKeys, LinksAttributesValues FROM {DB}.otel_traces WHERE SpanName = 'child'")
    by_parent = {c["ParentSpanId"]: c for c in children}
    for parent_id, (trace_id, child_id, _) in sent.items():
        c = by_parent[parent_id]
        assert c["SpanId"] == child_id
        assert (c["SpanKind"], c["StatusCode"], c["StatusMessage"]) == ("Client", "Error", "backend down")
        assert c["LinksTraceId"] == [trace_id] and c["LinksSpanId"] == [parent_id]
        assert c["LinksAttributesKeys"] == [["why"]] and c["LinksAttributesValues"] == [["retry"]]
    lookups = int(clickhouse.query(f"SELECT count() FROM {DB}.otel_traces_trace_id_ts"))
    assert lookups >= 200, "the materialized view fed the trace-id lookup table"
    assert weir.stop() == 0


def test_sdk_metrics_land_in_their_tables(tmp_path, clickhouse):
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    weir = start_weir(tmp_path, clickhouse)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"http://{weir.grpc}", insecure=True), 60_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "py-metrics"}), metric_readers=[reader])
    meter = provider.get_meter("ch-metrics")
    orders = meter.create_counter("orders", unit="{order}", description="orders placed")
    latency = meter.create_histogram("latency", unit="ms")
    meter.create_observable_gauge("temperature", callbacks=[lambda _: [Observation(21.5, {"room": "a"})]])
    for i in range(100):
        orders.add(1, {"shop": f"s{i % 2}"})
        latency.record(i, {"route": "/x"})
    provider.shutdown()

    def wait_count(table, want):
        deadline = time.time() + 30
        n = 0
        while time.time() < deadline and n < want:
            n = int(clickhouse.query(f"SELECT count() FROM {DB}.otel_metrics_{table}"))
            time.sleep(0.2)
        return n

    assert wait_count("sum", 2) == 2, weir.log()
    sums = clickhouse.rows(
        f"SELECT AttributesValues AS shop, Value, IsMonotonic, AggregationTemporality, MetricUnit, "
        f"MetricDescription, ServiceName FROM {DB}.otel_metrics_sum ORDER BY shop")
    assert [(r["shop"], r["Value"]) for r in sums] == [(["s0"], 50), (["s1"], 50)]
    assert sums[0]["IsMonotonic"] == 1 and sums[0]["AggregationTemporality"] == 2
    assert (sums[0]["MetricUnit"], sums[0]["MetricDescription"], sums[0]["ServiceName"]) == (
        "{order}", "orders placed", "py-metrics")
    assert wait_count("histogram", 1) == 1
    h = clickhouse.rows(f"SELECT Count, Sum, Min, Max, length(BucketCounts) AS b, "
                        f"length(ExplicitBounds) AS e FROM {DB}.otel_metrics_histogram")[0]
    assert (int(h["Count"]), h["Sum"], h["Min"], h["Max"]) == (100, sum(range(100)), 0, 99)
    assert int(h["b"]) == int(h["e"]) + 1
    assert wait_count("gauge", 1) == 1
    g = clickhouse.rows(f"SELECT Value, AttributesKeys FROM {DB}.otel_metrics_gauge")[0]
    assert (g["Value"], g["AttributesKeys"]) == (21.5, ["room"])
    assert weir.stop() == 0
