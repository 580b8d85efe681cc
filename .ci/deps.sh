#!/usr/bin/env bash
# The userspace tools the tests, `make generate` and `make bench` run, and the
# Debian packages that provide them. `.ci/deps.sh check` names what is
# missing and exits 1 if anything is; `.ci/deps.sh install` installs the
# missing packages with apt (root).
set -euo pipefail
# command:package
tools=(clang:clang llvm-strip:llvm bpftool:bpftool protoc:protobuf-compiler ip:iproute2
  iptables:iptables nft:nftables nginx:nginx-light haproxy:haproxy wrk:wrk
  h2load:nghttp2-client curl:curl taskset:util-linux gcc:gcc)
# Headers with no command of their own (libc's for cgo: the SPIRE server
# the auth/spire integration tests build links SQLite; protobuf's well-known
# types for the Hubble API generation).
headers=(/usr/include/bpf/bpf_helpers.h:libbpf-dev /usr/include/stdio.h:libc6-dev
  /usr/include/google/protobuf/any.proto:libprotobuf-dev)
missing=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t##*:}")
done
for h in "${headers[@]}"; do
  [[ -e ${h%%:*} ]] || missing+=("${h##*:}")
done
case "${1:-check}" in
check)
  if ((${#missing[@]})); then
    echo "missing Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  ;;
install)
  ((${#missing[@]})) || exit 0
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${missing[*]}; install them as root with: make deps" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
  ;;
*)
  echo "usage: $0 check|install" >&2
  exit 2
  ;;
esac
