#!/usr/bin/env bash
# Fuzzes the site API with schemathesis (PyPI), all of its checks (configured in
# scripts/schemathesis.toml), against a freshly started
# sandbox gateway on 127.0.0.1, for a bounded time; exits non-zero if any check fails.
#
#   scripts/schemathesis.sh                 # 180 s of generated requests
#   MAX_TIME=60 SEED=7 scripts/schemathesis.sh
#
# GATEWAY_BIN picks the binary (default: target/release/puhuri-gateway, built if missing).
# The venv with the pinned schemathesis is kept in ~/.cache/puhuri-gateway-ci/schemathesis.
# The report (JUnit XML) lands in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_TIME=${MAX_TIME:-180}
SEED=${SEED:-1}
SCHEMATHESIS_VERSION=4.32.5
BIN=${GATEWAY_BIN:-target/release/puhuri-gateway}
if [ ! -x "$BIN" ]; then
  cargo build --release --locked
fi
BIN=$(realpath "$BIN")

VENV="$HOME/.cache/puhuri-gateway-ci/schemathesis"
if [ ! -x "$VENV/bin/st" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$WORK" && exec "$BIN" --listen "127.0.0.1:$PORT" >"$WORK/gateway.log" 2>&1) &
GATEWAY_PID=$!
cleanup() {
  kill "$GATEWAY_PID" 2>/dev/null || true
  wait "$GATEWAY_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 100); do
  [ -s "$WORK/data/demo.token" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
TOKEN=$(cat "$WORK/data/demo.token")

mkdir -p target/schemathesis
# `timeout` bounds the run even if schemathesis overruns its own budget.
timeout $((MAX_TIME + 120)) "$VENV/bin/st" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --report junit --report-junit-path target/schemathesis/junit.xml
