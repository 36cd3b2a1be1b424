#!/usr/bin/env bash
# Runs Weir's whole test suite on a fresh machine: installs what the tests need (Debian packages incl.
# clickhouse-server and zookeeper, a Python venv with the OpenTelemetry SDK and chdb), starts ClickHouse
# on 127.0.0.1, then lints, Rust unit + integration tests, and the Python SDK end-to-end tests against
# the real binary (those start their own servers, including a 2-shard × 2-replica ClickHouse cluster).
# Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

log "system packages"
need=()
command -v mkfifo >/dev/null || need+=(coreutils)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v cc >/dev/null || need+=(build-essential)
command -v curl >/dev/null || need+=(curl)
command -v tmux >/dev/null || need+=(tmux) # weir top is tested in a real terminal
command -v clickhouse-server >/dev/null || need+=(clickhouse-server clickhouse-client)
# The ClickHouse cluster tests (tests/python/test_clickhouse_cluster.py) run one ZooKeeper node from
# this package's jars with java, next to four clickhouse-servers; their pytest fixture starts them.
[ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null || need+=(zookeeper)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${need[@]}"
fi

log "python venv (.venv) with the OpenTelemetry SDK and the modern ClickHouse engine (chdb)"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r tests/clickhouse/requirements.txt
export WEIR_CHDB_PYTHON="$PWD/.venv/bin/python"
export WEIR_PYTHON="$PWD/.venv/bin/python"

log "ClickHouse server on 127.0.0.1:8123"
export WEIR_CLICKHOUSE_URL="http://127.0.0.1:8123"
clickhouse_up() { curl -sf "$WEIR_CLICKHOUSE_URL/?query=SELECT%201" >/dev/null 2>&1; }
if ! clickhouse_up; then
  as_root setsid nohup clickhouse-server --config-file=/etc/clickhouse-server/config.xml \
    >/tmp/weir-clickhouse-server.log 2>&1 < /dev/null &
  for _ in $(seq 1 120); do clickhouse_up && break; sleep 0.5; done
  clickhouse_up || { echo "clickhouse-server did not start:"; tail -20 /tmp/weir-clickhouse-server.log; exit 1; }
fi
echo "ClickHouse $(curl -s "$WEIR_CLICKHOUSE_URL/?query=SELECT%20version()")"

log "format and lints"
cargo fmt --all -- --check
python3 scripts/import-cycles.py */src testing/*/src
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "rust tests (unit + integration against the real weir binary)"
cargo build --workspace --all-targets --quiet
cargo test --workspace --quiet

log "fuzzing, bounded: OTLP protobuf/JSON and compressed bodies, trace-context parsers, WAL reader, config"
WEIR_FUZZ_CASES=10000 cargo test --quiet -p weir-collector --bin weir fuzz
WEIR_FUZZ_CASES=10000 cargo test --quiet -p weir-pipeline --test parsers_fuzz
WEIR_FUZZ_CASES=3000 cargo test --quiet -p weir-pipeline --lib wal::tests
WEIR_FUZZ_CASES=10000 cargo test --quiet -p weir-config --test fuzz

log "python SDK end-to-end tests"
WEIR_BIN="$PWD/target/debug/weir" .venv/bin/python -m pytest tests/python -q
