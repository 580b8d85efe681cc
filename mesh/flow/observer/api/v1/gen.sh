#!/bin/sh
# Generates the Go code of Hubble's flow, relay and observer APIs from the
# .proto files of the Cilium release that internal/tools/hubble pins (the
# module the hubble CLI is built from), as found in the Go module cache.
# The proto package names (flow, relay, observer) and file names stay
# Cilium's, so the messages and the observer.Observer service are the same
# on the wire; only the Go import paths are nodemesh's.
# Needs protoc with the well-known types (/usr/include), protoc-gen-go and
# protoc-gen-go-grpc on PATH (make generate builds both).
set -eu
root=$(cd ../../../../.. && pwd)
tools="$root/internal/tools/hubble"
go -C "$tools" mod download github.com/cilium/cilium
src=$(go -C "$tools" list -m -f '{{.Dir}}' github.com/cilium/cilium)/api/v1
pkg=github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1
m="Mflow/flow.proto=$pkg/flow,Mrelay/relay.proto=$pkg/relay,Mobserver/observer.proto=$pkg/observer"
rm -f flow/*.pb.go relay/*.pb.go observer/*.pb.go
protoc -I "$src" -I /usr/include \
	--go_out=. --go_opt="module=$pkg,$m" \
	--go-grpc_out=. --go-grpc_opt="module=$pkg,$m" \
	flow/flow.proto relay/relay.proto observer/observer.proto
