"""Weir's `cluster:` mode on a real ClickHouse cluster (ch_cluster.py: ZooKeeper + Debian's 18.16 servers,
two shards × two replicas, `internal_replication`): Weir creates the schema ON CLUSTER, the OpenTelemetry
Python SDK sends logs, traces and metrics, and every row is readable through the Distributed tables,
stored on both replicas of exactly one shard, with a trace's spans (and its logs) on one shard. Then a
replica is stopped (SIGSTOP) and killed (SIGKILL) under SDK load — the server Weir writes through, or
one behind the Distributed table: inserts go on through the other servers, and once the dead replica
is back every acknowledged row is stored exactly once."""

import logging
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from conftest import REPO, Weir, free_port, wait_ready

BIN = os.environ.get("WEIR_BIN", str(REPO / "target" / "debug" / "weir"))

LOG_ID = "LogAttributesValues[indexOf(LogAttributesKeys, 'id')]"
SPAN_ID = "SpanAttributesValues[indexOf(SpanAttributesKeys, 'id')]"


@pytest.fixture
def cluster_weir(tmp_path):
    """Starts Weir for the cluster (see `start_weir`); whatever the test's outcome, Weir is gone after."""
    started = []

    def start(db, servers, timeout="30s"):
        started.append(start_weir(tmp_path, db, servers, timeout))
        return started[-1]
    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()


def start_weir(tmp_path, db, servers, timeout):
    """Weir with the ClickHouse exporter in cluster mode, writing through `servers[0]` and failing over
    to the others in order."""
    failover = "".join(f"\n        - {s.url}" for s in servers[1:])
    if failover:
        failover = "\n      failover_endpoints:" + failover
    config = tmp_path / "weir.yaml"
    config.write_text(f"""receivers:
  grpc:
    endpoint: ${{WEIR_GRPC_ADDR}}
  http:
    endpoint: ${{WEIR_HTTP_ADDR}}
exporters:
  ch:
    clickhouse:
      endpoint: {servers[0].url}{failover}
      database: {db}
      cluster: weir
    batch:
      max_items: 5000
      max_age: 200ms
    max_in_flight: 2
    timeout: {timeout}
    retry: {{initial_backoff: 100ms, max_backoff: 1s}}
admin:
  endpoint: ${{WEIR_ADMIN_ADDR}}
""")
    return Weir(tmp_path, config=config)


def values(server, sql) -> list:
    """One value per row (TSV of one column)."""
    return server.query(sql).splitlines()


def wait_until(check, timeout, what):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: {last}")


def count_is(server, sql, n):
    got = int(server.query(sql))
    return True if got == n else f"{got} rows, want {n}"


def replicas_agree(cluster, db, table, column, want_total, at_least=False):
    """True once both replicas of every shard hold the same rows (as lists: a row twice is a
    difference) and the shards together hold `want_total` (with `at_least`, that many or more: rows
    the SDK never saw acknowledged, because Weir died after committing them, may be stored too);
    otherwise what differs."""
    total = 0
    for shard in (1, 2):
        r1, r2 = cluster.shard(shard)
        a = sorted(values(r1, f"SELECT {column} FROM {db}.{table}_local"))
        b = sorted(values(r2, f"SELECT {column} FROM {db}.{table}_local"))
        if a != b:
            return f"{table}: shard {shard} replicas hold {len(a)} and {len(b)} rows"
        total += len(a)
    enough = total >= want_total if at_least else total == want_total
    return True if enough else f"{table}: shards hold {total} rows, want {want_total}"


