#!/usr/bin/env bash
# SRS and peer side by side on this machine (not a test, not part of make bench: SRS is
# not packaged for Debian and the bench machines cannot download it; build it yourself,
# e.g. SRS 7.0.18: ./configure --rtc=off --srt=off --ffmpeg-fit=off --sys-ssl=on && make).
#   SRS_BIN=/path/to/objs/srs bash scripts/srs-pair.sh          # 2 alternating rounds
#   SRS_BIN=... ROUNDS=3 PLAYERS=1000 bash scripts/srs-pair.sh
# Each step runs one server alone (SRS with its defaults: merged writes of 350 ms, HLS on;
# peer with --procs 1 at merge-write 0, 100 ms and 350 ms), publishes the bench's 2 Mbit/s
# clip with ffmpeg, waits 24 s (both servers' HLS windows fill), starts PLAYERS players
# from peerload (2 s ramp) and prints the server's players per CPU second over a 10 s window
# from 6 s after the start, and its RSS per player (VmRSS then minus VmRSS before the
# players). The order of the steps reverses every other round. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SRS_BIN:?set SRS_BIN to an srs binary}"
ROUNDS=${ROUNDS:-2}
PLAYERS=${PLAYERS:-1000}

bash scripts/install-tools.sh >/dev/null
tmp=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for p in $pids; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

go build -o "$tmp/peer" ./cmd/peer
go build -o "$tmp/peerload" ./cmd/peerload
ffmpeg -hide_banner -loglevel error -nostdin -y -f lavfi -i testsrc2=size=640x360:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 -c:v libx264 -preset veryfast \
  -pix_fmt yuv420p -b:v 1900k -maxrate 2000k -bufsize 2000k -g 50 -keyint_min 50 \
  -sc_threshold 0 -c:a aac -b:a 96k -ac 2 -f flv "$tmp/clip.flv"

mkdir -p "$tmp/srs-html"
cat >"$tmp/srs.conf" <<EOF
listen              29351;
max_connections     $((PLAYERS + 1000));
srs_log_tank        file;
srs_log_file        $tmp/srs.log;
srs_log_level       warn;
daemon              off;
pid                 $tmp/srs.pid;
http_server { enabled on; listen 28082; dir $tmp/srs-html; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path $tmp/srs-html; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
    play { gop_cache_max_frames 2500; }
}
EOF

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# step NAME PROTO: the server is started by start_NAME, which sets $server, $rtmp, $flv.
start_srs() {
  "$SRS_BIN" -c "$tmp/srs.conf" >"$tmp/srs.out" 2>&1 &
  server=$!; rtmp=rtmp://127.0.0.1:29351/live/s; flv=http://127.0.0.1:28082/live/s.flv
}
start_peer() { # merge-write
  rm -rf "$tmp/data"
  "$tmp/peer" run --name pair --rtmp 127.0.0.1:29352 --http 127.0.0.1:28083 \
    --gossip 127.0.0.1:27948 --raft 127.0.0.1:27949 --data "$tmp/data" --procs 1 \
    --max-connections $((PLAYERS + 1000)) --merge-write "$1" --log-level warn >"$tmp/peer.log" 2>&1 &
  server=$!; rtmp=rtmp://127.0.0.1:29352/live/s; flv=http://127.0.0.1:28083/live/s.flv
}
step() { # label proto start-command...
  local label=$1 proto=$2
  shift 2
  "$@"
  pids="$server"
  sleep 1.5
  ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$tmp/clip.flv" -c copy \
    -f flv "${rtmp}" >"$tmp/ffmpeg.log" 2>&1 &
  local pub=$!
  pids="$server $pub"
  sleep 24
  local before url
  before=$(rss "$server")
  url=$rtmp
  [ "$proto" = http-flv ] && url=$flv
  "$tmp/peerload" --url "$url" -n "$PLAYERS" --duration 20s --ramp 2s --buffer 8192 >"$tmp/load.txt" 2>&1 &
  local load=$!
  sleep 6
  local c0 c1 r
  c0=$(cpu "$server"); r=$(rss "$server"); sleep 10; c1=$(cpu "$server")
  wait "$load" || true
  awk -v l="$label" -v p="$proto" -v n="$PLAYERS" -v c=$((c1 - c0)) -v t="$ticks" -v r="$r" -v b="$before" \
    -v full="$(grep -m1 '^full rate' "$tmp/load.txt" | awk '{print $3 " of " $5}')" \
    'BEGIN { cs = c / t / 10; printf "%-22s %-8s %d players: %5.1f%% of a core, %6.0f players per CPU second, RSS per player %.1f KiB, full rate %s\n", l, p, n, 100 * cs, (cs > 0 ? n / cs : 0), (r - b) / n, full }'
  kill "$pub" "$server" 2>/dev/null || true
  wait "$pub" "$server" 2>/dev/null || true
  pids=""
  sleep 2
}

echo "srs-pair: $(nproc) cores, $("$SRS_BIN" -v 2>&1 | head -1) vs peer $(git rev-parse --short HEAD), $PLAYERS players, $(date -u '+%Y-%m-%d %H:%M UTC')"
steps=("srs|srs-350ms(default)|start_srs" "peer|peer-0|start_peer 0s" "peer|peer-100ms|start_peer 100ms" "peer|peer-350ms|start_peer 350ms")
for r in $(seq 1 "$ROUNDS"); do
  order=("${steps[@]}")
  if [ $((r % 2)) = 0 ]; then
    order=()
    for ((i = ${#steps[@]} - 1; i >= 0; i--)); do order+=("${steps[$i]}"); done
  fi
  echo "round $r"
  for s in "${order[@]}"; do
    IFS='|' read -r _ label cmd <<<"$s"
    for proto in rtmp http-flv; do
      # shellcheck disable=SC2086
      step "$label" "$proto" $cmd
    done
  done
done
