#!/usr/bin/env bash
# One load run: builds telehub and firmware-sim from this checkout, starts
# the hub on a fresh data directory on loopback, runs firmware-sim against
# it, then stops the hub and prints what the run measured.
#
#   scripts/bench/run.sh NAME [hub flags...] -- [sim flags...]
#
# The hub gets --http-addr, --mqtt-addr, --data-dir, --log-level warn and
# --max-connections-per-address 0 (every simulated client comes from
# 127.0.0.1) before the hub flags given here, which win. The simulator gets
# --hub, --mqtt and --json before the sim flags given here.
#
# Environment: BENCH_OUT (results directory, default ./bench-out),
# HTTP_PORT (default 18080), MQTT_PORT (default 11883), STEADY_FROM and
# STEADY_TO (the steady-state window in seconds of the simulator's run,
# default 5 and 15), SIM_TIMEOUT (seconds the simulator may take at most,
# default 120).
#
# Results, in $BENCH_OUT: NAME.json (the simulator's summary), NAME.sim.log
# (its per-second progress lines), NAME.metrics (the hub's /metrics after
# the run), NAME.top (a top snapshot 8 s into the run: check that only the
# hub and the simulator were busy), NAME.hub.log.
set -euo pipefail

if (($# < 1)); then
  echo "usage: $0 NAME [hub flags...] -- [sim flags...]" >&2
  exit 2
fi
name=$1
shift
hub_flags=()
while (($# > 0)) && [[ $1 != -- ]]; do
  hub_flags+=("$1")
  shift
done
if (($# > 0)); then shift; fi
sim_flags=("$@")

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${BENCH_OUT:-$PWD/bench-out}
http=127.0.0.1:${HTTP_PORT:-18080}
mqtt=127.0.0.1:${MQTT_PORT:-11883}
from=${STEADY_FROM:-5}
to=${STEADY_TO:-15}
mkdir -p "$out"

work=$(mktemp -d)
hub=""
snap=""
cleanup() {
  if [[ -n $snap ]]; then kill "$snap" 2>/dev/null || true; fi
  if [[ -n $hub ]]; then kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if curl -s "http://$http/healthz" >/dev/null; then
  echo "run.sh: something already listens on $http; set HTTP_PORT" >&2
  exit 1
fi

(cd "$root" && go build -o "$work/telehub" ./cmd/telehub && go build -o "$work/firmware-sim" ./cmd/firmware-sim)

"$work/telehub" --http-addr "$http" --mqtt-addr "$mqtt" --data-dir "$work/data" \
  --log-level warn --max-connections-per-address 0 --mqtt-max-clients-per-address 10000 "${hub_flags[@]}" >"$out/$name.hub.log" 2>&1 &
hub=$!

for _ in $(seq 100); do
  if curl -sf "http://$http/healthz" >/dev/null; then break; fi
  if ! kill -0 "$hub" 2>/dev/null; then
    echo "run.sh: the hub exited; see $out/$name.hub.log" >&2
    exit 1
  fi
  sleep 0.1
done
curl -sf "http://$http/healthz" >/dev/null

# ticks prints the CPU time (user + system, in clock ticks) of process $1.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

h0=$(ticks "$hub")
t0=$(date +%s.%N)
(sleep 8 && top -b -n1 -w 200 | head -16 >"$out/$name.top") &
snap=$!
/usr/bin/time -f "%e %U %S" -o "$work/simtime" timeout "${SIM_TIMEOUT:-120}" \
  "$work/firmware-sim" --hub "http://$http" --mqtt "tcp://$mqtt" --json "${sim_flags[@]}" \
  >"$out/$name.json" 2>"$out/$name.sim.log" || echo "run.sh: firmware-sim exited with status $?" >&2
h1=$(ticks "$hub")
t1=$(date +%s.%N)
wait "$snap" 2>/dev/null || true
snap=""

curl -s "http://$http/metrics" >"$out/$name.metrics" || true
kill "$hub"
wait "$hub" || true
hub=""

# steady prints the per-second rate of counter $1 (acked or deliv) between
# the progress lines of t=$from s and t=$to s.
steady() {
  awk -v k="$1=" -v a="t=${from}s" -v b="t=${to}s" '
    $1 == a || $1 == b { for (i = 2; i <= NF; i++) if (index($i, k) == 1) v[$1] = substr($i, length(k) + 1) }
    END { if ((a in v) && (b in v)) printf "%.0f", (v[b] - v[a]) / ('"$to"' - '"$from"'); else printf "n/a" }' \
    "$out/$name.sim.log"
}

echo "run:              $name"
echo "hub CPU:          $(awk -v d="$((h1 - h0))" -v hz="$hz" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.0f %%", 100 * d / hz / (e - s)}')"
echo "simulator CPU:    $(tail -n1 "$work/simtime" | awk '{printf "%.0f %%", 100 * ($2 + $3) / $1}')"
echo "acked/s (steady): $(steady acked)"
echo "deliveries/s:     $(steady deliv)"
echo "summary:          $out/$name.json"