def test_schema_on_cluster_and_every_signal_on_both_replicas_of_one_shard(cluster_weir, clickhouse_cluster):
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk._logs import LoggingHandler
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    cluster = clickhouse_cluster
    db = "weir_cluster"
    s1r1, s1r2, s2r1, s2r2 = cluster.servers
    weir = cluster_weir(db, [s1r1])

    # The schema is on every server: replicated local tables under the shard's ZooKeeper path, and
    # Distributed tables over them that shard spans and logs by trace id.
    for s in cluster.servers:
        tables = {r["name"]: r for r in s.rows(
            f"SELECT name, engine, engine_full FROM system.tables WHERE database = '{db}'")}
        for t in ["otel_logs", "otel_traces", "otel_traces_trace_id_ts"] + [
                f"otel_metrics_{k}" for k in ("gauge", "sum", "histogram", "exponential_histogram", "summary")]:
            assert tables[t]["engine"] == "Distributed", (s.name, t, tables.get(t))
            # Every Distributed table X reads X_local, a replicated table.
            assert tables[f"{t}_local"]["engine"] == "ReplicatedMergeTree", (s.name, t, tables.get(f"{t}_local"))
            assert f"{t}_local" in tables[t]["engine_full"]
        assert tables["otel_traces_trace_id_ts_mv"]["engine"] == "MaterializedView"
        assert tables["otel_traces"]["engine_full"].endswith("cityHash64(TraceId))")
        assert "cityHash64(TraceId)" in tables["otel_logs"]["engine_full"]
        paths = values(s, f"SELECT zookeeper_path FROM system.replicas WHERE database = '{db}'")
        assert paths and all(p.startswith(f"/clickhouse/tables/{s.shard:02d}/{db}/") for p in paths), paths

    # The SDK: 150 traces of 3 spans, a log inside two of each trace's spans, 100 logs outside any trace.
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "cluster-test"}))
    tracer_provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://{weir.grpc}", insecure=True), schedule_delay_millis=100))
    logger_provider = LoggerProvider(resource=Resource.create({"service.name": "cluster-test"}))
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(
        OTLPLogExporter(endpoint=f"http://{weir.grpc}", insecure=True), schedule_delay_millis=100))
    log = logging.getLogger("cluster-test")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    tracer = tracer_provider.get_tracer("cluster-test")
    traces, spans, logs = 150, 0, 0
    for t in range(traces):
        with tracer.start_as_current_span("root", attributes={"id": f"S{spans}"}):
            spans += 1
            log.warning("root %d", t, extra={"id": f"L{logs}"})
            logs += 1
            for child in ("a", "b"):
                with tracer.start_as_current_span(f"child-{child}", attributes={"id": f"S{spans}"}):
                    spans += 1
                    if child == "a":
                        log.warning("child %d", t, extra={"id": f"L{logs}"})
                        logs += 1
    for _ in range(100):
        log.warning("no trace", extra={"id": f"L{logs}"})
        logs += 1
    tracer_provider.shutdown()
    logger_provider.shutdown()

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"http://{weir.grpc}", insecure=True), 60_000)
    meters = MeterProvider(resource=Resource.create({"service.name": "cluster-test"}), metric_readers=[reader])
    meter = meters.get_meter("cluster-test")
    orders = meter.create_counter("orders")
    latency = meter.create_histogram("latency", unit="ms")
    meter.create_observable_gauge(
        "temperature", callbacks=[lambda _: [Observation(20.0 + r, {"room": f"r{r}"}) for r in range(3)]])
    for i in range(400):
        orders.add(1, {"shop": f"s{i % 8}"})
        latency.record(i, {"route": f"/r{i % 4}"})
    meters.shutdown()
    want = {"otel_logs": (logs, LOG_ID), "otel_traces": (spans, SPAN_ID),
            "otel_metrics_sum": (8, "AttributesValues[1]"), "otel_metrics_histogram": (4, "AttributesValues[1]"),
            "otel_metrics_gauge": (3, "AttributesValues[1]")}

    # Everything is readable through the Distributed tables from a server Weir did not write to.
    for table, (n, column) in want.items():
        wait_until(lambda: count_is(s2r2, f"SELECT count() FROM {db}.{table}", n), 30,
                   f"{table} via Distributed\n{weir.log()}")
        assert int(s2r2.query(f"SELECT uniqExact({column}) FROM {db}.{table}")) == n, table
    # … and on both replicas of exactly one shard.
    for table, (n, column) in want.items():
        wait_until(lambda: replicas_agree(cluster, db, table, column, n), 30, "replication")
    shard_rows = {shard: {table: set(values(cluster.shard(shard)[0], f"SELECT {column} FROM {db}.{table}_local"))
                          for table, (_, column) in want.items()} for shard in (1, 2)}
    for table in want:
        assert not shard_rows[1][table] & shard_rows[2][table], f"{table}: a row on both shards"
    assert shard_rows[1]["otel_traces"] and shard_rows[2]["otel_traces"], "both shards got spans"
    assert shard_rows[1]["otel_logs"] and shard_rows[2]["otel_logs"], "both shards got logs"

    # A trace's spans are on one shard — the one its trace id hashes to — and so are its logs.
    trace_ids = {}
    for shard in (1, 2):
        server = cluster.shard(shard)[0]
        ids = set(values(server, f"SELECT DISTINCT TraceId FROM {db}.otel_traces_local"))
        trace_ids[shard] = ids
        wrong = values(server, f"SELECT count() FROM {db}.otel_traces_local WHERE cityHash64(TraceId) % 2 != {shard - 1}")
        assert wrong == ["0"], f"shard {shard}: spans whose trace id hashes elsewhere"
        log_traces = set(values(server, f"SELECT DISTINCT TraceId FROM {db}.otel_logs_local WHERE TraceId != ''"))
        assert log_traces <= ids, f"shard {shard}: logs of {len(log_traces - ids)} traces whose spans are elsewhere"
        lookup = set(values(server, f"SELECT DISTINCT TraceId FROM {db}.otel_traces_trace_id_ts_local"))
        assert lookup == ids, f"shard {shard}: the trace-id lookup table follows its spans"
    assert len(trace_ids[1]) + len(trace_ids[2]) == traces
    assert not trace_ids[1] & trace_ids[2], "a trace split across shards"
    no_trace = sum(int(cluster.shard(s)[0].query(f"SELECT count() FROM {db}.otel_logs_local WHERE TraceId = ''"))
                   for s in (1, 2))
    assert no_trace == 100

    # An insert retried through other servers (as Weir retries one that timed out) is split into the
    # same per-shard blocks, because the sharding key depends on the row only, so the replicas' block
    # deduplication drops the copies. (With a `rand()` key the same three sends store 150 rows.)
    rows = "".join(f"{'%032x' % (i * 7919) if i % 2 else ''}\tretried {i}\tretry-test\t{(t + i) * 10**9}\t{t + i}\n"
                   for t in [1_700_000_000] for i in range(50))
    insert = f"INSERT INTO {db}.otel_logs (TraceId, Body, ServiceName, TimestampNanos, Timestamp) FORMAT TSV\n"
    for server in (s1r1, s2r1, s1r2):
        server.query(insert + rows)
    retried = f"SELECT count() FROM {db}.otel_logs WHERE ServiceName = 'retry-test'"
    wait_until(lambda: count_is(s2r2, retried, 50), 30, "the retried insert")
    time.sleep(1)  # the copies were sent in the background too: give them time to show up
    assert int(s2r2.query(retried)) == 50, "a retried insert was stored twice"
    assert weir.metric("weir_exporter_failed_items_total", 'exporter="ch"') == 0
    assert weir.stop() == 0


