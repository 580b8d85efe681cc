package nodemesh

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/nodemesh/nodemesh/"

// rule forbids packages under from (and not under except) to depend,
// directly or transitively, on any package under one of the forbidden
// prefixes.
type rule struct {
	from      string
	except    []string
	forbidden []string
	stdOnly   bool
}

var rules = []rule{
	{from: module + "mesh/ir", stdOnly: true},
	{from: module + "mesh/", except: []string{module + "mesh/envoyconfig"}, forbidden: []string{"github.com/envoyproxy/"}},
	{from: module + "gateway/", forbidden: []string{"github.com/envoyproxy/", module + "datapath"}},
	{from: module + "xds/", forbidden: []string{"k8s.io/", "sigs.k8s.io/"}},
	{from: module + "proxylib/", forbidden: []string{"k8s.io/", "sigs.k8s.io/", module + "gateway", module + "datapath"}},
	{from: module + "datapath/", forbidden: []string{"github.com/envoyproxy/", "k8s.io/", "sigs.k8s.io/"}},
	// auth takes identities as plain numbers and reaches the auth map
	// through its own Map interface: no eBPF loader, no Kubernetes, no
	// Envoy, no policy compiler.
	{from: module + "auth/", forbidden: []string{module + "gateway", module + "mesh/policy", module + "datapath",
		"github.com/cilium/ebpf", "k8s.io/", "sigs.k8s.io/", "github.com/envoyproxy/"}},
	// The lab runs nodemesh as processes and is imported by the tests of
	// the stages it runs: linking them would invert that.
	{from: module + "internal/lab", forbidden: []string{module + "mesh/", module + "gateway", module + "xds/", module + "auth/"}},
}

// TestImportBoundaries keeps the layering of ARCHITECTURE.md true: the IR
// is plain Go, translators stay on their side of the Kubernetes/Envoy line,
// and the proxy never links Kubernetes client code.
func TestImportBoundaries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Standard}} {{join .Deps \" \"}}", "./...").Output()
	if err != nil {
		t.Fatalf("listing packages: %v", err)
	}
	std := stdPackages(t)
	checked := make([]int, len(rules))
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, deps := fields[0], fields[2:]
		for i, r := range rules {
			if !under(pkg, r.from) || anyUnder(pkg, r.except) {
				continue
			}
			checked[i]++
			for _, d := range deps {
				if r.stdOnly && !std[d] {
					t.Errorf("%s must import only the standard library, depends on %s", pkg, d)
				}
				if anyUnder(d, r.forbidden) {
					t.Errorf("%s must not depend on %s", pkg, d)
				}
			}
		}
	}
	// A rule that matches nothing checks nothing: the module path or
	// the layout changed under it.
	for i, r := range rules {
		if checked[i] == 0 {
			t.Errorf("the rule for %s matched no package; the module path or layout changed", r.from)
		}
	}
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
