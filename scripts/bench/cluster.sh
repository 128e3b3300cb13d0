#!/usr/bin/env bash
# One cluster load run: builds telehub and firmware-sim from this checkout,
# starts Mosquitto on configs/cluster/mosquitto.conf (persistence on, in a
# temp dir) and HUBS hubs of one cluster on fresh data directories, runs
# firmware-sim against hub 1 (its MQTT devices on the broker), then prints
# what each hub stored, the replication lag and how long the replicas took
# to hold every reading.
#
#   scripts/bench/cluster.sh HUBS NAME [sim flags...]
#
# The simulator gets --hub (hub 1), --mqtt (the broker) and --json before
# the flags given here. The hubs get --cluster bench, --node-id hN,
# --log-level warn and --max-connections-per-address 0.
#
# Environment: BENCH_OUT (results directory, default ./bench-out),
# FIRST_PORT (HTTP port of hub 1, default 18081; the others follow),
# BROKER_PORT (default 11883), STEADY_FROM and STEADY_TO (the window, in
# seconds of the simulator's run, over which stored rates are taken,
# default 5 and 15), SIM_TIMEOUT (default 180 s), TELEHUB (a telehub
# binary to run instead of this checkout's), DEBUG_FIRST_PORT (when set,
# hub N serves pprof on 127.0.0.1:DEBUG_FIRST_PORT+N-1 through --debug-addr).
#
# Results, in $BENCH_OUT: NAME.json (the simulator's summary), NAME.sim.log,
# NAME.hN.metrics (each hub's /metrics once the replicas caught up),
# NAME.hN.log, NAME.top (a top snapshot 8 s into the run).
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 HUBS NAME [sim flags...]" >&2
  exit 2
fi
hubs=$1
name=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-$PWD/bench-out}
first=${FIRST_PORT:-18081}
broker=127.0.0.1:${BROKER_PORT:-11883}
from=${STEADY_FROM:-5}
to=${STEADY_TO:-15}
mosquitto=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
mkdir -p "$out"

work=$(mktemp -d)
pids=()
cleanup() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/telehub" ./cmd/telehub && go build -o "$work/firmware-sim" ./cmd/firmware-sim)
if [[ -n ${TELEHUB:-} ]]; then cp "$TELEHUB" "$work/telehub"; fi

mkdir -p "$work/broker"
sed -e "s|^listener .*|listener ${broker##*:} 127.0.0.1|" \
    -e "s|^persistence_location .*|persistence_location $work/broker/|" \
    "$root/configs/cluster/mosquitto.conf" >"$work/broker/mosquitto.conf"
echo "user $(id -un)" >>"$work/broker/mosquitto.conf"
"$mosquitto" -c "$work/broker/mosquitto.conf" >"$out/$name.broker.log" 2>&1 &
pids+=($!)
broker_pid=$!

url() { echo "http://127.0.0.1:$((first + $1 - 1))"; }
hub_pids=()
for n in $(seq "$hubs"); do
  debug=()
  if [[ -n ${DEBUG_FIRST_PORT:-} ]]; then debug=(--debug-addr "127.0.0.1:$((DEBUG_FIRST_PORT + n - 1))"); fi
  "$work/telehub" "${debug[@]}" --cluster bench --node-id "h$n" --mqtt-broker "tcp://$broker" --mqtt-addr= \
    --http-addr "127.0.0.1:$((first + n - 1))" --data-dir "$work/h$n" \
    --log-level warn --max-connections-per-address 0 >"$out/$name.h$n.log" 2>&1 &
  pids+=($!)
  hub_pids+=($!)
done
for n in $(seq "$hubs"); do
  for _ in $(seq 200); do
    curl -sf "$(url "$n")/readyz" >/dev/null && break
    sleep 0.1
  done
  curl -sf "$(url "$n")/readyz" >/dev/null || { echo "cluster.sh: hub $n not ready; see $out/$name.h$n.log" >&2; exit 1; }
done

