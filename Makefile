# nodemesh — the targets a newcomer and CI use. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
PKGS := ./...
# Timed requests per path of BenchmarkPolicyHop, for each of its two proxies (1k req/s per path: 40 s each).
HOP_N ?= 40000

.PHONY: help deps build run test spire hubble integration conformance conformance-mesh h2spec testdata generate check-generate bench fuzz lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages the tests, generate and bench use (as root; CI runs it)
	./.ci/deps.sh install

build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	@# Static, as the images build them (cmd/*/Dockerfile): the benchmarks
	@# measure the binaries users run, and a cgo build maps libc besides.
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/... ./examples/echo

run: build ## standalone quickstart: agent + proxy + demo backends + examples/quickstart
	./examples/quickstart/run.sh

.PHONY: run-mesh
run-mesh: ## mesh demo (root): Cilium's Star Wars policies on the eBPF datapath + node proxy; ARGS=--check verifies
	@if [ "$$(id -u)" -ne 0 ]; then echo "make run-mesh needs root: it creates network namespaces and loads eBPF programs" >&2; exit 1; fi
	@$(MAKE) --no-print-directory build
	$(GO) build -o $(BIN)/ ./examples/starwars
	./examples/starwars/run.sh $(ARGS)

test: ## unit, golden, end-to-end and privileged tests (run as root for datapath tests)
	@# As root the missing tools are installed first; otherwise the run stops
	@# naming them, so no test is ever skipped for want of a tool.
	@if [ "$$(id -u)" -eq 0 ]; then ./.ci/deps.sh install; else ./.ci/deps.sh check || { echo "install them first: sudo make deps" >&2; exit 1; }; fi
	@unformatted="$$(gofmt -l $$($(GO) list -f '{{.Dir}}' $(PKGS)) | sort -u)"; if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet $(PKGS)
	@# The e2e tests run the real hubble CLI: build it first (cached), so a
	@# cold build is not counted against a test binary's timeout.
	@$(MAKE) --no-print-directory hubble
	$(GO) test -count=1 -timeout 30m $(PKGS)
	@# The proxy's end-to-end suite once more with every proxy it starts on
	@# two event loops, as nodemesh-proxy serves by default on two CPUs; the
	@# run above covers a goroutine per connection (--event-loops 0, and
	@# what loops hand over to goroutines).
	NODEMESH_TEST_EVENT_LOOPS=2 $(GO) test -count=1 -timeout 30m ./proxylib/

spire: ## build spire-server and spire-agent (SPIRE, pinned in internal/spiretest/module) for the auth/spire tests; once, cached in conformance/.cache
	$(GO) run ./internal/spiretest/spirebuild

hubble: ## build the real hubble CLI once from internal/tools/hubble (cached in conformance/.cache)
	$(GO) test -count=1 -timeout 60m -run TestCLIVersion ./internal/hubble/

integration: spire hubble ## CRD, Kubernetes provider and controller tests, the lab's and the chart's, against a real kube-apiserver; the SPIRE source against real SPIRE; the real hubble CLI (builds them once, cached)
	NODEMESH_INTEGRATION=1 $(GO) test -count=1 -timeout 30m ./api/... ./mesh/provider/kube/... ./gateway/nodereport/... ./gateway/controller/... ./cmd/nodemesh-controller/... ./internal/lab/... ./internal/chart/... ./conformance/kubemode/... ./conformance/harness/... ./auth/spire/...

conformance: build ## official Gateway API conformance suite (GATEWAY-HTTP, -GRPC, -TLS, -TCP, -UDP; standard and experimental CRDs; MESH-HTTP and MESH-GRPC with the experimental ones) on a real kube-apiserver; reports in conformance/reports/
	$(GO) build -o $(BIN)/ ./conformance/harness
	$(BIN)/harness
	$(BIN)/harness -channel experimental

conformance-mesh: build ## the suite's MESH-HTTP and MESH-GRPC profiles (experimental CRDs, XMesh) into the mesh report (make conformance runs them too)
	$(GO) build -o $(BIN)/ ./conformance/harness
	$(BIN)/harness -channel experimental -profiles MESH-HTTP,MESH-GRPC

