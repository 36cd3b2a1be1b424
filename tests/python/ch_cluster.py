"""A real ClickHouse cluster on loopback for the tests: one ZooKeeper node (Debian's `zookeeper`, run
straight with java) and four `clickhouse-server` processes (Debian's 18.16) forming the cluster `weir`
of two shards × two replicas, each server with its own ports, data directory and config written here.

    python tests/python/ch_cluster.py DIR     # starts it by hand, prints the endpoints, Ctrl-C stops

Layout (ports are free loopback ports picked at start; `Cluster.describe()` prints them):
    zookeeper        127.0.0.1:<zk>            data DIR/zookeeper
    s1r1, s1r2       shard 01, replicas 1 and 2   http / tcp / interserver ports each, data DIR/<name>
    s2r1, s2r2       shard 02, replicas 1 and 2
`remote_servers.weir` has `internal_replication = true`: a Distributed table writes each shard's rows
to one replica and ReplicatedMergeTree copies them to the other through ZooKeeper, as in production.
"""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import free_port

CLUSTER = "weir"
ZOOKEEPER_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


class Server:
    """One clickhouse-server of the cluster."""

    def __init__(self, root: Path, shard: int, replica: int):
        self.shard = shard
        self.replica = replica
        self.name = f"s{shard}r{replica}"
        self.path = root / self.name
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.interserver_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = None

    def config(self, cluster: "Cluster") -> str:
        p = self.path
        shards = "".join(
            "<shard><internal_replication>true</internal_replication>"
            + "".join(f"<replica><host>127.0.0.1</host><port>{s.tcp_port}</port></replica>"
                      for s in cluster.servers if s.shard == n)
            + "</shard>"
            for n in sorted({s.shard for s in cluster.servers}))
        return f"""<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{p}/server.log</log>
        <errorlog>{p}/server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{self.http_port}</http_port>
    <tcp_port>{self.tcp_port}</tcp_port>
    <interserver_http_port>{self.interserver_port}</interserver_http_port>
    <!-- Replicas fetch parts from each other at the address they register in ZooKeeper. -->
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{p}/data/</path>
    <tmp_path>{p}/tmp/</tmp_path>
    <user_files_path>{p}/user_files/</user_files_path>
    <format_schema_path>{p}/format_schemas/</format_schema_path>
    <users_config>{p}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <!-- Four servers share one small machine: caches are allocated on demand, but keep them modest. -->
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>
    <zookeeper>
        <node><host>127.0.0.1</host><port>{cluster.zk_port}</port></node>
        <!-- A killed server's session (and the replica "is active" mark it holds, which its restart
             waits for) expires after this; short, so a restarted replica is back quickly. -->
        <session_timeout_ms>6000</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>{CLUSTER}</cluster>
        <shard>{self.shard:02d}</shard>
        <replica>{self.name}</replica>
    </macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
"""

    USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""

    def write_config(self, cluster: "Cluster"):
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.xml").write_text(self.config(cluster))
        (self.path / "users.xml").write_text(self.USERS)

    def spawn(self):
        self.proc = subprocess.Popen(
            ["clickhouse-server", f"--config-file={self.path / 'config.xml'}"],
            stdout=subprocess.DEVNULL, stderr=open(self.path / "stderr.log", "ab"),
            # Its own process group, so a SIGSTOP or SIGKILL in a test hits this server only.
            start_new_session=True)

    def start(self):
        """Starts (or restarts, on the same data) this server and waits until it is usable."""
        self.spawn()
        self.wait_up()

    def wait_up(self, timeout: float = 60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clickhouse-server {self.name} exited:\n{self.log_tail()}")
            try:
                # Up means answering and connected to ZooKeeper (replicated DDL needs both).
                if self.query("SELECT count() FROM system.zookeeper WHERE path = '/'", timeout=2).strip():
                    return
            except (OSError, RuntimeError):
                # Not listening yet, or not yet connected to ZooKeeper (it answers `ruok` a moment
                # before it takes sessions).
                time.sleep(0.1)
        raise RuntimeError(f"clickhouse-server {self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for f in ("stderr.log", "server.err.log"):
            path = self.path / f
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def query(self, sql: str, timeout: float = 10) -> str:
        req = urllib.request.Request(self.url + "/", data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{self.name}: {e.read().decode(errors='replace')}\n{sql}") from None

    def rows(self, sql: str) -> list:
        return [json.loads(line) for line in self.query(sql + " FORMAT JSONEachRow").splitlines() if line]

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, grace: float = 30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """ZooKeeper + two shards × two replicas under `root`; `start()` returns once all answer."""

    def __init__(self, root: Path, shards: int = 2, replicas: int = 2):
        self.root = root
        self.zk_port = free_port()
        self.zk = None
        self.servers = [Server(root, s, r) for s in range(1, shards + 1) for r in range(1, replicas + 1)]
        self.startup_seconds = None

    def shard(self, n: int) -> list:
        return [s for s in self.servers if s.shard == n]

    def start(self):
        t0 = time.time()
        try:
            self.start_zookeeper()
            for s in self.servers:
                s.write_config(self)
                s.spawn()
            with ThreadPoolExecutor(len(self.servers)) as pool:
                list(pool.map(lambda s: s.wait_up(), self.servers))
        except BaseException:
            # Nothing outlives a failed start (the processes have their own sessions).
            self.stop()
            raise
        self.startup_seconds = time.time() - t0
        return self

    def start_zookeeper(self):
        zk = self.root / "zookeeper"
        (zk / "data").mkdir(parents=True, exist_ok=True)
        # Standalone, short ticks (a 2 s session minimum is enough on loopback), no admin web server.
        (zk / "zoo.cfg").write_text(
            f"tickTime=500\ndataDir={zk}/data\nclientPort={self.zk_port}\nclientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\nmaxClientCnxns=0\n4lw.commands.whitelist=ruok,srvr,stat,mntr\n"
            "minSessionTimeout=1000\nmaxSessionTimeout=30000\n")
        self.zk = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", ZOOKEEPER_CLASSPATH,
             f"-Dzookeeper.log.dir={zk}", "org.apache.zookeeper.server.ZooKeeperServerMain",
             str(zk / "zoo.cfg")],
            stdout=open(zk / "zookeeper.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.zk.poll() is not None:
                break
            # `ruok` answers before it takes sessions, and an 18.16 server whose first ZooKeeper
            # session fails may crash later on DDL: wait until it reports itself serving.
            if "Mode: standalone" in self.zk_command("srvr"):
                return
            time.sleep(0.05)
        raise RuntimeError("zookeeper did not start:\n" + (zk / "zookeeper.log").read_text(errors="replace"))

    def zk_command(self, word: str) -> str:
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.zk_port), timeout=1) as s:
                s.sendall(word.encode())
                return s.recv(4096).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, grace: float = 2):
        # A test cluster's data is thrown away: a server still shutting down after `grace` (18.16 takes
        # ~10 s, mostly waiting on its replication threads) is killed.
        with ThreadPoolExecutor(len(self.servers)) as pool:
            list(pool.map(lambda s: s.stop(grace), self.servers))
        if self.zk and self.zk.poll() is None:
            self.zk.terminate()
            try:
                self.zk.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.zk.kill()
                self.zk.wait()

    def describe(self) -> str:
        lines = [f"zookeeper 127.0.0.1:{self.zk_port}"]
        for s in self.servers:
            lines.append(f"{s.name} shard {s.shard:02d} http {s.url} tcp {s.tcp_port} "
                         f"interserver {s.interserver_port} data {s.path}")
        return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/weir-ch-cluster").resolve()
    cluster = Cluster(root).start()
    print(cluster.describe())
    print(f"started in {cluster.startup_seconds:.1f}s; Ctrl-C or SIGTERM stops", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
