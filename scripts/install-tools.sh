#!/usr/bin/env bash
# Installs what the tests drive when missing: the real media clients (ffmpeg, ffprobe)
# iptables, with which the chaos harness cuts a node off (partition faults), and logrotate
# (the log-file rotation test) and chromium, the browser the console's tests drive
# (chaos/browser).
set -euo pipefail
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v iptables >/dev/null || missing+=(iptables)
command -v logrotate >/dev/null || missing+=(logrotate)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "missing ${missing[*]} and no apt-get here: install them yourself" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
