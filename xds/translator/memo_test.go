package translator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestTranslatorMatchesTranslate feeds one Translator every golden input in
// turn (and then in reverse): each result must be proto-equal, warnings
// included, to a fresh Translate of the same input.
func TestTranslatorMatchesTranslate(t *testing.T) {
	ins, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil || len(ins) == 0 {
		t.Fatalf("no inputs (%v)", err)
	}
	var cfgs []*ir.Config
	for _, in := range ins {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeIR(data)
		if err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, cfg)
	}
	tr := New()
	order := append(slices.Clone(cfgs), cfgs...)
	slices.Reverse(order[len(cfgs):])
	for i, cfg := range order {
		got, err := tr.Translate(cfg)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		want, err := Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		requireEqual(t, want, got)
		// Reused parts were validated when first built; the whole
		// output must still pass Envoy's validation as one.
		requireValid(t, got)
		if !slices.Equal(want.Warnings, got.Warnings) {
			t.Fatalf("step %d: warnings %v, want %v", i, got.Warnings, want.Warnings)
		}
	}
}

// TestTranslatorReuses: unchanged IR objects give the very same Envoy
// objects; a one-route change rebuilds only that route configuration.
func TestTranslatorReuses(t *testing.T) {
	tr := New()
	first, err := tr.Translate(benchConfig(200))
	if err != nil {
		t.Fatal(err)
	}
	// An equal Config built afresh (no shared pointers).
	same, err := tr.Translate(benchConfig(200))
	if err != nil {
		t.Fatal(err)
	}
	a, b := allResources(first), allResources(same)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("resource %d (%T) rebuilt although its IR is unchanged", i, a[i])
		}
	}

	changed := benchConfig(200)
	changed.Listeners[0].Chains[0].Routes.VirtualHosts[3].Routes[2].Timeout++
	// The HTTPS listener shares the virtual hosts, so both tables change.
	next, err := tr.Translate(changed)
	if err != nil {
		t.Fatal(err)
	}
	for i, rc := range next.RouteConfigurations {
		if rc == same.RouteConfigurations[i] {
			t.Errorf("route configuration %s reused although a route changed", rc.Name)
		}
		for j, vh := range rc.VirtualHosts {
			if reused := vh == same.RouteConfigurations[i].VirtualHosts[j]; reused == (j == 3) {
				t.Errorf("virtual host %d of %s: reused=%t", j, rc.Name, reused)
			}
			// Within the changed virtual host only the changed route
			// is new.
			for k, r := range vh.Routes {
				if reused := r == same.RouteConfigurations[i].VirtualHosts[j].Routes[k]; reused == (j == 3 && k == 2) {
					t.Errorf("route %d of virtual host %d of %s: reused=%t", k, j, rc.Name, reused)
				}
			}
		}
	}
	for i, l := range next.Listeners {
		if l != same.Listeners[i] {
			t.Errorf("listener %s rebuilt for a route change", l.Name)
		}
	}
	for i, c := range next.Clusters {
		if c != same.Clusters[i] {
			t.Errorf("cluster %s rebuilt for a route change", c.Name)
		}
	}
	fresh, err := Translate(changed)
	if err != nil {
		t.Fatal(err)
	}
	requireEqual(t, fresh, next)
	if proto.Equal(next.RouteConfigurations[0], same.RouteConfigurations[0]) {
		t.Error("the route change did not reach the output")
	}
}

// TestTranslatorRandomEdits applies random edits to an IR, each time
// building the next Config afresh as the Gateway API translator does (no
// object shared with the previous one), and requires every memoized result
// to equal a fresh translation, warnings included, and to pass Envoy's
// validation whole. Edits touch routes, their order and names, virtual
// hosts, domains, backends (including unresolved ones and a cluster that
// takes the invalid-backend name) and inexpressible values.
func TestTranslatorRandomEdits(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			cfg := benchConfig(60)
			tr := New()
			for step := range 300 {
				if step > 0 {
					cfg = clone(t, cfg)
					what := randomEdit(r, cfg)
					if err := cfg.Validate(); err != nil {
						t.Fatalf("step %d (%s): edit made the IR invalid: %v", step, what, err)
					}
				}
				got, err := tr.Translate(cfg)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				want, err := Translate(cfg)
				if err != nil {
					t.Fatal(err)
				}
				requireEqual(t, want, got)
				requireValid(t, got)
				if !slices.Equal(want.Warnings, got.Warnings) {
					t.Fatalf("step %d: warnings %v, want %v", step, got.Warnings, want.Warnings)
				}
			}
		})
	}
}

