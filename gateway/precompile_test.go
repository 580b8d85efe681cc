package gateway

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPrecompileSameAsInPlace translates every golden input and the
// benchmark's snapshot with routes compiled ahead on several goroutines
// and compiled in place, cold and through a Translator whose world
// changed: the results must be identical (run with -race: compiling ahead
// shares the cluster memo between goroutines).
func TestPrecompileSameAsInPlace(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	saved := precompileMin
	defer func() { precompileMin = saved }()

	check := func(t *testing.T, translate func() []byte) {
		t.Helper()
		precompileMin = 1 << 30
		inPlace := translate()
		precompileMin = 0
		ahead := translate()
		if string(ahead) != string(inPlace) {
			t.Errorf("compiled ahead differs from compiled in place:\n%s", cmp.Diff(string(inPlace), string(ahead)))
		}
	}
	for _, in := range goldenInputs(t) {
		name := filepath.Base(filepath.Dir(in)) + "/" + strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			snap := loadCase(t, in)
			opts := Options{Addresses: testAddresses(t, snap, true), Ingress: testIngressOptions(t, snap, true)}
			check(t, func() []byte { return render(t, Translate(snap, opts)) })
		})
	}
	t.Run("bench", func(t *testing.T) {
		snap, opts := benchSnapshot(300)
		check(t, func() []byte { return render(t, Translate(snap, opts)) })
		// A Translator whose second snapshot changed a Service compiles
		// every route again.
		check(t, func() []byte {
			tr := NewTranslator()
			tr.Translate(snap, opts)
			changed := *snap
			changed.Services = append(changed.Services[:0:0], snap.Services...)
			svc := snap.Services[0].DeepCopy()
			svc.Spec.Ports[0].Name = "renamed"
			changed.Services[0] = svc
			return render(t, tr.Translate(&changed, opts))
		})
	})
}

// TestPrecompileCompilesEveryRoute checks that a cold translation of
// enough routes takes the path compiling ahead, with every route that
// names our Gateway compiled once at its index.
func TestPrecompileCompilesEveryRoute(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	snap, opts := benchSnapshot(300)
	tr := newTranslator(snap, opts, nil, false)
	tr.processClasses()
	tr.processGateways()
	compiled := tr.precompile()
	if compiled == nil {
		t.Fatal("nothing compiled ahead")
	}
	http := compiled[httpRouteKind.rank]
	if len(http) != len(snap.HTTPRoutes) {
		t.Fatalf("%d HTTPRoute slots, want %d", len(http), len(snap.HTTPRoutes))
	}
	for i, rs := range http {
		if rs == nil || rs.key.Name != snap.HTTPRoutes[i].Name || rs.key.Namespace != snap.HTTPRoutes[i].Namespace {
			t.Fatalf("slot %d holds %+v, want HTTPRoute %s/%s", i, rs, snap.HTTPRoutes[i].Namespace, snap.HTTPRoutes[i].Name)
		}
	}
}
