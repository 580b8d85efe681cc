package nodemesh

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nodemesh/nodemesh/"

// rule forbids packages under from (and not under except) to depend,
// directly or transitively, on any package under one of the forbidden
// prefixes, unless the dependency is also under one of the allowed ones.
// With stdOnly, they may depend on the standard library only.
type rule struct {
	from      string
	except    []string
	forbidden []string
	allowed   []string
	stdOnly   bool
}

// Link-level dependencies no package below the composition root may pull
// in except the datapath itself.
var (
	kernel = []string{"github.com/cilium/ebpf", "github.com/vishvananda/netlink", "github.com/vishvananda/netns"}
	k8s    = []string{"k8s.io/", "sigs.k8s.io/"}
	// root is the composition root (the agent loop); only cmd/,
	// conformance/ and examples/ import it. Its local API (types and
	// client) is a package of its own that clients may link.
	root = module + "internal/agent"
	// prometheus is the metrics client library.
	prometheus = []string{"github.com/prometheus/"}
	rootAPI    = module + "internal/agent/api"
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

var rules = []rule{
	// Plain-data packages at the bottom.
	{from: module + "mesh/ir", stdOnly: true},
	{from: module + "datapath/model", stdOnly: true},

	// mesh/: IR, identities, policy compile, providers. No Envoy protos
	// (except envoyconfig), no kernel code, nothing of the floors above it.
	{from: module + "mesh/", except: []string{module + "mesh/envoyconfig"}, forbidden: []string{"github.com/envoyproxy/"}},
	{from: module + "mesh/", forbidden: concat(kernel, []string{module + "gateway", module + "xds", root, module + "datapath"}),
		allowed: []string{module + "datapath/model"}},

	// Identities stay free of API clients: the cluster-wide allocator
	// lives in mesh/provider/kube/ciliumidentity behind identity.Allocator.
	{from: module + "mesh/identity", forbidden: []string{"k8s.io/client-go"}},

	// The stages.
	{from: module + "gateway/", forbidden: []string{"github.com/envoyproxy/", module + "datapath", module + "xds", root}},
	{from: module + "xds/", forbidden: concat(k8s, kernel, []string{module + "gateway", module + "datapath", root})},

	// The proxy links neither the control plane nor the datapath.
	{from: module + "proxylib/", forbidden: concat(k8s, []string{module + "gateway", module + "datapath", module + "mesh/",
		module + "xds/server", module + "auth", root})},

	// The datapath: no Envoy, no Kubernetes, nothing above it.
	{from: module + "datapath/", forbidden: concat(k8s, []string{"github.com/envoyproxy/", module + "mesh/", module + "gateway",
		module + "xds", root})},

	// auth takes identities as plain numbers (datapath/model) and reaches
	// the auth map through its own Map interface: no eBPF loader, no
	// Kubernetes, no Envoy, no policy compiler.
	{from: module + "auth/", forbidden: concat(k8s, kernel, []string{module + "gateway", module + "mesh/policy", module + "datapath",
		"github.com/envoyproxy/", root}), allowed: []string{module + "datapath/model"}},

	// internal/ holds the composition root, the lab and the binaries'
	// helpers, all above the stages and the floors under them: none of
	// those links anything in it (a helper they need lives in their own
	// folder, e.g. mesh/dirwatch, datapath/cgroup2).
	{from: module + "gateway", forbidden: []string{module + "internal/"}},
	{from: module + "xds/", forbidden: []string{module + "internal/"}},
	{from: module + "auth/", forbidden: []string{module + "internal/"}},
	{from: module + "mesh/", forbidden: []string{module + "internal/"}},
	{from: module + "datapath", forbidden: []string{module + "internal/"}},
	{from: module + "proxylib", forbidden: []string{module + "internal/"}},
	{from: module + "api/", forbidden: []string{module + "internal/"}},

	// The lab runs nodemesh as processes and is imported by the tests of
	// the stages it runs: linking them would invert that.
	{from: module + "internal/lab", forbidden: []string{module + "mesh/", module + "gateway", module + "xds/", module + "auth/", root}},

	// Metrics: the libraries keep plain counters, and only the binaries
	// (cmd/, through internal/metrics) link client_golang.
	{from: module + "proxylib/", forbidden: prometheus},
	{from: module + "xds/", forbidden: prometheus},
	{from: module + "mesh/", forbidden: prometheus},
	{from: module + "datapath/", forbidden: prometheus},
	{from: module + "auth/", forbidden: prometheus},
	{from: module + "gateway/", forbidden: prometheus},
	{from: root, forbidden: prometheus},

	// The CLI reads the agent through its local API and translates
	// offline; it links neither the agent, the xDS server, the lab nor any
	// kernel code (`nodemesh lab` runs the nodemesh-lab program).
	{from: module + "cmd/nodemesh", forbidden: concat(kernel, []string{root, module + "datapath", module + "xds/server", module + "internal/lab"}),
		allowed: []string{rootAPI, module + "datapath/model"}},
}

// TestImportBoundaries keeps the layering of ARCHITECTURE.md true: imports
// only point down, the IR and the datapath's row types are plain Go,
// translators stay on their side of the Kubernetes/Envoy line, and neither
// the proxy, mesh/ nor the CLI links the agent or the eBPF loader.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Standard}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("listing packages: %v", err)
	}
	var pkgs []pkgDeps
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkgs = append(pkgs, pkgDeps{path: fields[0], deps: fields[2:]})
	}
	for _, problem := range checkBoundaries(pkgs, stdPackages(t), rules) {
		t.Error(problem)
	}
}

