#!/usr/bin/env bash
# Runs each Fuzz target of the module for a short time; fails on the first crash.
#
# Go 1.26's fuzz coordinator can end a duration-limited run with a bare
# "context deadline exceeded" right at the -fuzztime boundary when the
# machine is busy (golang/go#75804, fixed in Go 1.27). Such a run wrote no
# reproducer. It is not counted as a crash: the target is run again with an
# execution-count budget, which has no deadline to race, and that run must
# pass. Any run that writes a reproducer, or fails any other way, fails.
set -euo pipefail
fuzztime=${1:-10s}
retry_execs=${FUZZ_RETRY_EXECS:-20000x}
cd "$(dirname "$0")/.."
targets=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
corpus_count() { { find "$1/testdata/fuzz/$2" -type f 2>/dev/null || true; } | wc -l; }
while read -r pkg dir; do
  # grep finds nothing in most packages; that is not an error.
  for target in $( (grep -hoE '^func Fuzz[A-Za-z0-9_]+\(' "$dir"/*_test.go 2>/dev/null || true) | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    echo "fuzz $pkg $target ($fuzztime)"
    before=$(corpus_count "$dir" "$target")
    if ! go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s 2>&1 | tee "$log"; then
      after=$(corpus_count "$dir" "$target")
      if [[ "$after" == "$before" ]] && grep -qx '    context deadline exceeded' <(tail -n 5 "$log"); then
        echo "fuzz $pkg $target: coordinator deadline race (golang/go#75804), no reproducer written; running again for $retry_execs"
        go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$retry_execs" -fuzzminimizetime 2s
      else
        exit 1
      fi
    fi
    targets=$((targets + 1))
  done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
if ((targets == 0)); then
  echo "no fuzz targets found" >&2
  exit 1
fi
echo "$targets fuzz targets ran for $fuzztime each"
