#!/usr/bin/env bash
# Runs Weir's whole test suite on a fresh machine: installs what the tests need (Debian packages, a
# Python venv with the OpenTelemetry SDK), then lints, Rust unit + integration tests, and the Python
# SDK end-to-end tests against the real binary. Safe to run again: every step is idempotent.
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
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${need[@]}"
fi

log "python venv (.venv) with the OpenTelemetry SDK"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

log "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "rust tests (unit + integration against the real weir binary)"
cargo build --workspace --all-targets --quiet
cargo test --workspace --quiet

log "python SDK end-to-end tests"
WEIR_BIN="$PWD/target/debug/weir" .venv/bin/python -m pytest tests/python -q
