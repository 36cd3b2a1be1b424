"""Logs decided with their traces, through the shipped examples/sampling.yaml and the OpenTelemetry
Python SDK (logging handler inside spans, so records carry the span's context): every kept trace
arrives with all of its log lines, INFO included, named by the policy that kept it; every dropped
trace's lines are counted dropped; an ERROR line saves a trace whose spans look fine; health checks
are dropped even when they fail; lines outside any trace follow the log rules."""

import logging
import time
from collections import defaultdict

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from conftest import REPO, Weir

N = 60
KINDS = ["error", "health", "error-log", "slow", "ordinary", "ordinary"]


def policy_of(attributes):
    for kv in attributes:
        if kv["key"] == "weir.sampling.policy":
            return kv["value"]["stringValue"]
    return None


def settle(read, timeout=15):
    """The value once it stops changing (decisions are counted as they are made)."""
    deadline = time.time() + timeout
    last = read()
    while time.time() < deadline:
        time.sleep(0.3)
        now = read()
        if now == last:
            return now
        last = now
    return last


def test_logs_leave_with_their_traces_decision(tmp_path):
    weir = Weir(tmp_path, config=REPO / "examples" / "sampling.yaml",
                env={"WEIR_TAIL_PROBABILITY": "0", "WEIR_TRACE_PROBABILITY": "1.0"})
    try:
        url = f"http://{weir.grpc}"
        resource = Resource.create({"service.name": "py-tail"})
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url, insecure=True)))
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=url, insecure=True)))
        tracer = tracer_provider.get_tracer("tail-logs")
        pylog = logging.getLogger("weir-tail-logs")
        pylog.propagate = False
        pylog.setLevel(logging.INFO)
        pylog.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

        trace_kind, sent_logs = {}, defaultdict(set)
        for i in range(N):
            kind = KINDS[i % len(KINDS)]
            attrs = {"http.route": "/healthz"} if kind == "health" else {"http.route": "/orders"}
            with tracer.start_as_current_span(f"request-{i}", attributes=attrs) as root:
                trace_id = f"{root.get_span_context().trace_id:032x}"
                trace_kind[trace_id] = kind
                start = time.time_ns()
                child = tracer.start_span(f"db-{i}", start_time=start)
                if kind in ("error", "health"):
                    child.set_status(Status(StatusCode.ERROR, "boom"))
                child.end(end_time=start + (600_000_000 if kind == "slow" else 2_000_000))
                with tracer.start_as_current_span(f"render-{i}"):
                    pylog.info("handling %d", i)
                    sent_logs[trace_id].add(f"handling {i}")
                    if kind == "error-log":
                        pylog.error("payment provider refused %d", i)
                        sent_logs[trace_id].add(f"payment provider refused {i}")
                pylog.info("done %d", i)
                sent_logs[trace_id].add(f"done {i}")
        for j in range(20):
            pylog.info("untraced info %d", j)
        for j in range(5):
            pylog.warning("untraced warning %d", j)
        # Logs first: an ERROR line must be held before its trace is decided.
        logger_provider.shutdown()
        tracer_provider.shutdown()

        must_keep = {"error": "errors", "error-log": "error-logs", "slow": "slow"}
        want_spans = 3 * sum(1 for k in trace_kind.values() if k in must_keep)
        deadline = time.time() + 30
        while len(weir.spans()) < want_spans and time.time() < deadline:
            time.sleep(0.1)
        settle(lambda: (len(weir.spans()), len(weir.records()), weir.metric("weir_tail_traces")))

        spans = defaultdict(list)
        for s in weir.spans():
            spans[s["traceId"]].append(policy_of(s["attributes"]))
        logs, untraced = defaultdict(list), []
        for r in weir.records():
            if r.get("traceId"):
                logs[r["traceId"]].append((r["body"]["stringValue"], policy_of(r["attributes"])))
            else:
                untraced.append(r["body"]["stringValue"])

        dropped_lines = 0
        for trace_id, kind in trace_kind.items():
            kept = trace_id in spans
            if kind in must_keep:
                assert spans[trace_id] == [must_keep[kind]] * 3, (kind, spans[trace_id], weir.log())
            if kind == "health":
                assert not kept, "health checks are dropped even when they fail"
            if kept:
                policy = spans[trace_id][0]
                assert {body for body, _ in logs[trace_id]} == sent_logs[trace_id], kind
                assert len(logs[trace_id]) == len(sent_logs[trace_id]), "each line once"
                assert all(p == policy for _, p in logs[trace_id]), (kind, logs[trace_id])
            else:
                assert trace_id not in logs, f"a dropped {kind} trace left logs behind"
                dropped_lines += len(sent_logs[trace_id])
        assert dropped_lines > 0
        assert settle(lambda: weir.metric("weir_sampled_out_items_total", 'signal="logs"', 'rule="tail"')) \
            == dropped_lines
        assert weir.metric("weir_tail_traces_total", 'decision="drop"', 'policy="health-checks"') \
            == sum(1 for k in trace_kind.values() if k == "health")

        warnings = sorted(b for b in untraced if b.startswith("untraced warning"))
        assert warnings == [f"untraced warning {j}" for j in range(5)], "warnings outside traces kept"
        infos = sum(1 for b in untraced if b.startswith("untraced info"))
        assert infos + weir.metric("weir_sampled_out_items_total", 'signal="logs"', 'rule="info"') == 20
        assert weir.stop() == 0, weir.log()[-4000:]
    finally:
        if weir.proc.poll() is None:
            weir.proc.kill()
            weir.proc.wait()