class Acked:
    """Wraps an SDK exporter; remembers the ids of the items each successful export carried."""

    def __init__(self, inner, ok, item_id):
        self.inner, self.ok, self.item_id = inner, ok, item_id
        self.acked = []
        self.failed_requests = 0
        self.lock = threading.Lock()

    def export(self, batch):
        result = self.inner.export(batch)
        with self.lock:
            if result == self.ok:
                self.acked.extend(self.item_id(item) for item in batch)
            else:
                self.failed_requests += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


class AckedSpans(Acked, SpanExporter):
    pass


class AckedLogs(Acked, LogRecordExporter):
    pass


class Load:
    """The SDK at a steady rate until stopped: per step a span with a log inside it (so sharded by its
    trace id), and every fifth step a log outside any trace; each item carries a unique `id`."""

    def __init__(self, weir, rate: int):
        resource = Resource.create({"service.name": "cluster-fault"})
        self.spans = AckedSpans(OTLPSpanExporter(endpoint=f"http://{weir.grpc}", insecure=True, timeout=20),
                                SpanExportResult.SUCCESS, lambda s: s.attributes["id"])
        self.logs = AckedLogs(OTLPLogExporter(endpoint=f"http://{weir.grpc}", insecure=True, timeout=20),
                              LogRecordExportResult.SUCCESS, lambda r: r.log_record.attributes["id"])
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            self.spans, max_queue_size=200_000, schedule_delay_millis=50, max_export_batch_size=500))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            self.logs, max_queue_size=200_000, schedule_delay_millis=50, max_export_batch_size=500))
        self.tracer = self.tracer_provider.get_tracer("cluster-fault")
        self.logger = self.logger_provider.get_logger("cluster-fault")
        self.rate = rate
        self.steps = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def emit(self, body, item_id):
        # The current span's context (if any) gives the record its trace and span ids.
        self.logger.emit(timestamp=time.time_ns(), severity_number=SeverityNumber.INFO, body=body,
                         attributes={"id": item_id})

    def run(self):
        start = time.time()
        while not self.stopping.is_set():
            due = int((time.time() - start) * self.rate)
            while self.steps < due:
                n = self.steps
                with self.tracer.start_as_current_span("step", attributes={"id": f"S{n}"}):
                    self.emit(f"step {n}", f"L{n}")
                if n % 5 == 0:
                    self.emit(f"untraced {n}", f"U{n}")
                self.steps += 1
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.tracer_provider.force_flush(60_000)
        self.logger_provider.force_flush(60_000)
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        return self.spans.acked, self.logs.acked


