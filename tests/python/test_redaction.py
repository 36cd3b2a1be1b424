"""Redaction end to end: the OpenTelemetry Python SDK sends spans and logs carrying secrets in attributes,
bodies and span names through `weir` running `examples/redaction.yaml`; what reaches the exporter holds
none of them, equal emails hash equally across signals, and the per-detector counts in /metrics match
what was sent."""

import logging
import re

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from conftest import REPO, Weir
from test_otel_sdk import wait_for

N = 40
SECRETS = ["alice@example.com", "4111 1111 1111 1111", "hunter2", "10.20.30.40",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
           "AKIAIOSFODNN7EXAMPLE", "s3cr3t-t0ken", "ORD-12345678", "123-45-6789"]


def test_sdk_secrets_never_reach_the_exporter(tmp_path):
    weir = Weir(tmp_path, config=REPO / "examples" / "redaction.yaml",
                env={"WEIR_REDACT_KEY": "test-key-0123456789"})
    try:
        resource = Resource.create({"service.name": "redaction-e2e"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{weir.http}/v1/traces")))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"http://{weir.http}/v1/logs")))
        pylog = logging.getLogger("redaction-e2e")
        pylog.propagate = False
        pylog.setLevel(logging.INFO)
        pylog.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
        tracer = tracer_provider.get_tracer("redaction")

        for i in range(N):
            with tracer.start_as_current_span(f"checkout for alice@example.com #{i}") as span:
                span.set_attribute("user.email", "alice@example.com")
                span.set_attribute("db_password", "hunter2")
                span.set_attribute("authorization", "Bearer s3cr3t-t0ken")
                span.set_attribute("peer", "10.20.30.40")
                span.set_attribute("i", i)
                span.add_event("auth", {"jwt": SECRETS[4]})
            pylog.info("payment by alice@example.com card 4111 1111 1111 1111 order ORD-12345678 "
                       "key AKIAIOSFODNN7EXAMPLE ssn 123-45-6789", extra={"i": i, "password": "hunter2"})
        tracer_provider.shutdown()
        logger_provider.shutdown()

        assert wait_for(lambda: len(weir.spans()), N) == N, weir.log()
        assert wait_for(lambda: len(weir.records()), N) == N, weir.log()
        exported = (weir.data / "traces.jsonl").read_text() + (weir.data / "logs.jsonl").read_text()
        for secret in SECRETS:
            assert secret not in exported, secret

        def attr(item, key):
            return next((kv["value"] for kv in item["attributes"] if kv["key"] == key), None)

        hashes = set()
        for s in weir.spans():
            assert re.fullmatch(r"checkout for hash:[0-9a-f]{16} #\d+", s["name"]), s["name"]
            hashes.add(attr(s, "user.email")["stringValue"])
            assert attr(s, "db_password") is None, "dropped by key rule"
            assert attr(s, "authorization") == {"stringValue": "****"}
            assert attr(s, "peer") == {"stringValue": "****"}
            assert attr(s, "weir.redacted.count") == {"intValue": "6"}
            assert s["events"][0]["attributes"][0]["value"] == {"stringValue": "****"}
        for r in weir.records():
            body = r["body"]["stringValue"]
            m = re.fullmatch(r"payment by (hash:[0-9a-f]{16}) card \*\*\*\* order \*\*\*\* key \*\*\*\* ssn \*\*\*\*",
                             body)
            assert m, body
            hashes.add(m.group(1))
            assert attr(r, "password") is None
        assert len(hashes) == 1, f"one email, one hash across spans and logs: {hashes}"

        def count(detector, action):
            return weir.metric("weir_redactions_total", f'detector="{detector}"', f'action="{action}"')

        assert count("email", "hash") == 3 * N  # span name, span attribute, log body
        assert count("credit_card", "mask") == N
        assert count("key:*password*", "drop") == 2 * N
        assert count("key:authorization", "mask") == N
        assert count("ipv4", "mask") == N
        assert count("jwt", "mask") == N
        assert count("order-id", "mask") == N
        assert count("aws_access_key", "mask") == N
        assert count("us_ssn", "mask") == N
        assert weir.stop() == 0
    finally:
        if weir.proc.poll() is None:
            weir.proc.kill()
