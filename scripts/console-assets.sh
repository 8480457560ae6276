#!/usr/bin/env bash
# Copies the console's two players from npm, at pinned versions, into
# ingress/console/assets/vendor/ with their licences. The copied files are committed, so
# building or running peer never needs npm; run this (`make console-assets`) only to
# change a version, then commit the result.
set -euo pipefail
MPEGTS_VERSION=1.8.2
HLS_VERSION=1.7.4
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/ingress/console/assets/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts --save-exact \
  "mpegts.js@$MPEGTS_VERSION" "hls.js@$HLS_VERSION" >/dev/null
mkdir -p "$dest"
# The files are copied byte for byte (their source maps are not shipped). mpegts.js's
# dist file is already minified; hls.js's light build leaves out subtitles, alternate
# audio and DRM, which a live stream from peer never has, at 390 KB instead of 620 KB.
cp node_modules/mpegts.js/dist/mpegts.js "$dest/mpegts.js"
cp node_modules/mpegts.js/dist/mpegts.js.LICENSE.txt "$dest/mpegts.js.LICENSE.txt"
cp node_modules/mpegts.js/LICENSE "$dest/LICENSE.mpegts.js"
cp node_modules/hls.js/dist/hls.light.min.js "$dest/hls.light.min.js"
cp node_modules/hls.js/LICENSE "$dest/LICENSE.hls.js"
echo "vendored mpegts.js $MPEGTS_VERSION and hls.js $HLS_VERSION into $dest"
ls -l "$dest"
