#!/usr/bin/env bash
# Installs what the tests drive when missing: the real media clients (ffmpeg, ffprobe;
# GStreamer with its rtmp2 and librtmp elements and x264enc; rtmpdump, a librtmp
# client; VLC's cvlc with the base plugins: RTMP through libavformat, HTTP, the HLS
# demuxer, the MPEG-TS muxer), iptables, with which the chaos harness cuts a node off
# (partition faults), logrotate (the log-file rotation test) and chromium, the browser
# the console's tests drive (chaos/browser). Run as root, it also creates the system
# user peertest that the tests run cvlc as (VLC refuses to run as root).
set -euo pipefail
if [ "$(id -u)" -eq 0 ] && ! id -u peertest >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin peertest
fi
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v iptables >/dev/null || missing+=(iptables)
command -v logrotate >/dev/null || [ -x /usr/sbin/logrotate ] || missing+=(logrotate)
command -v rtmpdump >/dev/null || missing+=(rtmpdump)
if ! command -v gst-launch-1.0 >/dev/null || ! command -v gst-inspect-1.0 >/dev/null ||
  ! gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 || ! gst-inspect-1.0 rtmpsrc >/dev/null 2>&1 ||
  ! gst-inspect-1.0 x264enc >/dev/null 2>&1; then
  missing+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
[ -x /usr/bin/chromium ] || missing+=(chromium)
if ! command -v cvlc >/dev/null ||
  { command -v dpkg-query >/dev/null && ! dpkg-query -W -f '${Status}' vlc-plugin-base 2>/dev/null | grep -q installed; }; then
  missing+=(vlc-bin vlc-plugin-base)
fi
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
