#!/usr/bin/env bash
# Waits until the machine is idle, so that a load run gets the CPU it needs:
# idle means no process above 15 % of a core in two top samples 3 s apart.
# Gives up after $1 seconds (default 300) with exit status 1.
#
#   scripts/bench/quiet.sh 180 && scripts/bench/run.sh ...
set -euo pipefail

limit=${1:-300}
threshold=15
start=$(date +%s)

# busy succeeds when some process used more than $threshold % CPU in the
# second of two top samples (the first sample averages since boot).
busy() {
  top -b -n2 -d 1 -w 200 |
    awk -v t="$threshold" '/^top -/{n++} n==2 && $1 ~ /^[0-9]+$/ && $9+0 > t {b=1} END{exit !b}'
}

while (($(date +%s) - start < limit)); do
  if ! busy; then
    sleep 3
    if ! busy; then
      exit 0
    fi
  fi
  sleep 3
done
echo "quiet.sh: the machine is still busy after ${limit}s" >&2
exit 1