# stored prints the events hub $1 has stored so far.
stored() { curl -s "$(url "$1")/metrics" | awk '$1 == "telehub_events_stored_total" {printf "%.0f", $2}'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

declare -A c0 s0 s1
for p in "${pids[@]}"; do c0[$p]=$(ticks "$p"); done
t0=$(date +%s.%N)
(sleep 8 && top -b -n1 -w 200 | head -16 >"$out/$name.top") &
snap=$!
# the stored counts of every hub at the start and end of the steady window
(
  sleep "$from"; for n in $(seq "$hubs"); do echo "from $n $(stored "$n")"; done
  sleep $((to - from)); for n in $(seq "$hubs"); do echo "to $n $(stored "$n")"; done
) >"$work/samples" &
sampler=$!
/usr/bin/time -f "%e %U %S" -o "$work/simtime" timeout "${SIM_TIMEOUT:-180}" "$work/firmware-sim" --hub "$(url 1)" --mqtt "tcp://$broker" --json "$@" \
  >"$out/$name.json" 2>"$out/$name.sim.log" || echo "cluster.sh: firmware-sim exited with status $?" >&2
t1=$(date +%s.%N)
declare -A c1
for p in "${pids[@]}"; do c1[$p]=$(ticks "$p"); done
wait "$snap" "$sampler" 2>/dev/null || true

# Catch-up: how long after the simulator's end until every hub has stored
# as many events as hub 1 (and none stores more a second later).
start=$(date +%s.%N)
target=$(stored 1)
for _ in $(seq 600); do
  behind=0
  for n in $(seq "$hubs"); do (($(stored "$n") < target)) && behind=1; done
  ((behind == 0)) && break
  sleep 0.1
  target=$(stored 1)
done
converged=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e - s}')

for n in $(seq "$hubs"); do curl -s "$(url "$n")/metrics" >"$out/$name.h$n.metrics"; done

# quantile Q of the replication lag histogram in file $2, in ms (linear
# within a bucket).
quantile() {
  awk -v q="$1" '
    /^telehub_cluster_replication_lag_seconds_bucket/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = (le == "+Inf") ? 1e9 : le + 0; cum[n] = $NF + 0 }
    END {
      if (n == 0 || cum[n] == 0) { printf "n/a"; exit }
      want = q * cum[n]; prev = 0; pc = 0
      for (i = 1; i <= n; i++) {
        if (cum[i] >= want) { f = (cum[i] > pc) ? (want - pc) / (cum[i] - pc) : 0
          printf "%.1f", 1000 * (prev + f * (bound[i] - prev)); exit }
        prev = bound[i]; pc = cum[i] }
    }' "$2"
}

cpu_pct() { awk -v d="$1" -v hz="$hz" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f %%", 100 * d / hz / (e - s)}'; }
echo "run:                 $name ($hubs hubs)"
echo "simulator:           $(jq -r '"\(.acked) readings acked, \(.acked_per_s | floor)/s over the run, ack p50 \(.ack_latency_ms.p50) ms p99 \(.ack_latency_ms.p99) ms"' "$out/$name.json" 2>/dev/null || echo see "$out/$name.json")"
echo "simulator CPU:       $(tail -n1 "$work/simtime" | awk '{printf "%.0f %%", 100 * ($2 + $3) / $1}')"
echo "broker CPU:          $(cpu_pct $((c1[$broker_pid] - c0[$broker_pid])))"
for n in $(seq "$hubs"); do
  p=${hub_pids[n - 1]}
  rate=$(awk -v n="$n" -v span=$((to - from)) '$2 == n {v[$1] = $3} END {if (("from" in v) && ("to" in v)) printf "%.0f", (v["to"] - v["from"]) / span / 5; else printf "n/a"}' "$work/samples")
  lag="p50 $(quantile 0.5 "$out/$name.h$n.metrics") ms, p99 $(quantile 0.99 "$out/$name.h$n.metrics") ms"
  commit=$(awk '$1 == "telehub_commit_duration_seconds_sum" {s = $2} $1 == "telehub_commit_duration_seconds_count" {c = $2}
    END {if (c > 0) printf "%.1f ms mean over %d commits", 1000 * s / c, c; else printf "n/a"}' "$out/$name.h$n.metrics")
  echo "hub $n:               CPU $(cpu_pct $((c1[$p] - c0[$p]))), stored $rate readings/s (steady), replication lag $lag, commit $commit"
done
echo "replicas caught up:  ${converged} s after the simulator ended"
