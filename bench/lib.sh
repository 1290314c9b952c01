# Shared by the load scripts in bench/: builds the release binary, starts the simulator, Redis and
# the gateway on free 127.0.0.1 ports in a scratch directory, and stops exactly what it started.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# GATEWAY_BIN runs a binary built elsewhere (an A/B comparison of two builds); otherwise the
# release binary is built from this checkout.
BIN="${GATEWAY_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/puhuri-gateway}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/puhuri-bench.XXXXXX")
STARTED_PIDS=()
SIM_TOKEN=deadbeefdeadbeefdeadbeefdeadbeefdeadbeef
LUMI_OFFERING=0f000000000040008000000000000001
SERVICE_PROVIDER=5e0000000000400080000000000000a1

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "${KEEP_WORK:-}" ]]; then
    echo "scratch directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing $pkg ..." >&2
    apt-get install -y -q "$pkg" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$pkg" >/dev/null; }
  fi
  command -v "$cmd" >/dev/null || { echo "$cmd is needed (Debian package $pkg)" >&2; exit 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for URL [SECONDS]: until URL answers at all.
wait_for() {
  local url=$1 deadline=$((SECONDS + ${2:-30}))
  until curl -s -o /dev/null "$url"; do
    ((SECONDS < deadline)) || { echo "no answer from $url" >&2; exit 1; }
    sleep 0.1
  done
}

build_release() {
  [[ -n "${GATEWAY_BIN:-}" ]] && return
  echo "building the release binary ..." >&2
  (cd "$ROOT" && cargo build --release --locked --quiet --bin puhuri-gateway)
}

# start_sim: the simulator on a free port; sets SIM_URL (API root) and SIM_CTL (control API).
start_sim() {
  local port
  port=$(free_port)
  "$BIN" sim --listen "127.0.0.1:$port" >"$WORK/sim.log" 2>&1 &
  STARTED_PIDS+=($!)
  SIM_URL="http://127.0.0.1:$port/api/"
  SIM_CTL="http://127.0.0.1:$port/__sim/"
  wait_for "${SIM_CTL}info"
}

# seed_resources N FILE: N OK resources in the LUMI offering, their uuids written to FILE.
seed_resources() {
  curl -sf -X POST -H 'Content-Type: application/json' -d "{\"count\": $1}" "${SIM_CTL}resources" |
    python3 -c 'import json, sys; print("\n".join(r["uuid"] for r in json.load(sys.stdin)))' >"$2"
}

# start_redis: redis-server as production runs it (append-only file, fsync every second) on a
# free port; sets REDIS_PORT, REDIS_URL and REDIS_PID.
start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  STARTED_PIDS+=("$REDIS_PID")
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  local deadline=$((SECONDS + 10))
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.1
  done
}

# write_config FILE ALG [extra TOML for [delivery]]: a gateway with one site "bench" on the LUMI
# offering, verified with an HS256 secret or an Ed25519 key; Redis when REDIS_URL is set.
write_config() {
  local file=$1 alg=$2 delivery=${3:-}
  GATEWAY_PORT=$(free_port)
  GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT"
  {
    echo "listen = \"127.0.0.1:$GATEWAY_PORT\""
    echo "data_dir = \"$WORK/data\""
    echo "[log]"
    echo "level = \"warn\""
    echo "[upstream]"
    echo "url = \"$SIM_URL\""
    echo "token = \"$SIM_TOKEN\""
    echo "service_provider_uuid = \"$SERVICE_PROVIDER\""
    if [[ -n "${REDIS_URL:-}" ]]; then
      echo "[redis]"
      echo "url = \"$REDIS_URL\""
      echo "key_prefix = \"${KEY_PREFIX:-bench-$$}\""
    fi
    echo "[delivery]"
    echo -e "$delivery"
    echo "[limits]"
    echo "max_body_bytes = 1048576"
    echo "[[sites]]"
    echo "id = \"bench\""
    echo "offerings = [\"$LUMI_OFFERING\"]"
    echo "[[sites.keys]]"
    echo "kid = \"bench-key\""
    echo "algorithm = \"$alg\""
    case $alg in
      HS256)
        python3 -c 'import secrets; print(secrets.token_hex(32))' >"$WORK/hs256.secret"
        echo "secret_file = \"$WORK/hs256.secret\""
        ;;
      EdDSA)
        openssl genpkey -algorithm ed25519 -out "$WORK/ed25519.key" 2>/dev/null
        openssl pkey -in "$WORK/ed25519.key" -pubout -out "$WORK/ed25519.pub"
        echo "public_key_file = \"$WORK/ed25519.pub\""
        echo "private_key_file = \"$WORK/ed25519.key\""
        ;;
      *) echo "unknown algorithm $alg" >&2; exit 1 ;;
    esac
  } >"$file"
}

# start_gateway CONFIG: sets GATEWAY_PID.
start_gateway() {
  "$BIN" serve --config "$1" >>"$WORK/gateway.log" 2>&1 &
  GATEWAY_PID=$!
  STARTED_PIDS+=("$GATEWAY_PID")
  wait_for "$GATEWAY_URL/healthz"
}

# stop_gateway: SIGTERM and wait (the queue keeps what it holds).
stop_gateway() {
  kill -TERM "$GATEWAY_PID" 2>/dev/null || true
  wait "$GATEWAY_PID" 2>/dev/null || true
}

# peak_rss_mb PID: the process's peak resident set (VmHWM) in MB.
peak_rss_mb() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# cpu_us PID: CPU time (user + system) the process has used so far, in microseconds.
cpu_us() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000000 / hz }' "/proc/$1/stat"
}

# median of the arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