// TestBoundaryCheckFails makes sure the check above can fail: a forbidden
// dependency, an allowed one, a non-standard dependency of a stdlib-only
// package, and a rule that matches nothing.
func TestBoundaryCheckFails(t *testing.T) {
	pkgs := []pkgDeps{
		{path: module + "mesh/policy", deps: []string{"fmt", module + "datapath/model", module + "datapath", "github.com/cilium/ebpf"}},
		{path: module + "mesh/ir", deps: []string{"fmt", "sigs.k8s.io/yaml"}},
		{path: module + "cmd/nodemesh", deps: []string{module + "internal/agent/api"}},
	}
	std := map[string]bool{"fmt": true}
	rs := []rule{
		{from: module + "mesh/ir", stdOnly: true},
		{from: module + "mesh/", forbidden: concat(kernel, []string{module + "datapath"}), allowed: []string{module + "datapath/model"}},
		{from: module + "cmd/nodemesh", forbidden: []string{root}, allowed: []string{rootAPI}},
		{from: module + "gone/"},
	}
	got := strings.Join(checkBoundaries(pkgs, std, rs), "\n")
	for _, want := range []string{
		"mesh/ir must import only the standard library, depends on sigs.k8s.io/yaml",
		"mesh/policy must not depend on " + module + "datapath\n",
		"mesh/policy must not depend on github.com/cilium/ebpf",
		"the rule for " + module + "gone/ matched no package",
	} {
		if !strings.Contains(got+"\n", want) {
			t.Errorf("missing problem %q in:\n%s", want, got)
		}
	}
	for _, allowed := range []string{"datapath/model", "internal/agent/api"} {
		if strings.Contains(got, allowed) {
			t.Errorf("an allowed dependency (%s) reported:\n%s", allowed, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 4 {
		t.Errorf("%d problems, want 4:\n%s", n, got)
	}

}

type pkgDeps struct {
	path string
	deps []string
}

// checkBoundaries returns one line per violation, and one per rule that
// matched no package: a rule that matches nothing checks nothing, so the
// module path or the layout changed under it.
func checkBoundaries(pkgs []pkgDeps, std map[string]bool, rs []rule) []string {
	var problems []string
	matched := make([]int, len(rs))
	for _, p := range pkgs {
		for i, r := range rs {
			if !under(p.path, r.from) || anyUnder(p.path, r.except) {
				continue
			}
			matched[i]++
			for _, d := range p.deps {
				if r.stdOnly && !std[d] {
					problems = append(problems, fmt.Sprintf("%s must import only the standard library, depends on %s", p.path, d))
				}
				if anyUnder(d, r.forbidden) && !anyUnder(d, r.allowed) {
					problems = append(problems, fmt.Sprintf("%s must not depend on %s", p.path, d))
				}
			}
		}
	}
	for i, r := range rs {
		if matched[i] == 0 {
			problems = append(problems, fmt.Sprintf("the rule for %s matched no package; the module path or layout changed", r.from))
		}
	}
	return problems
}

func stdPackages(t *testing.T) map[string]bool {
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("listing standard packages: %v", err)
	}
	m := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		m[p] = true
	}
	return m
}

func under(pkg, prefix string) bool {
	p := strings.TrimSuffix(prefix, "/")
	return pkg == p || strings.HasPrefix(pkg, p+"/")
}

func anyUnder(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if under(pkg, p) {
			return true
		}
	}
	return false
}
