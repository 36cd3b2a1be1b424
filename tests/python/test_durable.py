"""Durable mode under crashes and outages, with the OpenTelemetry Python SDK as the client. An item counts as
acknowledged only when the SDK's exporter reported success for the request that carried it; every one of
those must come out of weir, whatever happened to the process in between."""

import collections
import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import pytest

from conftest import REPO, free_port, wait_ready

BIN = os.environ.get("WEIR_BIN", str(REPO / "target" / "debug" / "weir"))

DURABLE = """
receivers:
  grpc: {{endpoint: "127.0.0.1:{grpc}"}}
  http: {{endpoint: "127.0.0.1:{http}"}}
pipeline:
  intake_queue: {{max_items: 20000, max_bytes: 4MiB}}
{pipeline}
durable:
  dir: "{wal}"
  max_bytes: 512MiB
  segment_bytes: 1MiB
  checkpoint_interval: 200ms
exporters:
  out:
{destination}
    queue: {{{queue}}}
    batch: {{max_age: 50ms, max_items: {max_items}}}
    retry: {{initial_backoff: 50ms, max_backoff: 500ms}}
admin: {{endpoint: "127.0.0.1:{admin}"}}
shutdown_timeout: 5s
"""


class Process:
    """A weir process that keeps its ports and directories across restarts."""

    def __init__(self, tmp: Path, name: str, destination: str, pipeline: str = "",
                 queue: str = "max_items: 20000, max_bytes: 4MiB", max_items: int = 2000):
        self.tmp = tmp
        self.grpc, self.http, self.admin = free_port(), free_port(), free_port()
        self.data = tmp / f"{name}-data"
        self.config = tmp / f"{name}.yaml"
        self.log_path = tmp / f"{name}.log"
        self.config.write_text(DURABLE.format(
            grpc=self.grpc, http=self.http, admin=self.admin, wal=tmp / f"{name}-wal",
            destination=destination.format(data=self.data), pipeline=pipeline, queue=queue,
            max_items=max_items))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([BIN, "--config", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "ab"))
        wait_ready(self.proc, f"127.0.0.1:{self.admin}", self.log_path)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=60)

    def metric(self, name: str, *filters: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and line[len(name)] in "{ " and all(f in line for f in filters))

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def span_names(self) -> collections.Counter:
        """Names of the spans in the file output; a line torn by SIGKILL is skipped (weir replays it)."""
        names = collections.Counter()
        path = self.data / "traces.jsonl"
        if not path.exists():
            return names
        for line in path.read_text().splitlines():
            try:
                req = json.loads(line)
            except ValueError:
                continue
            for rs in req["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    names.update(s["name"] for s in ss["spans"])
        return names


class Acked(SpanExporter):
    """Wraps the SDK's OTLP exporter and remembers which spans a successful export carried."""

    def __init__(self, inner):
        self.inner = inner
        self.acked = set()
        self.failed_requests = 0
        self.lock = threading.Lock()

    def export(self, spans):
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.acked.update(s.name for s in spans)
            else:
                self.failed_requests += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


class Load:
    """The SDK sending spans with unique names, at a bounded rate, until stopped."""

    def __init__(self, port: int, rate: int):
        self.exporter = Acked(OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, timeout=3))
        self.provider = TracerProvider(resource=Resource.create({"service.name": "durable-test"}))
        self.provider.add_span_processor(BatchSpanProcessor(
            self.exporter, max_queue_size=200_000, schedule_delay_millis=20, max_export_batch_size=200))
        self.tracer = self.provider.get_tracer("durable-test")
        self.rate = rate
        self.sent = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        start = time.time()
        while not self.stopping.is_set():
            due = int((time.time() - start) * self.rate)
            while self.sent < due:
                with self.tracer.start_as_current_span(f"s-{self.sent}") as span:
                    # Incompressible, so the backlog on disk is as large as it is in memory.
                    span.set_attribute("payload", os.urandom(100).hex())
                self.sent += 1
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.provider.force_flush(30_000)
        self.provider.shutdown()
        return self.exporter.acked


def wait_for_all(proc: Process, acked: set, timeout: float) -> collections.Counter:
    deadline = time.time() + timeout
    while True:
        names = proc.span_names()
        if acked <= names.keys() or time.time() > deadline:
            return names
        time.sleep(0.25)


# Tail sampling holds spans for a second before deciding: killed while they wait, they must come back.
TAIL = """  sample:
    tail:
      decision_wait: 1s
      root_wait: 1s
      policies:
        - {name: all, probability: 1.0}"""


@pytest.mark.parametrize("pipeline", ["", TAIL], ids=["stages", "tail_sampling"])
def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path, pipeline):
    # A kill between an export and the checkpoint that records it replays that whole export. While
    # Weir catches up after a restart its batches fill to max_items, so with 2000 one such kill alone
    # was 2000 duplicates, over the 5 % bound below (seen once in five CI runs); 500 keeps the bound
    # about the mechanism (replay of what was in flight), not about where a kill happened to land.
    weir = Process(tmp_path, "weir", '    file: {{path: "{data}", rotate_bytes: 4GiB}}', pipeline,
                   max_items=500)
    weir.start()
    # WEIR_KILL_RATE / WEIR_KILLS turn this into the measurement quoted in the README.
    rate, planned = int(os.environ.get("WEIR_KILL_RATE", "3000")), int(os.environ.get("WEIR_KILLS", "10"))
    load = Load(weir.grpc, rate=rate)
    rng = random.Random(9)
    kills = 0
    try:
        for _ in range(planned):
            time.sleep(rng.uniform(0.3, 1.5))
            weir.kill9()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            weir.start()
        time.sleep(1.0)
        acked = load.stop()
        names = wait_for_all(weir, acked, 60)
        recovered = weir.metric("weir_wal_recovered_records_total", 'signal="traces"')
    finally:
        weir.stop()
    missing = acked - names.keys()
    duplicates = sum(n - 1 for n in names.values() if n > 1)
    print(f"kills={kills} sent={load.sent} acked={len(acked)} failed_requests={load.exporter.failed_requests} "
          f"delivered_unique={len(names)} duplicates={duplicates} recovered_records_last_start={recovered}")
    assert kills == planned
    assert len(acked) > 500 * planned, "the load must have kept flowing between kills"
    assert not missing, f"{len(missing)} acknowledged spans lost, e.g. {sorted(missing)[:5]}"
    assert set(names) <= {f"s-{i}" for i in range(load.sent)}
    # At least once: a kill replays the records in flight (completions reach the checkpoint within a
    # few milliseconds of delivery). Tail sampling keeps records in flight while it holds their spans.
    limit = 0.05 if not pipeline else 0.25
    assert duplicates <= len(acked) * limit, f"{duplicates} duplicates of {len(acked)}"