def stored(server, db, table, column):
    """(rows, distinct ids) through the Distributed table."""
    count, distinct = server.query(f"SELECT count(), uniqExact({column}) FROM {db}.{table}").split()
    return int(count), int(distinct)


# The victim: the server Weir writes through (Weir must fail over to the next one), or a replica of
# the other shard, which Weir never talks to but the Distributed table forwards rows to.
VICTIMS = {"weir_writes_through_it": 0, "behind_the_distributed_table": 2}


@pytest.mark.parametrize("victim", VICTIMS.keys())
def test_replica_stopped_then_killed_under_load_loses_and_duplicates_nothing(cluster_weir, clickhouse_cluster, victim):
    server = clickhouse_cluster.servers[VICTIMS[victim]]
    try:
        replica_stopped_then_killed(cluster_weir, clickhouse_cluster, server, f"weir_fault_{VICTIMS[victim]}")
    finally:
        # The cluster is the session's: whatever happened, the victim is back for the next test.
        if server.proc.poll() is not None:
            server.start()


def replica_stopped_then_killed(cluster_weir, cluster, victim, db):
    s1r1, s1r2, s2r1, s2r2 = cluster.servers
    # A stopped server accepts connections and never answers: each request in flight to it costs one
    # `timeout` before Weir fails over, so the cluster config keeps it short.
    weir = cluster_weir(db, [s1r1, s1r2, s2r1, s2r2], timeout="3s")
    sent = lambda: weir.metric("weir_exporter_sent_items_total", 'exporter="ch"')
    t0 = time.time()
    load = Load(weir, rate=600)
    time.sleep(3)
    before_pause = sent()
    assert before_pause > 0, weir.log()

    # The replica stops answering (SIGSTOP), then dies (SIGKILL).
    victim.pause()
    time.sleep(7)
    during_pause = sent() - before_pause
    victim.kill()
    killed_at = sent()
    time.sleep(4)
    after_kill = sent() - killed_at
    spans_acked, logs_acked = load.stop()
    stopped_at = time.time()
    assert len(spans_acked) > 1000 and len(logs_acked) > 1000, (len(spans_acked), len(logs_acked))
    assert during_pause > 0, f"no insert succeeded while {victim.name} was stopped\n{weir.log()[-3000:]}"
    assert after_kill > 0, f"no insert succeeded after {victim.name} was killed\n{weir.log()[-3000:]}"

    # Weir delivers everything it accepted, with the replica still dead.
    accepted = lambda: weir.metric("weir_receiver_accepted_items_total")
    wait_until(lambda: sent() == accepted() or (sent(), accepted()), 60, f"weir delivered\n{weir.log()[-3000:]}")
    live = s2r2
    visible_while_dead = {t: stored(live, db, t, c) for t, c in (("otel_traces", SPAN_ID), ("otel_logs", LOG_ID))}

    # The replica comes back (as an operator would bring it back): what only it held, such as blocks in
    # its Distributed send queue, is sent or fetched; Replicated deduplication drops what arrived twice.
    victim.start()
    restarted = time.time()
    want = {"otel_traces": (len(spans_acked), SPAN_ID), "otel_logs": (len(logs_acked), LOG_ID)}
    for table, (n, column) in want.items():
        wait_until(lambda: replicas_agree(cluster, db, table, column, n), 60,
                   f"{table}: both replicas of each shard hold the acknowledged rows")
    report = {}
    for table, (n, column) in want.items():
        count, distinct = stored(live, db, table, column)
        report[table] = dict(acked=n, stored=count, distinct=distinct, duplicates=count - distinct,
                             visible_while_dead=visible_while_dead[table][1])
        acked = set(spans_acked if table == "otel_traces" else logs_acked)
        ids = set(values(live, f"SELECT {column} FROM {db}.{table}"))
        assert not acked - ids, f"{table}: {len(acked - ids)} acknowledged rows lost, e.g. {sorted(acked - ids)[:5]}"
        assert count == distinct == n, report[table]
    retries = weir.metric("weir_exporter_retries_total", 'exporter="ch"')
    print(f"\nfault test, {victim.name} stopped then killed: {report}; items sent while stopped={during_pause:.0f}, after kill={after_kill:.0f}, "
          f"weir retries={retries:.0f}, load {stopped_at - t0:.1f}s, replica back and caught up in "
          f"{time.time() - restarted:.1f}s, failed SDK requests {load.spans.failed_requests + load.logs.failed_requests}")
    assert weir.metric("weir_exporter_failed_items_total", 'exporter="ch"') == 0
    assert weir.stop() == 0


