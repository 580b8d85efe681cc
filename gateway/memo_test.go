package gateway

import (
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// checkSame fails when the incremental Translator's result differs from a
// fresh Translate of the same input.
func checkSame(t *testing.T, what string, x *Translator, snap *input.Snapshot, opts Options) *Result {
	t.Helper()
	got := x.Translate(snap, opts)
	want := Translate(snap, opts)
	// reflect.DeepEqual is the check; cmp.Diff, much slower, only explains.
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("%s: Translator differs from Translate (-want +got):\n%s", what, cmp.Diff(want, got))
	}
	return got
}

// TestTranslatorGoldenCases runs every golden input through one Translator
// forwards and backwards, each twice (the second time reuses everything):
// every result equals a fresh translation.
func TestTranslatorGoldenCases(t *testing.T) {
	ins := goldenInputs(t)
	order := append(slices.Clone(ins), ins...)
	slices.Reverse(order[len(ins):])
	x := NewTranslator()
	for _, in := range order {
		snap := loadCase(t, in)
		opts := Options{Addresses: testAddresses(t, snap, false), Ingress: testIngressOptions(t, snap, false), Mesh: testMesh}
		checkSame(t, in, x, snap, opts)
		checkSame(t, in+" (again)", x, snap, opts)
	}
}

