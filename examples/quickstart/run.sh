#!/usr/bin/env bash
# Brings up the standalone quickstart on this machine: two echo backends,
# nodemesh-agent reading this directory, and nodemesh-proxy fed by the
# agent over xDS. Prints curl lines that show host routing, path routing and
# a 90/10 weighted split, runs each once, then keeps everything running
# until Ctrl-C. With --check it verifies the responses and exits instead
# (CI runs it that way).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${BIN:-$root/bin}
state=${STATE_DIR:-$root/.state/quickstart}
check=false
[[ ${1:-} == --check ]] && check=true

for b in nodemesh-agent nodemesh-proxy nodemesh echo; do
  [[ -x $bin/$b ]] || { echo "missing $bin/$b: run 'make build' first" >&2; exit 1; }
done

rm -rf "$state" && mkdir -p "$state"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/echo" --listen 127.0.0.1:9001 --name echo-v1 >"$state/echo-v1.log" 2>&1 & pids+=($!)
"$bin/echo" --listen 127.0.0.1:9002 --name echo-v2 >"$state/echo-v2.log" 2>&1 & pids+=($!)
"$bin/nodemesh-agent" --config-dir "$here" --state-dir "$state" >"$state/agent.log" 2>&1 & pids+=($!)
"$bin/nodemesh-proxy" --xds-address "unix://$state/xds.sock" --node-id quickstart >"$state/proxy.log" 2>&1 & pids+=($!)

gw=127.0.100.1:8080
# Wait until the agent reports the Gateway programmed (every proxy ACKed).
for _ in $(seq 100); do
  if "$bin/nodemesh" status --socket "$state/agent.sock" 2>/dev/null | grep -q 'Gateway.*quickstart.*True.*True'; then
    break
  fi
  sleep 0.1
done
"$bin/nodemesh" status --socket "$state/agent.sock"
echo

backend() { curl -s -o /dev/null -w '%header{x-echo-backend}' "$@"; }

failures=0
show() { # show "<description>" "<expected backend or status>" curl-args...
  local what=$1 want=$2; shift 2
  echo "# $what"
  local shown=() a
  for a in "$@"; do [[ $a == *" "* ]] && shown+=("'$a'") || shown+=("$a"); done
  echo "curl ${shown[*]}"
  local got
  got=$(curl -s -o /dev/null -w '%{http_code} %header{x-echo-backend}' "$@")
  echo "  -> $got"
  if [[ $got != "$want" ]]; then
    echo "  expected: $want" >&2
    failures=$((failures + 1))
  fi
}

show "host routing: v1.example.com goes to echo-v1" "200 echo-v1" -H 'Host: v1.example.com' "http://$gw/"
show "host routing: v2.example.com goes to echo-v2" "200 echo-v2" -H 'Host: v2.example.com' "http://$gw/"
show "path routing: /v2 on app.example.com goes to echo-v2" "200 echo-v2" -H 'Host: app.example.com' "http://$gw/v2/hello"
show "path routing: /v1 on app.example.com goes to echo-v1" "200 echo-v1" -H 'Host: app.example.com' "http://$gw/v1/hello"
show "unknown host: no route" "404 " -H 'Host: nothing.example.com' "http://$gw/"

echo "# 90/10 split: everything else on app.example.com (100 requests)"
echo "for i in \$(seq 100); do curl -s -o /dev/null -w '%header{x-echo-backend}\\n' -H 'Host: app.example.com' http://$gw/; done | sort | uniq -c"
split=$(for _ in $(seq 100); do backend -H 'Host: app.example.com' "http://$gw/"; echo; done | sort | uniq -c)
echo "$split" | sed 's/^/  /'
v1=$(echo "$split" | awk '$2 == "echo-v1" {print $1}')
v2=$(echo "$split" | awk '$2 == "echo-v2" {print $1}')
# 100 draws at p=0.9: 78..99 holds with probability > 0.9999.
if [[ -z $v1 || $v1 -lt 78 || $v1 -gt 99 || $((v1 + ${v2:-0})) -ne 100 ]]; then
  echo "  expected about 90 echo-v1 and 10 echo-v2" >&2
  failures=$((failures + 1))
fi

echo "# the route also adds a request header on the split rule"
echo "curl -s -H 'Host: app.example.com' http://$gw/ | grep -A1 x-gateway"
curl -s -H 'Host: app.example.com' "http://$gw/" | grep -A1 x-gateway | sed 's/^/  /' || failures=$((failures + 1))

if $check; then
  if ((failures > 0)); then
    echo "quickstart check: $failures failure(s); logs in $state" >&2
    exit 1
  fi
  echo "quickstart check: all responses as documented"
  exit 0
fi
echo
echo "Everything is running (logs in $state). Edit the YAML in $here and the"
echo "changes apply live; try 'bin/nodemesh status --socket $state/agent.sock'. Ctrl-C stops it."
wait