class DurableWeir:
    """Weir in durable mode writing to the cluster, keeping its ports, config and log directory across
    SIGKILLs and restarts."""

    def __init__(self, tmp, db):
        self.grpc, self.http, self.admin = (f"127.0.0.1:{free_port()}" for _ in range(3))
        self.tmp, self.db = tmp, db
        self.log_path = tmp / "weir-durable.log"
        self.config = tmp / "weir-durable.yaml"
        self.proc = None

    def configure(self, servers, create_schema=True):
        """Writes the config for the next start: `servers[0]` first, the others to fail over to."""
        failover = "".join(f"\n        - {s.url}" for s in servers[1:])
        self.config.write_text(f"""receivers:
  grpc: {{endpoint: "{self.grpc}"}}
  http: {{endpoint: "{self.http}"}}
durable:
  dir: "{self.tmp / 'wal'}"
  checkpoint_interval: 200ms
exporters:
  ch:
    clickhouse:
      endpoint: {servers[0].url}
      failover_endpoints:{failover}
      database: {self.db}
      cluster: weir
      create_schema: {str(create_schema).lower()}
    batch: {{max_items: 5000, max_age: 200ms}}
    max_in_flight: 4
    timeout: 5s
    retry: {{initial_backoff: 100ms, max_backoff: 1s}}
admin: {{endpoint: "{self.admin}"}}
""")

    def start(self):
        self.proc = subprocess.Popen([BIN, "--config", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "ab"))
        wait_ready(self.proc, self.admin, self.log_path)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def metric(self, name, *filters):
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and line[len(name)] in "{ " and all(f in line for f in filters))

    def log(self):
        return self.log_path.read_text(errors="replace")


