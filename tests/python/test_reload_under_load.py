"""Reload under load: the OpenTelemetry Python SDK sends spans and logs continuously over OTLP/gRPC while
the sampling policies (head, log rules, tail) are swapped 100 times through `POST /admin/reload`. Every
item the SDK handed over is either exported or counted as sampled out, none unaccounted, and each reload
answers with the next policy version."""

import logging
import threading
import time
import urllib.request

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import Weir

SWAPS = 100

CONFIG = """
receivers:
  grpc: {{endpoint: "${{WEIR_GRPC_ADDR}}"}}
  http: {{endpoint: "${{WEIR_HTTP_ADDR}}"}}
reload: {{watch: false}}
pipeline:
  sample:
    traces: {{probability: {head}}}
    logs:
      rules:
        - {{name: problems, min_severity: warn, probability: 1.0}}
        - {{name: info, severity: info, probability: {info}}}
    tail:
      decision_wait: 2s
      root_wait: 100ms
      policies:
        - {{name: some, probability: {tail}}}
exporters:
  out:
    file: {{path: "${{WEIR_DATA_DIR}}"}}
    batch: {{max_age: 50ms}}
admin: {{endpoint: "${{WEIR_ADMIN_ADDR}}"}}
"""

SETTINGS = [dict(head=1.0, info=1.0, tail=1.0), dict(head=0.5, info=0.1, tail=0.5),
            dict(head=0.25, info=0.0, tail=1.0), dict(head=1.0, info=0.5, tail=0.2)]


def count(weir, signal_name, key, items):
    return sum(len(s[items]) for req in weir.lines(signal_name) for r in req[key] for s in r[next(
        k for k in r if k.startswith("scope"))])


def reload(weir):
    req = urllib.request.Request(f"http://{weir.admin}/admin/reload", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def test_hundred_swaps_under_sdk_load_lose_nothing(tmp_path):
    config = tmp_path / "weir.yaml"
    config.write_text(CONFIG.format(**SETTINGS[0]))
    weir = Weir(tmp_path, config=config)
    try:
        resource = Resource.create({"service.name": "reload-load"})
        tracer_provider = TracerProvider(resource=resource)
        # Queues large enough that the SDK itself never drops: every item it accepts reaches Weir.
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://{weir.grpc}", insecure=True),
            max_queue_size=500_000, schedule_delay_millis=50))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"http://{weir.grpc}", insecure=True),
            max_queue_size=500_000, schedule_delay_millis=50))
        tracer = tracer_provider.get_tracer("reload")
        pylog = logging.getLogger("reload-under-load")
        pylog.propagate = False
        pylog.setLevel(logging.INFO)
        pylog.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

        stop = threading.Event()
        sent = {"spans": 0, "logs": 0}

        def send():
            i = 0
            while not stop.is_set():
                with tracer.start_as_current_span(f"request-{i}"):
                    with tracer.start_as_current_span("db"):
                        pylog.info("served %d", i)
                    pylog.warning("slow %d", i)
                sent["spans"] += 2
                sent["logs"] += 2
                i += 1
                if i % 50 == 0:
                    time.sleep(0.005)

        sender = threading.Thread(target=send)
        sender.start()
        versions = []
        for swap in range(1, SWAPS + 1):
            config.write_text(CONFIG.format(**SETTINGS[swap % len(SETTINGS)]))
            status, body = reload(weir)
            assert status == 200, body
            versions.append(int(body.split()[-1]))
            time.sleep(0.03)
        stop.set()
        sender.join()
        assert versions == list(range(2, SWAPS + 2))
        tracer_provider.shutdown()
        logger_provider.shutdown()

        def accounted(signal_name, key, items):
            return count(weir, signal_name, key, items) + weir.metric(
                "weir_sampled_out_items_total", f'signal="{signal_name}"')

        deadline = time.time() + 30
        while time.time() < deadline and (
                accounted("traces", "resourceSpans", "spans") < sent["spans"]
                or accounted("logs", "resourceLogs", "logRecords") < sent["logs"]):
            time.sleep(0.2)
        assert weir.metric("weir_receiver_accepted_items_total", 'signal="traces"') == sent["spans"]
        assert weir.metric("weir_receiver_accepted_items_total", 'signal="logs"') == sent["logs"]
        assert accounted("traces", "resourceSpans", "spans") == sent["spans"], weir.log()
        assert accounted("logs", "resourceLogs", "logRecords") == sent["logs"], weir.log()
        assert sent["logs"] > 2_000, "the load ran throughout the swaps"
        # Both kinds of outcome happened, so the swaps were live.
        assert weir.metric("weir_sampled_out_items_total", 'signal="logs"') > 0
        assert count(weir, "logs", "resourceLogs", "logRecords") > 0
        assert weir.metric("weir_policy_version") == SWAPS + 1
        assert weir.stop() == 0
    finally:
        if weir.proc.poll() is None:
            weir.proc.kill()
