#!/usr/bin/env bash
# Runs a telehub cluster on one machine: a Mosquitto broker (mosquitto.conf
# beside this script, with persistence on) and three hubs of one cluster,
# each with its own data directory, all on loopback ports. Ctrl-C (or
# SIGTERM) stops the hubs, then the broker.
#
#   configs/cluster/run.sh
#   # hubs at http://127.0.0.1:8081, :8082, :8083; broker at tcp://127.0.0.1:1883
#   # nginx -c "$PWD/configs/cluster/nginx.conf" -p /tmp -e stderr  (one address, :8080)
#
# Environment: CLUSTER (default demo), BROKER_PORT (1883), FIRST_PORT
# (8081; the hubs take three ports from it), DATA (data/cluster in the
# repository), TELEHUB (a telehub binary; default: built from this
# checkout), MOSQUITTO (the broker binary).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster=${CLUSTER:-demo}
broker_port=${BROKER_PORT:-1883}
first_port=${FIRST_PORT:-8081}
data=${DATA:-$root/data/cluster}
mosquitto=${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}

if [ ! -x "$mosquitto" ]; then
  echo "run.sh: mosquitto not found (Debian: apt-get install mosquitto)" >&2
  exit 1
fi
mkdir -p "$data/broker"
telehub=${TELEHUB:-}
if [ -z "$telehub" ]; then
  telehub="$data/telehub"
  (cd "$root" && go build -o "$telehub" ./cmd/telehub)
fi

pids=()
stop() {
  trap - INT TERM EXIT
  # the hubs first (newest first), the broker last
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The broker: this directory's configuration on our port and data dir, as
# the user running this script (a broker started as root would otherwise
# switch to the user "mosquitto", who cannot write to $data).
sed -e "s|^listener .*|listener $broker_port 127.0.0.1|" \
    -e "s|^persistence_location .*|persistence_location $data/broker/|" \
    "$here/mosquitto.conf" >"$data/broker/mosquitto.conf"
echo "user $(id -un)" >>"$data/broker/mosquitto.conf"
"$mosquitto" -c "$data/broker/mosquitto.conf" >>"$data/broker/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "run.sh: mosquitto exited; see $data/broker/mosquitto.log" >&2; exit 1; }
  sleep 0.1
done

for i in 0 1 2; do
  node=hub$((i + 1))
  port=$((first_port + i))
  "$telehub" --cluster "$cluster" --node-id "$node" \
    --mqtt-broker "tcp://127.0.0.1:$broker_port" --mqtt-addr= \
    --http-addr "127.0.0.1:$port" --data-dir "$data/$node" \
    >>"$data/$node.log" 2>&1 &
  pids+=($!)
  echo "$node: http://127.0.0.1:$port (log $data/$node.log)"
done
echo "broker: tcp://127.0.0.1:$broker_port (log $data/broker/mosquitto.log); Ctrl-C stops everything"

# Until Ctrl-C, or until one of them exits on its own.
set +e
wait -n "${pids[@]}"
echo "run.sh: a process exited (status $?); stopping the others" >&2
exit 1
