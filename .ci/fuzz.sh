#!/usr/bin/env bash
# Runs each Fuzz target of the module for a short time; fails on the first crash.
set -euo pipefail
fuzztime=${1:-10s}
cd "$(dirname "$0")/.."
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
  grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u | while read -r target; do
    echo "fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run "^$" -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s
  done
done