// randomEdit changes cfg in place (it is a fresh copy) and says how.
func randomEdit(r *rand.Rand, cfg *ir.Config) string {
	vhosts := cfg.Listeners[r.IntN(len(cfg.Listeners))].Chains[0].Routes.VirtualHosts
	vh := vhosts[r.IntN(len(vhosts))]
	pick := func() *ir.Route {
		if len(vh.Routes) == 0 {
			vh.Routes = append(vh.Routes, &ir.Route{Name: fmt.Sprintf("new-%d", r.IntN(1000)), DirectResponse: &ir.DirectResponse{Status: 204}})
		}
		return vh.Routes[r.IntN(len(vh.Routes))]
	}
	switch r.IntN(12) {
	case 0:
		pick().Timeout += time.Duration(r.IntN(3)) * time.Second
		return "route timeout"
	case 1:
		rt := pick()
		rt.RequestHeaders = &ir.HeaderModifier{Set: []ir.Header{{Name: "x-v", Value: []string{"a", "b", "50%", "\xff"}[r.IntN(4)]}}}
		return "request header value, possibly inexpressible"
	case 2:
		rt := pick()
		if len(rt.Backends) > 0 {
			rt.Backends[0].Weight = uint32(r.IntN(3))
			if r.IntN(3) == 0 {
				rt.Backends[0].Cluster = ""
			}
		}
		return "backend weight or resolution"
	case 3:
		rt := pick()
		rt.Match.Path = &ir.PathMatch{Type: ir.PathPrefix, Value: []string{"/a", "/b", "/c?d"}[r.IntN(3)]}
		return "path, possibly inexpressible"
	case 4:
		rt := pick()
		rt.Name += "-renamed"
		return "route name"
	case 5:
		if len(vh.Routes) > 1 {
			i, j := r.IntN(len(vh.Routes)), r.IntN(len(vh.Routes))
			vh.Routes[i], vh.Routes[j] = vh.Routes[j], vh.Routes[i]
		}
		return "route order"
	case 6:
		if len(vh.Routes) > 0 {
			i := r.IntN(len(vh.Routes))
			vh.Routes = slices.Delete(vh.Routes, i, i+1)
		}
		return "route removed"
	case 7:
		c := cfg.Clusters[r.IntN(len(cfg.Clusters))]
		if c.Name == invalidBackendCluster {
			c = cfg.Clusters[0] // case 9 may remove it again
		}
		vh.Routes = slices.Insert(vh.Routes, r.IntN(len(vh.Routes)+1), &ir.Route{
			Name:     fmt.Sprintf("inserted-%d", r.IntN(1000000)),
			Backends: []*ir.WeightedBackend{{Cluster: c.Name, Weight: 1}},
		})
		return "route inserted"
	case 8:
		vh.Domains = []string{fmt.Sprintf("other-%d.example.com", r.IntN(1000000))}
		return "domains"
	case 9:
		// A cluster taking the invalid-backend name renames the cluster
		// unresolved backends point at, in every route that has one.
		i := slices.IndexFunc(cfg.Clusters, func(c *ir.Cluster) bool { return c.Name == invalidBackendCluster })
		if i >= 0 {
			cfg.Clusters = slices.Delete(cfg.Clusters, i, i+1)
			return "invalid-backend name freed"
		}
		cfg.Clusters = append(cfg.Clusters, &ir.Cluster{Name: invalidBackendCluster, Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin})
		return "invalid-backend name taken"
	case 10:
		// Another virtual host's domain in upper case: valid IR, but
		// Envoy compares domains case-insensitively, so it is dropped
		// from whichever virtual host comes later — until that other
		// one's domains change.
		other := vhosts[r.IntN(len(vhosts))]
		if other == vh || len(other.Domains) == 0 {
			return "nothing"
		}
		d := strings.ToUpper(other.Domains[0])
		for _, x := range vhosts {
			if slices.Contains(x.Domains, d) {
				return "nothing"
			}
		}
		vh.Domains = append(vh.Domains, d)
		return "domain clash"
	default:
		return "nothing"
	}
}

// clone deep-copies an IR value through its JSON form.
func clone[T any](t *testing.T, v *T) *T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnchangedVirtualHostAllocatesNothing: a translation after an edit
// visits every virtual host to find what changed; one whose content and
// domains are unchanged is reused without allocating (its domains are
// written into a scratch list, not a new one each time).
func TestUnchangedVirtualHostAllocatesNothing(t *testing.T) {
	allocs := func(vhosts int) float64 {
		cfg := benchConfig(200)
		// More virtual hosts with the routes of the first ones, under
		// names and domains of their own; every table holds them all.
		rt := cfg.Listeners[0].Chains[0].Routes
		for i := len(rt.VirtualHosts); i < vhosts; i++ {
			vh := *rt.VirtualHosts[i%20]
			vh.Name, vh.Domains = fmt.Sprintf("more-%d.example.com", i), []string{fmt.Sprintf("more-%d.example.com", i)}
			rt.VirtualHosts = append(rt.VirtualHosts, &vh)
		}
		tr := New()
		if _, err := tr.Translate(cfg); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(10, func() {
			if _, err := tr.Translate(cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := allocs(20), allocs(220)
	if perVhost := (large - small) / 200; perVhost >= 1 {
		t.Errorf("re-translating an unchanged config: %.0f allocations at 20 virtual hosts, %.0f at 220 (%.2f per virtual host), want < 1", small, large, perVhost)
	}
}
