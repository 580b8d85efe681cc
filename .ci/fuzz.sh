#!/usr/bin/env bash
# Runs each Fuzz target of the module for a short time; fails on the first crash.
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
targets=0
while read -r pkg dir; do
  # grep finds nothing in most packages; that is not an error.
  for target in $( (grep -hoE '^func Fuzz[A-Za-z0-9_]+\(' "$dir"/*_test.go 2>/dev/null || true) | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s
    targets=$((targets + 1))
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
if ((targets == 0)); then
  echo "no fuzz targets found" >&2
  exit 1
fi
echo "$targets fuzz targets ran for $fuzztime each"
