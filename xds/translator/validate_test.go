package translator

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// TestEachResourceValidatedOnce counts the validations a Translator runs
// over a cold translation and 100 random edits: every message is
// validated at most once in all (a reused one never again), and every
// resource, virtual host and route emitted was validated.
func TestEachResourceValidatedOnce(t *testing.T) {
	var mu sync.Mutex
	counts := map[validator]int{}
	validating = func(m validator) {
		mu.Lock()
		counts[m]++
		mu.Unlock()
	}
	t.Cleanup(func() { validating = nil })
	requireOnce := func(step string, res *Resources) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for m, n := range counts {
			if n != 1 {
				t.Fatalf("%s: %T validated %d times", step, m, n)
			}
		}
		var list []validator
		for _, m := range res.Listeners {
			list = append(list, m)
		}
		for _, m := range res.Clusters {
			list = append(list, m)
		}
		for _, m := range res.ClusterLoadAssignments {
			list = append(list, m)
		}
		for _, m := range res.Secrets {
			list = append(list, m)
		}
		for _, m := range res.ExtensionConfigs {
			list = append(list, m)
		}
		// A RouteConfiguration is validated piecewise (route.go): its
		// virtual hosts before their routes are added, each route.
		for _, rc := range res.RouteConfigurations {
			for _, vh := range rc.VirtualHosts {
				list = append(list, vh)
				for _, r := range vh.Routes {
					list = append(list, r)
				}
			}
		}
		for _, m := range list {
			if counts[m] != 1 {
				name := ""
				if r, ok := m.(*routev3.Route); ok {
					name = r.Name
				}
				t.Fatalf("%s: %T %s emitted but validated %d times", step, m, name, counts[m])
			}
		}
	}
	r := rand.New(rand.NewPCG(7, 9))
	cfg := benchConfig(60)
	tr := New()
	res, err := tr.Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	requireOnce("cold", res)
	for step := range 100 {
		cfg = clone(t, cfg)
		what := randomEdit(r, cfg)
		res, err := tr.Translate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		requireOnce(fmt.Sprintf("step %d (%s)", step, what), res)
	}
}
