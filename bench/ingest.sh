#!/usr/bin/env bash
# Ingest benchmark: usage reports accepted per second, and their latency, at 64 connections with
# site-JWT authentication, measured with wrk against the release binary. On Redis, each round is
# followed by `redis-benchmark -c 64 -t set` on the same redis-server, so the ratio compares two
# figures taken on the same machine minutes apart. With --embedded the gateway uses its embedded
# store (durable commits) and no Redis is started.
#
#   bench/ingest.sh [--embedded] [--alg HS256|EdDSA] [--duration SECONDS] [--rounds N]
#                   [--connections N] [--resources N]
#
# Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

EMBEDDED=""
ALG=HS256
DURATION=15
ROUNDS=3
CONNECTIONS=64
RESOURCES=1000
while (($#)); do
  case $1 in
    --embedded) EMBEDDED=1 ;;
    --alg) ALG=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --resources) RESOURCES=$2; shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

need wrk wrk
need curl curl
need python3 python3
if [[ -z $EMBEDDED ]]; then
  need redis-server redis-server
  need redis-benchmark redis-tools
fi
build_release

start_sim
seed_resources "$RESOURCES" "$WORK/resources.txt"
[[ -z $EMBEDDED ]] && start_redis
write_config "$WORK/gateway.toml" "$ALG"
start_gateway "$WORK/gateway.toml"
"$BIN" token issue --config "$WORK/gateway.toml" --site bench --ttl 4h >"$WORK/token"
export BENCH_TOKEN_FILE=$WORK/token BENCH_RESOURCES_FILE=$WORK/resources.txt

# Warm up: connections, the resource cache (one upstream lookup per resource), allocator.
wrk -t2 -c"$CONNECTIONS" -d3s -s "$ROOT/bench/usage.lua" "$GATEWAY_URL" >/dev/null

declare -a RPS P50 P99 RAW RAW_P99 GW_CPU REDIS_CPU
TOTAL=0
for round in $(seq 1 "$ROUNDS"); do
  gw_before=$(cpu_us "$GATEWAY_PID")
  if [[ -z $EMBEDDED ]]; then
    redis_before=$(cpu_us "$REDIS_PID")
    redis-cli -p "$REDIS_PORT" config resetstat >/dev/null
  fi
  out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$ROOT/bench/usage.lua" "$GATEWAY_URL" | grep '^RESULT')
  eval "${out#RESULT }"
  if ((socket_errors + non2xx > 0)); then
    echo "round $round: $socket_errors socket errors, $non2xx answers other than 2xx" >&2
    tail -n 20 "$WORK/gateway.log" >&2
    exit 1
  fi
  TOTAL=$((TOTAL + requests))
  RPS+=("$rps") P50+=("$p50_ms") P99+=("$p99_ms")
  gw_cpu=$((($(cpu_us "$GATEWAY_PID") - gw_before) / requests))
  GW_CPU+=("$gw_cpu")
  line="round $round: gateway $rps reports/s, p50 ${p50_ms} ms, p99 ${p99_ms} ms, gateway CPU ${gw_cpu} us/report"
  if [[ -z $EMBEDDED ]]; then
    redis_cpu=$((($(cpu_us "$REDIS_PID") - redis_before) / requests))
    REDIS_CPU+=("$redis_cpu")
    # Where Redis's time went in this round (before redis-benchmark adds its own commands).
    redis-cli -p "$REDIS_PORT" info commandstats | tr -d '\r' | grep '^cmdstat' |
      awk -F'[:=,]' '{ printf "%s calls=%s usec_per_call=%s usec=%s\n", $1, $3, $7, $5 }' |
      sort -t= -k4 -n -r | head -n 4 >"$WORK/commandstats"
    line="$line, Redis CPU ${redis_cpu} us/report"
    csv=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" -n 300000 -t set --csv | tail -n 1)
    raw=$(echo "$csv" | tr -d '"' | cut -d, -f2)
    raw_p99=$(echo "$csv" | tr -d '"' | cut -d, -f7)
    RAW+=("$raw") RAW_P99+=("$raw_p99")
    line="$line | redis-benchmark SET $raw/s, p99 ${raw_p99} ms"
  fi
  echo "$line"
  [[ -z $EMBEDDED ]] && sed 's/^cmdstat_/    redis /' "$WORK/commandstats"
