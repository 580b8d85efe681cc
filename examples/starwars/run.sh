#!/usr/bin/env bash
# The mesh half of nodemesh on one machine: Cilium's Star Wars demo with the
# real binaries. A node network namespace runs the eBPF datapath (programmed
# by nodemesh-agent) and nodemesh-proxy; deathstar (two replicas),
# tiefighter and xwing each live in a namespace of their own behind a veth.
# The demo applies Cilium's L3/L4 and then L7 policy by copying the YAML into
# the agent's watched directory, runs curl from the ships, shows
# `nodemesh status` and `nodemesh flows`, then keeps everything running
# until Ctrl-C and removes it all. With --check it verifies every outcome
# and exits instead (CI runs it that way).
#
# Needs root. Nothing is added to this machine's own network namespace;
# leftovers of a run that was killed are removed by the next run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

if [[ $(id -u) -ne 0 ]]; then
  echo "run-mesh needs root (network namespaces, eBPF): try 'sudo make run-mesh'" >&2
  exit 1
fi
for b in nodemesh-agent nodemesh-proxy nodemesh starwars; do
  [[ -x bin/$b ]] || { echo "missing bin/$b: run 'make run-mesh' (or 'make build' and 'go build -o bin/ ./examples/starwars')" >&2; exit 1; }
done
for t in ip curl; do
  command -v "$t" >/dev/null || { echo "missing $t: install iproute2 and curl" >&2; exit 1; }
done

# Relative paths, so every printed command can be pasted from the
# repository root.
exec bin/starwars --bin bin --state-dir .state/starwars --manifests examples/starwars "$@"