H2SPEC_VERSION := v2.2.1+incompatible

h2spec: build ## h2spec HTTP/2 conformance of the proxy's h2c and TLS listeners (installs h2spec with go install)
	@command -v h2spec >/dev/null || [ -x "$$($(GO) env GOPATH)/bin/h2spec" ] || GOFLAGS= $(GO) install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION)
	$(GO) run ./conformance/h2spec -bin $(BIN)

# Packages whose tests link internal/golden, the owner of the one -update flag.
GOLDEN_PKGS = $(shell $(GO) list -test -f '{{if eq .Name "main"}}{{.ImportPath}} {{join .Deps " "}}{{end}}' $(PKGS) | awk '/ github.com\/nodemesh\/nodemesh\/internal\/golden( |$$)/ {sub(/\.test$$/, "", $$1); print $$1}')

testdata: ## rewrite every golden file (and the proxy's generated allowlist) from the current code
	$(GO) test -count=1 $(GOLDEN_PKGS) -run 'Golden|TestDocMatchesAllowlist' -update

# Folders holding generated code.
GENERATED = api bpf datapath proxylib charts/nodemesh/crds mesh/flow/observer/api

generate: ## rebuild generated code: BPF objects (bpf2go; needs clang), protobuf Go (needs protoc), Hubble API, deep copies and CRDs (controller-gen)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	@# controller-gen is pinned by its own module (it needs newer k8s.io
	@# modules than the main module links).
	$(GO) build -C internal/tools/controller-gen -o $(BIN)/controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
	@# Hubble's API is generated from the .proto files of the Cilium release
	@# internal/tools/hubble pins, with the gRPC plugin pinned there too.
	$(GO) build -C internal/tools/hubble -o $(BIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH=$(BIN):$$PATH $(GO) generate ./api/... ./bpf/... ./datapath/... ./proxylib/... ./mesh/flow/observer/api/...
	@# The chart ships the generated CRDs (internal/chart checks they match).
	rm -f charts/nodemesh/crds/*.yaml && cp api/crds/*.yaml charts/nodemesh/crds/

check-generate: generate ## fail if generated files differ from the committed ones, or one is not committed
	git diff --exit-code -- $(GENERATED)
	@untracked=$$(git ls-files --others --exclude-standard -- $(GENERATED)); \
	if [ -n "$$untracked" ]; then echo "untracked files in generated folders (commit or remove them):"; echo "$$untracked"; exit 1; fi

bench: build ## benchmarks that print numbers (see BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem ./conformance/perf/ ./gateway/ ./mesh/policy/ ./xds/... ./proxylib/... ./auth/handshake/
	$(GO) run ./conformance/perf/proxybench -bin $(BIN) -rounds 5
	$(GO) test -run '^$$' -bench Redirect -benchtime 2s ./datapath/  # root: eBPF redirect vs iptables TPROXY
	$(GO) test -run '^$$' -bench PolicyHop -benchtime $(HOP_N)x ./conformance/e2e/  # root: latency the redirect + L7 policy hop adds at 1k req/s per path (direct and hop interleaved, HOP_N ms)
	@# Policy apply through the API server -> enforced on both nodes of a
	@# 2-node lab, p50/p99 over 100 updates (builds Kubernetes once, cached).
	@if [ "$$(id -u)" -ne 0 ]; then echo "skipping BenchmarkPolicyApplyToEnforced: the lab needs root (network namespaces, eBPF)"; \
	else echo "NODEMESH_INTEGRATION=1 $(GO) test -run '^$$' -bench PolicyApplyToEnforced -benchtime 100x -timeout 30m ./internal/lab/"; \
	NODEMESH_INTEGRATION=1 $(GO) test -run '^$$' -bench PolicyApplyToEnforced -benchtime 100x -timeout 30m ./internal/lab/; fi

fuzz: ## run every fuzz target briefly (FUZZTIME=30s to change)
	./.ci/fuzz.sh $${FUZZTIME:-10s}

clean:
	rm -rf $(BIN) .state
