#!/usr/bin/env bash
# Runs the same workloads against telehub (durable: every QoS 1 PUBACK after
# the fsync) and against Mosquitto (in memory) in one run on this machine,
# and prints each result and the ratio telehub / Mosquitto.
#
#   scripts/bench/compare.sh
#   BASE=f7c0a75 scripts/bench/compare.sh   # also telehub at commit f7c0a75
#
# Workloads, all driven by `firmware-sim bench` (raw MQTT publishers with a
# window of QoS 1 publishes in flight; every payload carries its send time
# in microseconds, from which the watchers measure latency):
#   fanout-1k   1 publisher at 1 000 msg/s -> 100 watchers: latency p50/p99
#   fanout-max  1 publisher as fast as it can -> 100 watchers: deliveries/s
#   ingest      200 publishers as fast as they can (32 publishes in flight
#               each) -> 1 watcher: acked msg/s
#   ingest-5m   the same with 5 metrics a message (a reading of 5 events
#               on telehub), no watcher
# telehub's watchers read its SSE stream (telemetry/+/sent_us); Mosquitto's
# subscribe at QoS 0 (devices/+/telemetry). Publishers use QoS 1 on both
# (at QoS 0 and full rate Mosquitto queues without bound). With BASE,
# telehub built at that commit runs fanout-1k, ingest and ingest-5m too.
#
# telehub runs with --device-rate 0 (its per-device rate limit, 200 msg/s
# by default, would pace the one fan-out publisher) and a fresh data
# directory; Mosquitto with persistence off, no queue limits and Nagle's
# algorithm off (set_tcp_nodelay: its default holds small writes back
# while an earlier one is unacknowledged, which Go never does). Only one
# server takes load at a time.
#
# Environment: BENCH_OUT (results directory, default ./bench-out),
# DURATION (seconds each run publishes, default 15), WARMUP (seconds left
# out of each run's figures, default 3), HTTP_PORT (default 18090),
# MQTT_PORT (telehub's broker, default 11893), MOSQUITTO_PORT (default
# 11894), MOSQUITTO (default: mosquitto on PATH, else /usr/sbin/mosquitto).
# Each run's JSON summary is kept in $BENCH_OUT/compare-NAME-TARGET.json and
# the server's and load tool's CPU in compare-NAME-TARGET.cpu.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-$PWD/bench-out}
duration=${DURATION:-15}
warmup=${WARMUP:-3}
http=127.0.0.1:${HTTP_PORT:-18090}
mqtt=127.0.0.1:${MQTT_PORT:-11893}
mport=${MOSQUITTO_PORT:-11894}
mosquitto=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
base=${BASE:-}
for tool in jq curl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool is needed" >&2; exit 1; }
done
[[ -x $mosquitto ]] || { echo "compare.sh: mosquitto not found (Debian: apt-get install mosquitto)" >&2; exit 1; }
mkdir -p "$out"

