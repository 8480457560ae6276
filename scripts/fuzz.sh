#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 3s), on top of its
# checked-in seed corpus (testdata/fuzz/FuzzX). CI runs it from `make test`; run it longer
# by hand after touching a parser: FUZZTIME=60s bash scripts/fuzz.sh ./media/flv
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
count=0
for pkg in $(go list "${pkgs[@]}"); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for t in $targets; do
    echo "fuzz $pkg $t ($fuzztime)"
    # Go's fuzzer can end a time-boxed run with "context deadline exceeded" when the time
    # runs out mid-input (no failing input is written then): that run is tried again.
    for try in 1 2; do
      if go test -run '^$' -fuzz "^${t}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
        break
      fi
      if [ "$try" = 1 ] && grep -q "context deadline exceeded" /tmp/fuzz.$$.log &&
        ! grep -q "Failing input written" /tmp/fuzz.$$.log; then
        echo "fuzz $pkg $t: the fuzzer's deadline race, once more"
        continue
      fi
      cat /tmp/fuzz.$$.log; rm -f /tmp/fuzz.$$.log; echo "fuzz target $t in $pkg failed" >&2; exit 1
    done
    count=$((count + 1))
  done
done
rm -f /tmp/fuzz.$$.log
echo "fuzz: $count targets ran, none failed"
