"""Sends log records through the OpenTelemetry Python SDK (OTLP/gRPC) to the endpoint given, for tests
driven from Rust. usage: send_logs.py ENDPOINT COUNT SERVICE"""

import logging
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

endpoint, count, service = sys.argv[1], int(sys.argv[2]), sys.argv[3]
provider = LoggerProvider(resource=Resource.create({"service.name": service, "k8s.namespace.name": "prod"}))
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
log = logging.getLogger("sdk-sender")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
tracer = TracerProvider().get_tracer("sdk-sender")
for i in range(count):
    with tracer.start_as_current_span("op") as span:
        ctx = span.get_span_context()
        log.warning("record %d", i, extra={"i": i})
        print(f"{i} {ctx.trace_id:032x} {ctx.span_id:016x}")
provider.shutdown()
