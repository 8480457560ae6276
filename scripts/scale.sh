#!/usr/bin/env bash
# Players at scale on one node (make scale; not a test): one node, one 500 kbit/s
# H.264+AAC stream published with ffmpeg, then FLV HTTP-FLV players and RTMP RTMP
# players from peerload on this same machine, one step each on a fresh node. Prints, per step, what
# peerload received (players at full rate, disconnects, longest gap p99), the node's CPU
# and its RSS per player (peak VmRSS during the step minus VmRSS before it, over the
# players), and the node's open-file limit.
#   bash scripts/scale.sh                                  # 10,000 HTTP-FLV, 5,000 RTMP
#   FLV=2000 RTMP=1000 MERGE_WRITE=350ms bash scripts/scale.sh
set -eu
cd "$(dirname "$0")/.."
FLV=${FLV:-10000}
RTMP=${RTMP:-5000}
MERGE_WRITE=${MERGE_WRITE:-0s}
DURATION=${DURATION:-45s}
RAMP=${RAMP:-20s}

bash scripts/install-tools.sh >/dev/null
tmp=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

go build -o "$tmp/peer" ./cmd/peer
go build -o "$tmp/peerload" ./cmd/peerload
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 60 -c:v libx264 -preset veryfast \
  -b:v 430k -maxrate 450k -bufsize 900k -g 50 -keyint_min 50 -sc_threshold 0 \
  -c:a aac -b:a 64k "$tmp/clip.flv"

# Every player takes a descriptor in peerload too.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# start_node runs a fresh node for one step (RSS per player needs one: Go keeps the heap
# a previous step grew) and publishes the clip to it; it sets $node.
start_node() { # players
  rm -rf "$tmp/data"
  "$tmp/peer" run --name scale --rtmp 127.0.0.1:29350 --http 127.0.0.1:28080 \
    --gossip 127.0.0.1:27946 --raft 127.0.0.1:27947 --data "$tmp/data" \
    --max-connections $(($1 + 1000)) --merge-write "$MERGE_WRITE" \
    --log-level warn >"$tmp/peer.log" 2>&1 &
  node=$!
  i=0
  until (exec 3<>/dev/tcp/127.0.0.1/28080) 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 150 ] || { echo "scale.sh: node did not start" >&2; cat "$tmp/peer.log" >&2; exit 1; }
    sleep 0.1
  done
  ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$tmp/clip.flv" -c copy -f flv \
    rtmp://127.0.0.1:29350/live/scale >"$tmp/ffmpeg.log" 2>&1 &
  publisher=$!
  pids="$node $publisher"
  sleep 4
}

stop_node() {
  kill "$publisher" "$node" 2>/dev/null || true
  wait "$publisher" "$node" 2>/dev/null || true
  pids=""
}

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$node/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$node/stat"; }
field() { grep "\"$2\"" "$1" | head -1 | sed 's/.*: *//; s/,$//' | awk '{ printf "%g", ($1 > 100 ? int($1 + 0.5) : int($1 * 10 + 0.5) / 10) }'; }

step() { # protocol players url
  [ "$2" -gt 0 ] || return 0
  start_node "$2"
  echo "node open-file limit: $(awk '/^Max open files/ {print $4 " soft, " $5 " hard"}' /proc/$node/limits); merge-write $MERGE_WRITE; $(nproc) cores; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  before=$(rss); peak=$before; c0=$(cpu); t0=$(date +%s.%N)
  "$tmp/peerload" --url "$3" -n "$2" --duration "$DURATION" --ramp "$RAMP" --buffer 8192 --json >"$tmp/$1.json" &
  load=$!
  n=0
  while kill -0 "$load" 2>/dev/null && [ $n -lt 600 ]; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
    n=$((n + 1)); sleep 0.5
  done
  wait "$load" || true
  c1=$(cpu); t1=$(date +%s.%N)
  hz=$(getconf CLK_TCK)
  echo "$1 $2 players: $(field "$tmp/$1.json" players_full_rate) at full rate, $(field "$tmp/$1.json" players_connected) connected, $(field "$tmp/$1.json" disconnects) disconnects, $(field "$tmp/$1.json" delivered_mbps) Mbit/s, longest gap p99 $(field "$tmp/$1.json" max_gap_p99_ms) ms, TTFF p50 $(field "$tmp/$1.json" ttff_p50_ms) ms;" \
    "$(awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v p="$peak" -v b="$before" -v n="$2" \
      'BEGIN { printf "node CPU %.0f%% of one core, RSS per player %.1f KiB (peak %d KiB, before %d KiB)", (c1 - c0) / hz / (t1 - t0) * 100, (p - b) / n, p, b }')"
  stop_node
}
step http-flv "$FLV" http://127.0.0.1:28080/live/scale.flv
step rtmp "$RTMP" rtmp://127.0.0.1:29350/live/scale