work=$(mktemp -d)
hub=""
broker=""
cleanup() {
  if [[ -n $hub ]]; then kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; fi
  if [[ -n $broker ]]; then kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/telehub" ./cmd/telehub && go build -o "$work/firmware-sim" ./cmd/firmware-sim)
if [[ -n $base ]]; then
  mkdir "$work/base"
  git -C "$root" archive "$base" | tar -x -C "$work/base"
  (cd "$work/base" && go build -o "$work/telehub-base" ./cmd/telehub)
fi

# start_telehub BIN NAME starts telehub BIN on a fresh data directory and
# waits until it answers.
start_telehub() {
  rm -rf "$work/data"
  "$1" --http-addr "$http" --mqtt-addr "$mqtt" --data-dir "$work/data" --log-level warn \
    --device-rate 0 --max-connections-per-address 0 --mqtt-max-clients-per-address 10000 \
    >"$out/compare-$2.log" 2>&1 &
  hub=$!
  for _ in $(seq 100); do
    if curl -sf "http://$http/healthz" >/dev/null; then return; fi
    kill -0 "$hub" 2>/dev/null || { echo "compare.sh: telehub exited; see $out/compare-$2.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "http://$http/healthz" >/dev/null
}

stop_telehub() {
  kill "$hub"
  wait "$hub" || true
  hub=""
}

cat >"$work/mosquitto.conf" <<EOF
listener $mport 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 0
set_tcp_nodelay true
user $(id -un)
EOF

# ticks prints the CPU time (user + system, in clock ticks) of process $1.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# bench NAME TARGET [flags...] runs firmware-sim bench against TARGET
# (telehub, base or mosquitto), keeps its JSON summary and notes the
# server's and the load tool's CPU over the run (100 % is one core).
bench() {
  local name=$1 target=$2 pid=$hub
  shift 2
  local args=(--duration "${duration}s" --warmup "${warmup}s" --id-prefix "$name-" --json)
  if [[ $target == mosquitto ]]; then
    args+=(--mqtt "tcp://127.0.0.1:$mport" --watch-mqtt "tcp://127.0.0.1:$mport")
    pid=$broker
  else
    args+=(--mqtt "tcp://$mqtt" --watch-sse "http://$http")
  fi
  local c0 t0 t1
  c0=$(ticks "$pid")
  t0=$(date +%s.%N)
  /usr/bin/time -f "%e %U %S" -o "$work/simtime" \
    "$work/firmware-sim" bench "${args[@]}" "$@" >"$out/compare-$name-$target.json"
  t1=$(date +%s.%N)
  awk -v d="$(($(ticks "$pid") - c0))" -v hz="$hz" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f", 100 * d / hz / (e - s)}' \
    >"$out/compare-$name-$target.cpu"
  awk '{printf " %.0f\n", 100 * ($2 + $3) / $1}' "$work/simtime" >>"$out/compare-$name-$target.cpu"
}

# workloads TARGET runs every workload against TARGET.
workloads() {
  bench fanout-1k "$1" --publishers 1 --rate 1000 --watchers 100
  if [[ $1 != base ]]; then bench fanout-max "$1" --publishers 1 --watchers 100; fi
  bench ingest "$1" --publishers 200 --window 32 --watchers 1
  bench ingest-5m "$1" --publishers 200 --window 32 --metrics 5
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start_telehub "$work/telehub" telehub
workloads telehub
stop_telehub
if [[ -n $base ]]; then
  start_telehub "$work/telehub-base" base
  workloads base
  stop_telehub
fi
"$mosquitto" -c "$work/mosquitto.conf" >"$out/compare-mosquitto.log" 2>&1 &
broker=$!
sleep 0.5
kill -0 "$broker" 2>/dev/null || { echo "compare.sh: mosquitto exited; see $out/compare-mosquitto.log" >&2; exit 1; }
workloads mosquitto
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

# get NAME TARGET JQ prints a field of a run's summary.
get() { jq -r "$3" "$out/compare-$1-$2.json"; }
# row LABEL NAME JQ prints telehub's and Mosquitto's figure and their
# ratio, and telehub at BASE's when there is one.
row() {
  local t m b=""
  t=$(get "$2" telehub "$3")
  m=$(get "$2" mosquitto "$3")
  if [[ -f $out/compare-$2-base.json && -n $base ]]; then b=$(get "$2" base "$3"); fi
  printf '%-44s %12s %12s %7s %12s\n' "$1" "$t" "$m" \
    "$(awk -v t="$t" -v m="$m" 'BEGIN{if (m > 0) printf "%.2f", t / m; else print "n/a"}')" "$b"
}
printf '\n%-44s %12s %12s %7s %12s\n' workload telehub mosquitto ratio "${base:+telehub@$base}"
row "fan-out 1k msg/s x 100: latency p50 ms" fanout-1k '.latency_ms.p50'
row "fan-out 1k msg/s x 100: latency p99 ms" fanout-1k '.latency_ms.p99'
row "fan-out 1k msg/s x 100: deliveries/s" fanout-1k '.deliveries_per_s | floor'
row "fan-out max x 100: deliveries/s" fanout-max '.deliveries_per_s | floor'
row "fan-out max x 100: latency p99 ms" fanout-max '.latency_ms.p99'
row "ingest 200 publishers, QoS 1: acked msg/s" ingest '.acked_per_s | floor'
row "ingest 200 publishers, QoS 1: ack p99 ms" ingest '.ack_latency_ms.p99'
row "ingest, 5 metrics a msg, QoS 1: acked msg/s" ingest-5m '.acked_per_s | floor'
echo
echo "CPU over each run, server % / load tool % (100 % is one core):"
for f in "$out"/compare-*.cpu; do
  read -r server tool <"$f"
  printf '  %-28s %4s / %4s\n' "$(basename "$f" .cpu | sed 's/^compare-//')" "$server" "$tool"
done
missed=$(jq -r 'select(.watchers > 0 and .per_watcher_min != .sent) | input_filename' "$out"/compare-*.json |
  xargs -r -n1 basename | tr '\n' ' ')
echo
resumed=$(jq -r 'select(.watcher_resumes > 0) | input_filename' "$out"/compare-*.json | xargs -r -n1 basename | tr '\n' ' ')
echo "runs in which a watcher missed messages: ${missed:-none}"
echo "runs in which telehub cut a watcher as too slow (it resumed): ${resumed:-none}"
echo "summaries: $out/compare-*.json"