done

# For scale: the enqueue script alone, sent by redis-benchmark at the same concurrency as wrk's
# connections (its own key prefix; one resource, so every call supersedes the previous report as
# in the gateway run). The arguments are enqueue.lua's ARGV, in the order RedisStore::enqueue
# passes them. The script is sent behind the whole prelude and helpers (the gateway sends only
# the part it uses), so this rate is a little below the store's own. This is what the store can
# take; the gateway adds HTTP, the token, the checks and the record around it.
if [[ -z $EMBEDDED ]]; then
  sha=$( (cat "$ROOT/src/queue/redis/protocol.lua"; echo; cat "$ROOT/src/queue/redis/common.lua"; echo; cat "$ROOT/src/queue/redis/enqueue.lua") |
    redis-cli -p "$REDIS_PORT" -x script load)
  script_rate=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNECTIONS" -n 200000 -r 100000000 --csv \
    EVALSHA "$sha" 0 "script-bench:" "job-__rand_int__" bench usage.report resource:r usage:resource:r:2026-11 \
    '{"resource":"r","period":"2026-11"}' '{"cpu_k_hours":"1.00","gpu_k_hours":"2"}' '' '' |
    tail -n 1 | tr -d '"' | awk -F, '{ print $(NF - 6) }')
fi

# For scale: the gateway's HTTP ceiling on this machine, a route with no token, body or store.
healthz=$(wrk -t2 -c"$CONNECTIONS" -d5s "$GATEWAY_URL/healthz" | awk '/^Requests\/sec:/ { print $2 }')

# Everything accepted is in the store (warm-up included), nothing lost on the way.
stored=$(curl -sf "$GATEWAY_URL/metrics" | awk '/^puhuri_gateway_jobs_accepted_total/ { s += $2 } END { print s + 0 }')
rss=$(peak_rss_mb "$GATEWAY_PID")
backend=$([[ -n $EMBEDDED ]] && echo "embedded store" || echo "Redis (AOF, fsync every second)")
echo
echo "ingest, $backend, $ALG tokens, $CONNECTIONS connections, $ROUNDS rounds of ${DURATION}s, $RESOURCES resources"
echo "  median: $(median "${RPS[@]}") reports/s, p50 $(median "${P50[@]}") ms, p99 $(median "${P99[@]}") ms"
if [[ -z $EMBEDDED ]]; then
  echo "  redis-benchmark SET median: $(median "${RAW[@]}")/s, p99 $(median "${RAW_P99[@]}") ms"
  echo "  ratio gateway / raw Redis: $(python3 -c "print(f'{$(median "${RPS[@]}") / $(median "${RAW[@]}") * 100:.1f}%')")"
  echo "  enqueue script alone (redis-benchmark EVALSHA, $CONNECTIONS connections): $script_rate/s;" \
    "gateway / script: $(python3 -c "print(f'{$(median "${RPS[@]}") / $script_rate * 100:.1f}%')")"
fi
echo "  CPU per report (median): gateway $(median "${GW_CPU[@]}") us${EMBEDDED:+}$([[ -z $EMBEDDED ]] && echo ", redis-server $(median "${REDIS_CPU[@]}") us")"
echo "  accepted in measured rounds: $TOTAL; jobs accepted by the gateway (incl. warm-up): $stored"
echo "  gateway peak RSS: $rss MB"
echo "  for scale, GET /healthz (no token, no body, no store) on the same gateway: $healthz/s"
