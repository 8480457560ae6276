#!/bin/bash
# What an idle cluster costs (`make idle`): starts a 3-node cluster on loopback with no
# streams, waits for it to settle, then reports per node the context switches per second
# (all threads) and the CPU used over a window. Every timer that fires and every RPC costs a
# node several context switches; on a small machine they compete with the frames it relays.
#   scripts/idle.sh [seconds]        # default 10
set -eu
cd "$(dirname "$0")/.."
window=${1:-10}
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
go build -o "$dir/peer" ./cmd/peer

base=$((20000 + RANDOM % 20000))
for i in 1 2 3; do
  p=$((base + i * 10))
  if [ "$i" = 1 ]; then mode=(run); else mode=(join "127.0.0.1:$((base + 12))"); fi
  "$dir/peer" "${mode[@]}" --name "n$i" --rtmp "127.0.0.1:$p" --http "127.0.0.1:$((p + 1))" \
    --gossip "127.0.0.1:$((p + 2))" --raft "127.0.0.1:$((p + 3))" --data "$dir/n$i" \
    --cluster-key idle --log-level warn >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  sleep 1
done
sleep 6

switches() { # all threads of process $1
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'
}
ticks() { awk '{ print $14 + $15 }' /proc/"$1"/stat; }
hz=$(getconf CLK_TCK)
declare -A cs0 t0
for p in "${pids[@]}"; do cs0[$p]=$(switches "$p"); t0[$p]=$(ticks "$p"); done
sleep "$window"
echo "idle 3-node cluster, ${window} s (n1 bootstrapped and is normally the raft leader):"
i=1
for p in "${pids[@]}"; do
  [ -d /proc/"$p" ] || { echo "  n$i exited: see its log"; cat "$dir/n$i.log"; exit 1; }
  cs=$(( ($(switches "$p") - cs0[$p]) / window ))
  cpu=$(awk -v t="$(( $(ticks "$p") - t0[$p] ))" -v hz="$hz" -v w="$window" 'BEGIN { printf "%.1f", 100 * t / hz / w }')
  echo "  n$i: $cs context switches/s, ${cpu}% of a core"
  i=$((i + 1))
done
