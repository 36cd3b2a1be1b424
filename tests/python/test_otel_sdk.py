"""The OpenTelemetry Python SDK sends through the real `weir` binary over OTLP/gRPC and OTLP/HTTP, both
gzip-compressed; every span, log record and metric point arrives with identical ids, attributes and
bodies."""

import logging
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

N = 300


def exporters(transport: str, weir):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
        url = f"http://{weir.grpc}"
        kw = dict(endpoint=url, insecure=True, compression=Compression.Gzip)
        return OTLPSpanExporter(**kw), OTLPLogExporter(**kw), OTLPMetricExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    base = f"http://{weir.http}"
    return (OTLPSpanExporter(endpoint=f"{base}/v1/traces", compression=Compression.Gzip),
            OTLPLogExporter(endpoint=f"{base}/v1/logs", compression=Compression.Gzip),
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", compression=Compression.Gzip))


def attr(attrs, key):
    for kv in attrs:
        if kv["key"] == key:
            return kv["value"]
    raise KeyError(key)


def wait_for(fn, want, timeout=20):
    deadline = time.time() + timeout
    got = fn()
    while got < want and time.time() < deadline:
        time.sleep(0.05)
        got = fn()
    return got


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_signals_arrive_intact(weir, transport):
    span_exp, log_exp, metric_exp = exporters(transport, weir)
    resource = Resource.create({"service.name": f"py-{transport}", "deployment.environment": "ci"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exp))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exp))
    meter_provider = MeterProvider(resource=resource,
                                   metric_readers=[PeriodicExportingMetricReader(metric_exp, 60_000)])
    tracer = tracer_provider.get_tracer("weir-test")
    pylog = logging.getLogger(f"weir-test-{transport}")
    pylog.propagate = False
    pylog.setLevel(logging.INFO)
    pylog.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    counter = meter_provider.get_meter("weir-test").create_counter("orders")

    sent_spans, sent_logs = {}, {}
    for i in range(N):
        with tracer.start_as_current_span(f"op-{i}", attributes={"i": i, "path": f"/p/{i}", "ok": i % 2 == 0,
                                                                 "ratio": i / 7}) as span:
            ctx = span.get_span_context()
            sent_spans[f"{ctx.span_id:016x}"] = (f"{ctx.trace_id:032x}", f"op-{i}", i)
            pylog.warning("log line %d ünïcode", i, extra={"i": i})
            sent_logs[i] = (f"log line {i} ünïcode", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
        counter.add(1, {"shard": str(i % 3)})

    tracer_provider.shutdown()
    logger_provider.shutdown()
    meter_provider.shutdown()

    assert wait_for(lambda: len(weir.spans()), N) == N, weir.log()
    assert wait_for(lambda: len(weir.records()), N) == N, weir.log()

    got_spans = {}
    for s in weir.spans():
        i = int(attr(s["attributes"], "i")["intValue"])
        assert attr(s["attributes"], "path") == {"stringValue": f"/p/{i}"}
        assert attr(s["attributes"], "ok") == {"boolValue": i % 2 == 0}
        assert attr(s["attributes"], "ratio")["doubleValue"] == pytest.approx(i / 7)
        got_spans[s["spanId"]] = (s["traceId"], s["name"], i)
    assert got_spans == sent_spans

    got_logs = {}
    for r in weir.records():
        i = int(attr(r["attributes"], "i")["intValue"])
        got_logs[i] = (r["body"]["stringValue"], r["traceId"], r["spanId"])
        assert r["severityText"] == "WARN" or r["severityText"] == "WARNING"
    assert got_logs == sent_logs

    service_names = {attr(rs["resource"]["attributes"], "service.name")["stringValue"]
                     for req in weir.lines("traces") for rs in req["resourceSpans"]}
    assert service_names == {f"py-{transport}"}

    def counter_total():
        totals = [sum(int(p.get("asInt", 0)) for p in m["sum"]["dataPoints"])
                  for req in weir.lines("metrics") for rm in req["resourceMetrics"]
                  for sm in rm["scopeMetrics"] for m in sm["metrics"] if m["name"] == "orders"]
        return max(totals, default=0)

    assert wait_for(counter_total, N) == N
    assert weir.metric("weir_receiver_accepted_items_total", 'signal="traces"', f'transport="{transport}"') == N
    assert weir.stop() == 0