class SlowReplies:
    """A TCP proxy to `upstream` that passes requests on at once and holds each reply for `delay`: the
    server has stored an insert for that long before Weir hears so. A kill in that window leaves
    stored records that Weir, rightly, does not count as delivered and sends again."""

    def __init__(self, upstream_port, delay):
        self.upstream, self.delay = upstream_port, delay
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.pipe, args=(client, server, 0), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, self.delay), daemon=True).start()

    @staticmethod
    def pipe(src, dst, delay):
        try:
            while data := src.recv(65536):
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()


KILLS = 5


def test_durable_weir_killed_under_load_stores_every_acknowledged_row_exactly_once(clickhouse_cluster, tmp_path):
    """Effectively once: Weir in durable mode is SIGKILLed 5 times under SDK load and restarted each
    time. Replies from the server Weir writes through come late (SlowReplies), so every kill finds
    inserts the server stored and Weir never heard about; the restart replays them, each record in the
    same insert as before, and the Replicated tables drop the blocks they already hold. Every
    acknowledged row is stored, none twice."""
    servers = clickhouse_cluster.servers
    db = "weir_once"
    weir = DurableWeir(tmp_path, db)
    weir.configure(servers)
    weir.start()
    # The schema exists now; from the first restart on, Weir writes through the slow proxy.
    slow = SlowReplies(int(servers[0].url.rsplit(":", 1)[1]), delay=0.4)
    weir.configure([slow] + servers[1:], create_schema=False)
    replayed = 0
    load = Load(weir, rate=600)
    rng = random.Random(7)
    try:
        for _ in range(KILLS):
            # After a restart the SDK comes back on its own backoff: kill only once items flow again,
            # at a moment inserts are on their way.
            accepted = lambda: weir.metric("weir_receiver_accepted_items_total")
            wait_until(lambda: accepted() >= 500 or accepted(), 60, "the load flows into weir")
            time.sleep(rng.uniform(0.2, 1.0))
            weir.kill9()
            weir.start()
            replayed += weir.metric("weir_wal_recovered_records_total")
        time.sleep(1.5)
        spans_acked, logs_acked = load.stop()
        wait_until(lambda: weir.metric("weir_wal_undelivered_records") == 0
                   or weir.metric("weir_wal_undelivered_records"), 60, "the durable log drained")
        live = servers[3]
        want = {"otel_traces": (set(spans_acked), SPAN_ID), "otel_logs": (set(logs_acked), LOG_ID)}
        for table, (acked, column) in want.items():
            wait_until(lambda: replicas_agree(clickhouse_cluster, db, table, column, len(acked), at_least=True), 60,
                       f"{table}: both replicas of each shard hold the acknowledged rows")
        report = {}
        for table, (acked, column) in want.items():
            count, distinct = stored(live, db, table, column)
            ids = set(values(live, f"SELECT {column} FROM {db}.{table}"))
            report[table] = dict(acked=len(acked), stored=count, distinct=distinct,
                                 duplicates=count - distinct, stored_not_acked=len(ids - acked))
            assert not acked - ids, f"{table}: {len(acked - ids)} acknowledged rows lost: {report}"
            assert count == distinct, f"{table}: rows stored twice: {report}\n{weir.log()[-3000:]}"
        print(f"\nexactly-once under {KILLS} x SIGKILL: {report}; records replayed on restarts={replayed:.0f}, "
              f"failed SDK requests={load.spans.failed_requests + load.logs.failed_requests}")
        assert replayed > 0, "the kills must have left records to replay, or the test proves nothing"
        assert weir.stop() == 0
    finally:
        slow.close()
        if weir.proc.poll() is None:
            weir.proc.kill()
            weir.proc.wait()

