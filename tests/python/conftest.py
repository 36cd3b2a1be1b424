"""Starts the real `weir` binary on free loopback ports with a file exporter in a temp directory."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


_handed_out = set()


def free_port() -> int:
    """A free loopback port, never one this test run handed out before (the kernel may offer a port
    again as soon as the probe closes it)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_ready(proc: subprocess.Popen, admin: str, log_path: Path, timeout: float = 30):
    """Waits for weir's /readyz; fails with its log if it exits or does not become ready."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.02)
        if proc.poll() is not None:
            break
    raise RuntimeError("weir did not become ready:\n" + log_path.read_text(errors="replace"))


class Weir:
    def __init__(self, tmp: Path, config: Path = REPO / "examples" / "default.yaml", env: dict = None):
        self.grpc = f"127.0.0.1:{free_port()}"
        self.http = f"127.0.0.1:{free_port()}"
        self.admin = f"127.0.0.1:{free_port()}"
        self.data = tmp / "data"
        self.log_path = tmp / "weir.log"
        binary = os.environ.get("WEIR_BIN", str(REPO / "target" / "debug" / "weir"))
        env = dict(os.environ, **(env or {}),
                   WEIR_GRPC_ADDR=self.grpc, WEIR_HTTP_ADDR=self.http,
                   WEIR_ADMIN_ADDR=self.admin, WEIR_DATA_DIR=str(self.data))
        # A shipped config, pointed at this test's ports and directory through its variables.
        self.proc = subprocess.Popen([binary, "--config", str(config)],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "wb"))
        wait_ready(self.proc, self.admin, self.log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self, signal_name: str) -> list:
        path = self.data / f"{signal_name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def spans(self) -> list:
        return [s for req in self.lines("traces") for rs in req["resourceSpans"]
                for ss in rs["scopeSpans"] for s in ss["spans"]]

    def records(self) -> list:
        return [r for req in self.lines("logs") for rl in req["resourceLogs"]
                for sl in rl["scopeLogs"] for r in sl["logRecords"]]

    def metric(self, name: str, *label_filters: str) -> float:
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in "{ " and all(f in line for f in label_filters):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)


@pytest.fixture
def weir(tmp_path):
    w = Weir(tmp_path)
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait()


class ClickHouse:
    """A private ClickHouse server (Debian's clickhouse-server) on free loopback ports with its own data
    directory, so a test can stop and restart it without touching anyone else's."""

    def __init__(self, path: Path):
        self.path = path
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = None
        self.start()

    def start(self):
        p = self.path
        args = ["clickhouse-server", "--config-file=/etc/clickhouse-server/config.xml", "--",
                f"--http_port={self.http_port}", f"--tcp_port={self.tcp_port}",
                f"--interserver_http_port={free_port()}", "--listen_host=127.0.0.1",
                f"--path={p}/", f"--tmp_path={p}/tmp/", f"--user_files_path={p}/user_files/",
                f"--format_schema_path={p}/format_schemas/",
                f"--logger.log={p}/server.log", f"--logger.errorlog={p}/server.err.log"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.query("SELECT 1").strip() == "1":
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("clickhouse-server did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def query(self, sql: str) -> str:
        req = urllib.request.Request(self.url + "/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()

    def rows(self, sql: str) -> list:
        return [json.loads(line) for line in self.query(sql + " FORMAT JSONEachRow").splitlines() if line]


@pytest.fixture
def clickhouse(tmp_path):
    ch = ClickHouse(tmp_path / "clickhouse")
    yield ch
    if ch.proc.poll() is None:
        ch.stop()


@pytest.fixture(scope="session")
def clickhouse_cluster(tmp_path_factory):
    """ZooKeeper and four clickhouse-servers (cluster `weir`: two shards × two replicas), started once for
    the session (under a second on the CI box) and stopped at its end; see ch_cluster.py for the layout.
    Tests use their own databases; a test that stops a server starts it again before it ends."""
    from ch_cluster import Cluster

    cluster = Cluster(tmp_path_factory.mktemp("clickhouse-cluster")).start()
    print(f"\nClickHouse cluster up in {cluster.startup_seconds:.1f}s:\n{cluster.describe()}")
    yield cluster
    cluster.stop()