// TestTranslatorReuses shows the reuse is real: an unchanged input yields
// the very same IR virtual hosts, and a one-route edit rebuilds only the
// virtual host that route serves.
func TestTranslatorReuses(t *testing.T) {
	snap, opts := benchSnapshot(40)
	x := NewTranslator()
	first := checkSame(t, "first", x, snap, opts)
	second := checkSame(t, "unchanged", x, snap, opts)
	vhs := func(r *Result) []string {
		var out []string
		for _, vh := range r.Config.Listeners[0].Chains[0].Routes.VirtualHosts {
			out = append(out, fmt.Sprintf("%s@%p", vh.Name, vh))
		}
		return out
	}
	if diff := cmp.Diff(vhs(first), vhs(second)); diff != "" {
		t.Fatalf("unchanged input rebuilt virtual hosts:\n%s", diff)
	}
	edited := *snap
	edited.HTTPRoutes = slices.Clone(snap.HTTPRoutes)
	r := snap.HTTPRoutes[0].DeepCopy()
	r.Spec.Rules[0].Filters[0].RequestHeaderModifier.Set[0].Value = "edited"
	edited.HTTPRoutes[0] = r
	third := checkSame(t, "one route edited", x, &edited, opts)
	a, b := vhs(second), vhs(third)
	changed := 0
	for i := range a {
		if a[i] != b[i] {
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("a one-route edit rebuilt %d virtual hosts, want 1", changed)
	}
}

// TestTranslatorRandomEdits applies random edits to routes, Services,
// EndpointSlices, ReferenceGrants, the Gateway and its address, and
// compares each result with a fresh translation.
func TestTranslatorRandomEdits(t *testing.T) {
	base, opts := benchSnapshot(60)
	rng := rand.New(rand.NewSource(7))
	x := NewTranslator()
	snap := base
	var removed []*gwv1.HTTPRoute
	steps := 300
	if testing.Short() {
		steps = 60
	}
	for step := 0; step < steps; step++ {
		next := *snap
		var what string
		switch k := rng.Intn(11); {
		case k < 4 && len(next.HTTPRoutes) > 0:
			i := rng.Intn(len(next.HTTPRoutes))
			r := next.HTTPRoutes[i].DeepCopy()
			what = editRoute(rng, r)
			next.HTTPRoutes = slices.Clone(next.HTTPRoutes)
			next.HTTPRoutes[i] = r
		case k == 4 && len(next.HTTPRoutes) > 1:
			i := rng.Intn(len(next.HTTPRoutes))
			removed = append(removed, next.HTTPRoutes[i])
			next.HTTPRoutes = slices.Delete(slices.Clone(next.HTTPRoutes), i, i+1)
			what = "route removed"
		case k == 5 && len(removed) > 0:
			// The very object removed before comes back.
			next.HTTPRoutes = append(slices.Clone(next.HTTPRoutes), removed[len(removed)-1])
			removed = removed[:len(removed)-1]
			what = "route restored"
		case k == 6:
			i := rng.Intn(len(next.Services))
			svc := next.Services[i].DeepCopy()
			if rng.Intn(2) == 0 {
				svc.Spec.Ports[0].Port = 8080 + int32(rng.Intn(2))
			}
			next.Services = slices.Clone(next.Services)
			next.Services[i] = svc
			what = "service replaced"
		case k == 7:
			i := rng.Intn(len(next.EndpointSlices))
			es := next.EndpointSlices[i].DeepCopy()
			es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", rng.Intn(256), 1+rng.Intn(250))
			next.EndpointSlices = slices.Clone(next.EndpointSlices)
			next.EndpointSlices[i] = es
			what = "endpoints changed"
		case k == 8:
			i := rng.Intn(len(next.ReferenceGrants))
			next.ReferenceGrants = slices.Delete(slices.Clone(next.ReferenceGrants), i, i+1)
			if len(next.ReferenceGrants) == 0 {
				next.ReferenceGrants = base.ReferenceGrants
			}
			what = "grant removed"
		case k == 9:
			// Address assignment is an option, not an object.
			opts = Options{Addresses: map[input.Key]netip.Addr{
				keyOf(next.Gateways[0]): netip.AddrFrom4([4]byte{127, 0, 0, byte(10 + rng.Intn(3))}),
			}}
			what = "address changed"
		default:
			gw := next.Gateways[0].DeepCopy()
			l := &gw.Spec.Listeners[0]
			switch rng.Intn(3) {
			case 0:
				l.Hostname = ptr(gwv1.Hostname(fmt.Sprintf("app-%d.example.com", rng.Intn(15))))
			case 1:
				l.Hostname = nil
			case 2:
				l.Port = gwv1.PortNumber(80 + rng.Intn(2))
			}
			next.Gateways = []*gwv1.Gateway{gw}
			what = "gateway replaced"
		}
		snap = &next
		checkSame(t, fmt.Sprintf("step %d (%s)", step, what), x, snap, opts)
		if rng.Intn(10) == 0 {
			checkSame(t, fmt.Sprintf("step %d repeated", step), x, snap, opts)
		}
	}
}

// editRoute changes one thing about a route and says what.
func editRoute(rng *rand.Rand, r *gwv1.HTTPRoute) string {
	rule := &r.Spec.Rules[rng.Intn(len(r.Spec.Rules))]
	switch rng.Intn(7) {
	case 0:
		if rule.Filters[0].RequestHeaderModifier == nil {
			return "nothing"
		}
		rule.Filters[0].RequestHeaderModifier.Set[0].Value = fmt.Sprintf("v%d", rng.Intn(1000))
		return "header value"
	case 1:
		rule.Matches[0].Path.Type = nil
		rule.Matches[0].Path.Value = ptr(fmt.Sprintf("/p%d", rng.Intn(50)))
		return "path"
	case 2:
		r.Spec.Hostnames = []gwv1.Hostname{gwv1.Hostname(fmt.Sprintf("app-%d.example.com", rng.Intn(15)))}
		return "hostname"
	case 3:
		if len(r.Spec.Rules) > 1 {
			r.Spec.Rules = r.Spec.Rules[1:]
		}
		return "rule removed"
	case 4:
		rule.Matches[0].Path.Value = ptr("/[")
		rule.Matches[0].Path.Type = ptr(gwv1.PathMatchRegularExpression)
		return "invalid regex"
	case 5:
		if len(rule.BackendRefs) == 0 {
			return "nothing"
		}
		rule.BackendRefs[0].Name = "missing"
		return "missing backend"
	default:
		rule.Filters = append(rule.Filters, gwv1.HTTPRouteFilter{
			Type:            gwv1.HTTPRouteFilterRequestRedirect,
			RequestRedirect: &gwv1.HTTPRequestRedirectFilter{Scheme: ptr("https")},
		})
		rule.BackendRefs = nil
		return "redirect"
	}
}

// TestTranslatorReusesByContent shows reuse follows content, not object
// identity: decoding the same bytes again (new objects, same content)
// compiles nothing again, and an edit to one route's content compiles
// that route and no other.
func TestTranslatorReusesByContent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "httproute", "precedence.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data := string(raw)
	decode := func(data string) *input.Snapshot {
		t.Helper()
		objs, err := input.Decode("precedence.in.yaml", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := input.Build(objs)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	x := NewTranslator()
	compiled := func(snap *input.Snapshot) map[input.Key]*routeState {
		out := map[input.Key]*routeState{}
		for _, r := range snap.HTTPRoutes {
			k := keyOf(r)
			if out[k] = x.prev.lookup(routeID{&httpRouteKind, k}); out[k] == nil {
				t.Fatalf("route %s was not compiled", k)
			}
		}
		return out
	}
	first := decode(data)
	opts := Options{Addresses: testAddresses(t, first, true)}
	checkSame(t, "first", x, first, opts)
	before := compiled(first)

	again := decode(data)
	if again.HTTPRoutes[0] == first.HTTPRoutes[0] {
		t.Fatal("decoding again returned the same objects")
	}
	checkSame(t, "decoded again", x, again, opts)
	for k, rs := range compiled(again) {
		if rs != before[k] {
			t.Errorf("route %s was compiled again although its content is unchanged", k)
		}
	}

	const edited = "middle-b"
	changed := strings.Replace(data, "value: /api/v1\n", "value: /api/v2\n", 1)
	if changed == data {
		t.Fatal("the edit changed nothing")
	}
	snap := decode(changed)
	checkSame(t, "one route edited", x, snap, opts)
	for k, rs := range compiled(snap) {
		if reused := rs == before[k]; reused != (k.Name != edited) {
			t.Errorf("route %s: reused = %v, want %v", k, reused, k.Name != edited)
		}
	}
	if got := compiled(snap)[input.Key{Namespace: "default", Name: edited}].rules[0].matches[0].match.Path.Value; got != "/api/v2" {
		t.Errorf("edited route compiled to path %q, want /api/v2", got)
	}
}

// TestTranslatorListenerSetEdits: edits to ListenerSets (a listener's
// hostname, precedence by creation time, a set removed and restored, the
// Gateway's allowedListeners) change which listeners routes attach to
// through Gateway and ListenerSet parentRefs; the Translator's result
// must follow each as a fresh translation does.
func TestTranslatorListenerSetEdits(t *testing.T) {
	for _, in := range []string{"testdata/listenerset/attach.in.yaml", "testdata/listenerset/conflicts.in.yaml"} {
		base := loadCase(t, in)
		opts := Options{Addresses: testAddresses(t, base, true)}
		rng := rand.New(rand.NewSource(11))
		x := NewTranslator()
		snap := base
		checkSame(t, in+" start", x, snap, opts)
		for step := 0; step < 60; step++ {
			next := *snap
			i := rng.Intn(len(next.ListenerSets))
			var what string
			switch rng.Intn(5) {
			case 0:
				ls := next.ListenerSets[i].DeepCopy()
				l := &ls.Spec.Listeners[rng.Intn(len(ls.Spec.Listeners))]
				l.Hostname = ptr(gwv1.Hostname(fmt.Sprintf("h%d.example.com", rng.Intn(3))))
				next.ListenerSets = slices.Clone(next.ListenerSets)
				next.ListenerSets[i] = ls
				what = "listener hostname"
			case 1:
				ls := next.ListenerSets[i].DeepCopy()
				ls.CreationTimestamp = metav1.NewTime(time.Date(2026, 1, 1+rng.Intn(5), 0, 0, 0, 0, time.UTC))
				next.ListenerSets = slices.Clone(next.ListenerSets)
				next.ListenerSets[i] = ls
				what = "creation time"
			case 2:
				if len(next.ListenerSets) > 1 {
					next.ListenerSets = slices.Delete(slices.Clone(next.ListenerSets), i, i+1)
					what = "set removed"
				}
			case 3:
				next.ListenerSets = base.ListenerSets
				what = "sets restored"
			default:
				j := rng.Intn(len(next.Gateways))
				gw := next.Gateways[j].DeepCopy()
				froms := []gwv1.FromNamespaces{gwv1.NamespacesFromAll, gwv1.NamespacesFromSame, gwv1.NamespacesFromNone}
				gw.Spec.AllowedListeners = &gwv1.AllowedListeners{Namespaces: &gwv1.ListenerNamespaces{From: ptr(froms[rng.Intn(len(froms))])}}
				next.Gateways = slices.Clone(next.Gateways)
				next.Gateways[j] = gw
				what = "allowedListeners"
			}
			snap = &next
			checkSame(t, fmt.Sprintf("%s step %d (%s)", in, step, what), x, snap, opts)
		}
	}
}
