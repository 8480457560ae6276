#!/bin/sh
# Single-node fan-out benchmark (what `make bench` runs; not a test).
# Builds peer, peerload and peerbench into a temp dir, then runs peerbench with any
# extra arguments, e.g.:  scripts/bench.sh --players 100,500 --duration 10s
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/peerbench-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
trap 'exit 130' INT TERM
go build -o "$bin/peer" ./cmd/peer
go build -o "$bin/peerload" ./cmd/peerload
go build -o "$bin/peerbench" ./cmd/peerbench
"$bin/peerbench" --peer "$bin/peer" --peerload "$bin/peerload" "$@"
