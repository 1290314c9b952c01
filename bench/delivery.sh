#!/usr/bin/env bash
# Delivery benchmark: how fast the workers drain a queue of usage reports to a Puhuri that takes
# 20 ms per call, against the bound delivery.max_in_flight / latency, and whether any one-second
# window ever sees more calls start than delivery.max_per_second. On Redis.
#
#   bench/delivery.sh [--jobs N] [--latency-ms MS] [--in-flight N] [--rate-limit N] [--rounds N]
#
# Each round: N usage reports for N distinct seeded resources are queued while Puhuri's usage
# endpoint hangs (so nothing is delivered), the gateway is stopped, the fault is replaced by the
# added latency, and a gateway is started to drain the queue. The simulator records when each
# set_usage call arrived; the drain rate is (calls - 1) / (last arrival - first arrival).
# Two drains per round: one bound by concurrency (rate limit far above the bound) and one bound
# by --rate-limit. Traffic goes to 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

JOBS=10000
LATENCY_MS=20
IN_FLIGHT=16
RATE_LIMIT=300
ROUNDS=1
while (($#)); do
  case $1 in
    --jobs) JOBS=$2; shift ;;
    --latency-ms) LATENCY_MS=$2; shift ;;
    --in-flight) IN_FLIGHT=$2; shift ;;
    --rate-limit) RATE_LIMIT=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

need curl curl
need python3 python3
need redis-server redis-server
build_release
start_sim
seed_resources "$JOBS" "$WORK/resources.txt"
start_redis

fault() { curl -sf -X POST -H 'Content-Type: application/json' -d "$1" "${SIM_CTL}faults" >/dev/null; }
calls_json() { curl -sf "${SIM_CTL}calls?path_prefix=/api/marketplace-component-usages/set_usage/&method=POST"; }