def test_destination_down_for_a_minute_backlog_waits_on_disk_then_drains(tmp_path):
    gateway = Process(tmp_path, "gateway", '    file: {{path: "{data}", rotate_bytes: 4GiB}}')
    gateway.start()
    edge = Process(tmp_path, "edge",
                   f'    otlp: {{{{endpoints: ["127.0.0.1:{gateway.grpc}"], compression: zstd}}}}')
    edge.start()
    load = Load(edge.grpc, rate=2500)
    try:
        time.sleep(3)
        gateway.stop()
        outage_start = time.time()
        peak_rss, peak_wal = 0.0, 0.0
        while time.time() - outage_start < 60:
            time.sleep(1)
            peak_rss = max(peak_rss, edge.rss_mb())
            peak_wal = max(peak_wal, edge.metric("weir_wal_bytes", 'signal="traces"'))
        backlog_age = edge.metric("weir_wal_oldest_undelivered_age_seconds", 'signal="traces"')
        gateway.start()
        time.sleep(2)
        acked = load.stop()
        names = wait_for_all(gateway, acked, 120)
        undelivered = edge.metric("weir_wal_undelivered_records", 'signal="traces"')
        deadline = time.time() + 10
        while undelivered > 0 and time.time() < deadline:
            time.sleep(0.3)
            undelivered = edge.metric("weir_wal_undelivered_records", 'signal="traces"')
        wal_after = edge.metric("weir_wal_bytes", 'signal="traces"')
    finally:
        edge.stop()
        gateway.stop()
    missing = acked - names.keys()
    print(f"acked={len(acked)} delivered_unique={len(names)} peak_rss_mb={peak_rss:.1f} "
          f"peak_wal_bytes={peak_wal:.0f} backlog_age_s={backlog_age:.1f} wal_bytes_after={wal_after:.0f}")
    assert not missing, f"{len(missing)} acknowledged spans lost, e.g. {sorted(missing)[:5]}"
    assert len(acked) > 100_000
    assert peak_wal > 16 * 2**20, "the backlog is held on disk, beyond what the queues (9 MiB) could hold"
    assert peak_rss < 150, f"memory stays bounded while the disk holds the backlog: {peak_rss} MB"
    assert backlog_age > 30, "the backlog's age is reported while the destination is down"
    assert undelivered == 0
    assert wal_after < 4 * 2**20, "delivered segments are deleted"


def test_one_destination_down_the_other_keeps_up_and_the_stuck_one_gets_everything(tmp_path):
    """Two exporters on a durable edge: its own file, and a gateway that goes down for 15 s. With
    `overflow: spill` the gateway's share waits in its spill log, so the file keeps up throughout."""
    gateway = Process(tmp_path, "gateway", '    file: {{path: "{data}", rotate_bytes: 4GiB}}')
    gateway.start()
    file_then_gateway = (
        '    file: {{path: "{data}", rotate_bytes: 4GiB}}\n'
        '    batch: {{max_age: 50ms, max_items: 2000}}\n'
        '  gw:\n'
        f'    otlp: {{{{endpoints: ["127.0.0.1:{gateway.grpc}"], compression: zstd}}}}')
    edge = Process(tmp_path, "edge", file_then_gateway,
                   queue="max_items: 20000, max_bytes: 4MiB, overflow: spill")
    edge.start()
    load = Load(edge.grpc, rate=2500)
    try:
        time.sleep(2)
        gateway.stop()
        time.sleep(15)
        # Still down: everything acknowledged so far must reach the file anyway.
        acked = load.stop()
        local = wait_for_all(edge, acked, 20)
        spilled = edge.metric("weir_spill_written_items_total", 'exporter="gw"')
        spill_peak = edge.metric("weir_spill_bytes", 'exporter="gw"')
        gateway.start()
        names = wait_for_all(gateway, acked, 60)
        deadline = time.time() + 10
        spill_after = edge.metric("weir_spill_bytes", 'exporter="gw"')
        while spill_after > 2**20 and time.time() < deadline:
            time.sleep(0.3)
            spill_after = edge.metric("weir_spill_bytes", 'exporter="gw"')
    finally:
        edge.stop()
        gateway.stop()
    print(f"acked={len(acked)} file={len(local)} gateway={len(names)} spilled_items={spilled:.0f} "
          f"spill_bytes_peak={spill_peak:.0f} spill_bytes_after={spill_after:.0f}")
    assert len(acked) > 30_000
    assert not acked - local.keys(), "the file exporter kept up while the gateway was down"
    assert spilled > 10_000, "the gateway's share went to its spill log"
    assert not acked - names.keys(), f"{len(acked - names.keys())} spans never reached the gateway"
    assert spill_after <= 2**20, "the spill log is emptied once delivered"
