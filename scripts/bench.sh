#!/bin/sh
# peer vs nginx-rtmp benchmark (what `make bench` runs; not a test).
# Installs ffmpeg (scripts/install-tools.sh) and nginx + libnginx-mod-rtmp with apt-get when
# missing, builds peer, peerload and peerbench into a temp dir, then runs peerbench with
# any extra arguments, e.g.:
#   scripts/bench.sh                                   # everything (~30 min with the scale steps), writes docs/benchmarks.md
#   scripts/bench.sh --only fanout,latency             # parts: tcp,fanout,latency,ttff,failover,streams
#   scripts/bench.sh --only streams --servers peer     # 1,000 streams on a 5-node cluster (~80 s; no clip)
#   scripts/bench.sh --servers peer --players 100,500 --duration 10s
# A run with --only (or --servers) prints its table but leaves docs/benchmarks.md alone
# unless --markdown FILE is given.
set -eu
cd "$(dirname "$0")/.."

partial=0
for a in "$@"; do
  case "$a" in
    --only|--only=*|--servers|--servers=*|--markdown|--markdown=*) partial=1 ;;
  esac
done

# ffmpeg encodes the clip the fan-out and TTFF parts publish.
bash scripts/install-tools.sh

# nginx-rtmp (Debian: nginx-light or nginx, plus libnginx-mod-rtmp).
need_nginx=0
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_nginx=1
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need_nginx=1
case " $* " in *" --servers peer "*|*" --servers=peer "*) need_nginx=0 ;; esac
if [ "$need_nginx" = 1 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    had_pid=0
    [ -e /run/nginx.pid ] && had_pid=1
    echo "bench.sh: installing nginx-light + libnginx-mod-rtmp (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq nginx-light libnginx-mod-rtmp >/dev/null ||
      $SUDO apt-get install -y -qq nginx libnginx-mod-rtmp >/dev/null
    # The package may have started the system nginx on port 80; the bench runs its own
    # instances, so stop the one the install started (by the PID in its pid file).
    if [ "$had_pid" = 0 ] && [ -s /run/nginx.pid ]; then
      $SUDO kill -QUIT "$(cat /run/nginx.pid)" 2>/dev/null || true
    fi
  else
    echo "bench.sh: nginx-rtmp missing and no apt-get: pass --servers peer or install nginx + the rtmp module" >&2
    exit 1
  fi
fi

bin=$(mktemp -d "${TMPDIR:-/tmp}/peerbench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
trap 'exit 130' INT TERM
go build -o "$bin/peer" ./cmd/peer
go build -o "$bin/peerload" ./cmd/peerload
go build -o "$bin/peerbench" ./cmd/peerbench
PEERBENCH_COMMAND="sh scripts/bench.sh${*:+ $*}"
export PEERBENCH_COMMAND
if [ "$partial" = 0 ]; then
  mkdir -p docs
  set -- --markdown docs/benchmarks.md "$@"
fi
"$bin/peerbench" --peer "$bin/peer" --peerload "$bin/peerload" "$@"

# A full run also measures players at scale (scripts/scale.sh: 10,000 HTTP-FLV, then
# 5,000 RTMP of a 500 kbit/s stream on one node, at merge-write 0 and 350 ms) and appends
# what it printed to the report. BENCH_SCALE=0 leaves it out.
if [ "$partial" = 0 ] && [ "${BENCH_SCALE:-1}" = 1 ]; then
  {
    echo
    echo "## Players at scale (scripts/scale.sh, run by this bench after the table)"
    echo
    echo "One node (both cores, shared with the load client), a 500 kbit/s H.264+AAC clip from ffmpeg,"
    echo "peerload with 8 KiB buffers, a fresh node per step; RSS per player from the step's peak VmRSS;"
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), tree $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo
    for mw in 0s 350ms; do
      MERGE_WRITE=$mw bash scripts/scale.sh 2>&1 | sed "s/^/- merge-write $mw: /"
    done
  } >> docs/benchmarks.md
fi