# fill TAG: queue one report per resource, in batches of 1,000, while deliveries hang.
fill() {
  local tag=$1
  curl -sf -X DELETE "${SIM_CTL}faults"
  fault '{"kind": "hang", "path_prefix": "marketplace-component-usages/", "hang_ms": 600000}'
  write_config "$WORK/fill.toml" HS256 "workers = 1\nshutdown_grace = \"1s\""
  start_gateway "$WORK/fill.toml"
  "$BIN" token issue --config "$WORK/fill.toml" --site bench --ttl 1h >"$WORK/token"
  python3 - "$WORK/resources.txt" "$tag" "$WORK/batches" <<'PY'
import json, sys, os
uuids = [l.strip() for l in open(sys.argv[1]) if l.strip()]
tag = int(sys.argv[2])
os.makedirs(sys.argv[3], exist_ok=True)
for n in range(0, len(uuids), 1000):
    reports = [{"resource_uuid": u, "usages": {"cpu_k_hours": f"{tag}.{i % 100:02d}"}}
               for i, u in enumerate(uuids[n:n + 1000])]
    with open(f"{sys.argv[3]}/{n // 1000:05d}.json", "w") as f:
        json.dump({"reports": reports}, f)
PY
  local f accepted=0 n
  for f in "$WORK"/batches/*.json; do
    n=$(curl -sf -X POST -H "Authorization: Bearer $(cat "$WORK/token")" -H 'Content-Type: application/json' \
      --data-binary "@$f" "$GATEWAY_URL/v1/usage/batch" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accepted"])')
    accepted=$((accepted + n))
  done
  rm -rf "$WORK/batches"
  ((accepted == JOBS)) || { echo "only $accepted of $JOBS reports were accepted" >&2; exit 1; }
  stop_gateway
}

# drain MAX_PER_SECOND: returns "rate max_window busiest_calendar_second seconds"
drain() {
  local per_second=$1
  curl -sf -X DELETE "${SIM_CTL}faults"
  curl -sf -X DELETE "${SIM_CTL}calls"
  fault "{\"kind\": \"latency\", \"latency_ms\": $LATENCY_MS}"
  write_config "$WORK/drain.toml" HS256 "workers = $IN_FLIGHT\nmax_in_flight = $IN_FLIGHT\nmax_per_second = $per_second"
  start_gateway "$WORK/drain.toml"
  local deadline=$((SECONDS + 600)) done_count=0
  while ((done_count < JOBS)); do
    ((SECONDS < deadline)) || { echo "the queue did not drain in 600 s ($done_count of $JOBS)" >&2; exit 1; }
    sleep 0.5
    done_count=$(curl -sf "$GATEWAY_URL/metrics" | awk '/^puhuri_gateway_jobs\{state="(succeeded|superseded|failed|dead)"\}/ { s += $2 } END { print s + 0 }')
  done
  local failed
  failed=$(curl -sf "$GATEWAY_URL/metrics" | awk '/^puhuri_gateway_jobs\{state="(failed|dead)"\}/ { s += $2 } END { print s + 0 }')
  ((failed == 0)) || { echo "$failed jobs failed" >&2; exit 1; }
  stop_gateway
  calls_json | python3 -c '
import json, sys
from datetime import datetime
t = sorted(datetime.fromisoformat(c["time"].replace("Z", "+00:00")).timestamp() for c in json.load(sys.stdin))
n = len(t)
rate = (n - 1) / (t[-1] - t[0])
# the most calls starting in any window [x, x + 1 s): slide over every call as the window start
best, j = 0, 0
for i in range(n):
    while j < n and t[j] < t[i] + 1.0:
        j += 1
    best = max(best, j - i)
per_second = {}
for x in t:
    per_second[int(x)] = per_second.get(int(x), 0) + 1
print(f"{rate:.1f} {best} {max(per_second.values())} {t[-1] - t[0]:.2f} {n}")'
}

BOUND=$(python3 -c "print(f'{$IN_FLIGHT / ($LATENCY_MS / 1000):.1f}')")

# What one call really takes with the added latency (the simulator's own work, the network and
# timer granularity come on top): the median of 50 sequential set_usage calls on one kept-alive
# connection, as the gateway makes them.
upstream_ms() {
  curl -sf -X DELETE "${SIM_CTL}faults"
  fault "{\"kind\": \"latency\", \"latency_ms\": $LATENCY_MS}"
  python3 - "$SIM_URL" "$SIM_TOKEN" "$(head -n 1 "$WORK/resources.txt")" <<'PY'
import http.client, json, statistics, sys, time
from urllib.parse import urlparse
url, token, uuid = urlparse(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
times = []
for i in range(51):
    body = json.dumps({"resource": uuid, "usages": [{"type": "gb_k_hours", "amount": str(i)}]})
    start = time.perf_counter()
    conn.request("POST", url.path + "marketplace-component-usages/set_usage/", body, headers)
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        sys.exit(f"set_usage answered {response.status}")
    if i:  # the first call opens the connection
        times.append(time.perf_counter() - start)
print(f"{statistics.median(times) * 1000:.2f}")
PY
}
MEASURED_MS=$(upstream_ms)
MEASURED_BOUND=$(python3 -c "print(f'{$IN_FLIGHT / ($MEASURED_MS / 1000):.1f}')")
echo "one set_usage call with ${LATENCY_MS} ms added takes $MEASURED_MS ms (median of 50 on one connection): bound $MEASURED_BOUND/s at $IN_FLIGHT in flight"
declare -a RATES WINDOWS
for round in $(seq 1 "$ROUNDS"); do
  KEY_PREFIX="bench-$$-$round-concurrency"
  fill $((round * 2))
  read -r rate window calendar secs calls < <(drain 100000)
  ((calls == JOBS)) || { echo "the simulator saw $calls set_usage calls for $JOBS jobs" >&2; exit 1; }
  RATES+=("$rate")
  echo "round $round, concurrency-bound: $calls calls in $secs s = $rate/s, $(python3 -c "print(f'{$rate / $BOUND * 100:.1f}')")% of the nominal bound $BOUND/s, $(python3 -c "print(f'{$rate / $MEASURED_BOUND * 100:.1f}')")% of the measured $MEASURED_BOUND/s"
  KEY_PREFIX="bench-$$-$round-rate"
  fill $((round * 2 + 1))
  read -r rate window calendar secs calls < <(drain "$RATE_LIMIT")
  ((calls == JOBS)) || { echo "the simulator saw $calls set_usage calls for $JOBS jobs" >&2; exit 1; }
  WINDOWS+=("$window")
  echo "round $round, rate limit $RATE_LIMIT/s: $calls calls in $secs s = $rate/s; most in any 1 s window: $window; busiest calendar second: $calendar"
done
echo
echo "delivery to a $LATENCY_MS ms upstream, $IN_FLIGHT in flight, $JOBS jobs, $ROUNDS round(s), Redis"
echo "  concurrency-bound drain, median: $(median "${RATES[@]}")/s = $(python3 -c "print(f'{$(median "${RATES[@]}") / $BOUND * 100:.1f}')")% of the nominal $BOUND/s, $(python3 -c "print(f'{$(median "${RATES[@]}") / $MEASURED_BOUND * 100:.1f}')")% of $MEASURED_BOUND/s from the measured call time"
echo "  with max_per_second = $RATE_LIMIT: the most calls in any one-second window, worst round: $(printf '%s\n' "${WINDOWS[@]}" | sort -n | tail -n 1)"
