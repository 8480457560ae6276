#!/usr/bin/env bash
# Installs the real media clients the tests drive (ffmpeg, ffprobe) when missing.
set -euo pipefail
if command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "ffmpeg/ffprobe missing and no apt-get here: install ffmpeg yourself" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq ffmpeg >/dev/null
