package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"sigs.k8s.io/yaml"

	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// Test inputs choose Gateway addresses with this annotation: an IP address,
// or "none" for a Gateway that gets no address. Without it a Gateway gets
// its first spec.addresses IP, else the next address of 127.0.10.0/24 in
// snapshot order.
const addressAnnotation = "test.nodemesh.io/address"

// testAddresses plays the part of the agent's address allocator. A
// malformed annotation fails the test when strict, else means no address.
func testAddresses(t testing.TB, snap *input.Snapshot, strict bool) map[input.Key]netip.Addr {
	out := map[input.Key]netip.Addr{}
	next := netip.MustParseAddr("127.0.10.1")
	for _, gw := range snap.Gateways {
		k := keyOf(gw)
		if v, ok := gw.Annotations[addressAnnotation]; ok {
			if a, err := netip.ParseAddr(v); err == nil {
				out[k] = a
			} else if v != "none" && strict {
				t.Errorf("Gateway %s: %s: %v", k, addressAnnotation, err)
			}
			continue
		}
		if len(gw.Spec.Addresses) > 0 {
			if a, err := netip.ParseAddr(gw.Spec.Addresses[0].Value); err == nil {
				out[k] = a
				continue
			}
		}
		out[k] = next
		next = next.Next()
	}
	return out
}

// testMesh places mesh listeners as an agent on a node at 192.0.2.1
// would, with the datapath steering replies to the clients' addresses
// (the proxy mark with no identity, the agent's default).
var testMesh = MeshOptions{ListenAddress: netip.MustParseAddr("192.0.2.1"), OriginalSourceMark: 0x0a00}

func loadCase(t testing.TB, path string) *input.Snapshot {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := input.Decode(filepath.Base(path), data)
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatalf("building snapshot: %v", err)
	}
	return snap
}

// goldenInputs lists every golden input, testdata/<group>/<case>.in.yaml.
// A group is gateway (GatewayClasses, Gateways, listeners and attachment:
// behaviour every route kind shares) or one route kind (httproute, ...).
// A file directly in testdata is an error: it would never be run.
func goldenInputs(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatalf("listing golden groups: %v", err)
	}
	var ins []string
	for _, e := range entries {
		if !e.IsDir() {
			t.Errorf("testdata/%s: golden cases belong in a group folder (testdata/<group>/)", e.Name())
			continue
		}
		ins = append(ins, golden.Inputs(t, filepath.Join("testdata", e.Name()), ".in.yaml", ".out.yaml")...)
	}
	return ins
}

// TestGolden translates every testdata/<group>/<case>.in.yaml and compares
// the IR and statuses with <case>.out.yaml. Every Config must validate,
// and the output must not depend on the order of the snapshot's slices.
func TestGolden(t *testing.T) {
	ins := goldenInputs(t)
	if len(ins) < 25 {
		t.Errorf("only %d golden cases; every feature and error path needs one", len(ins))
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		t.Run(filepath.Base(filepath.Dir(in))+"/"+name, func(t *testing.T) {
			snap := loadCase(t, in)
			pristine := loadCase(t, in)
			opts := Options{Addresses: testAddresses(t, snap, true), Ingress: testIngressOptions(t, snap, true), Mesh: testMesh}
			res := Translate(snap, opts)
			checkResult(t, res)
			// Hashes are recorded by object; two loads hold different objects.
			if diff := cmp.Diff(pristine, snap, cmpopts.IgnoreUnexported(input.Snapshot{})); diff != "" {
				t.Errorf("Translate modified its input (-before +after):\n%s", diff)
			}
			got := render(t, res)
			golden.Check(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", got)

			shuffled := shuffle(snap, rand.New(rand.NewSource(int64(len(name)))))
			if again := render(t, Translate(shuffled, opts)); string(again) != string(got) {
				t.Errorf("output depends on snapshot order:\n%s", cmp.Diff(string(got), string(again)))
			}
		})
	}
}

// render turns a Result into deterministic YAML. Route statuses are listed
// per kind (httpRoutes, ...). Certificates and keys appear as digests to
// keep the files readable; lastTransitionTime, which translation never
// sets, is left out.
func render(t testing.TB, res *Result) []byte {
	t.Helper()
	type named struct {
		Key    string `json:"key"`
		Status any    `json:"status"`
	}
	out := map[string]any{"config": res.Config}
	if len(res.GatewayClasses) > 0 {
		out["gatewayClasses"] = res.GatewayClasses
	}
	if len(res.Mesh) > 0 {
		out["mesh"] = res.Mesh
	}
	var gws []named
	for _, g := range res.Gateways {
		gws = append(gws, named{g.Key.String(), g.Status})
	}
	if gws != nil {
		out["gateways"] = gws
	}
	var sets []named
	for _, l := range res.ListenerSets {
		sets = append(sets, named{l.Key.String(), l.Status})
	}
	if sets != nil {
		out["listenerSets"] = sets
	}
	routes := map[string][]named{}
	for _, r := range res.Routes {
		i := slices.IndexFunc(routeKinds, func(k *routeKind) bool { return k.kind == r.Kind })
		if i < 0 {
			t.Fatalf("route %s of unknown kind %q", r.Key, r.Kind)
		}
		list := lowerCamel(routeKinds[i].plural)
		routes[list] = append(routes[list], named{r.Key.String(), r.Status})
	}
	for list, rs := range routes {
		out[list] = rs
	}
	var policies []named
	for _, p := range res.Policies {
		policies = append(policies, named{p.Key.String(), p.Status})
	}
	if policies != nil {
		out["backendTLSPolicies"] = policies
	}
	type ingress struct {
		Key string `json:"key"`
		IngressStatus
	}
	var ings []ingress
	for _, st := range res.Ingresses {
		ings = append(ings, ingress{st.Key.String(), st})
	}
	if ings != nil {
		out["ingresses"] = ings
	}
	js, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		t.Fatal(err)
	}
	scrub(tree)
	y, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// lowerCamel lower-cases a kind's leading capitals as JSON field names do:
// HTTPRoutes becomes httpRoutes, Ingresses ingresses.
func lowerCamel(s string) string {
	n := 0
	for n < len(s) && 'A' <= s[n] && s[n] <= 'Z' {
		n++
	}
	if n > 1 && n < len(s) {
		n-- // the last capital starts the next word
	}
	return strings.ToLower(s[:n]) + s[n:]
}

func scrub(v any) {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "lastTransitionTime")
		for _, k := range []string{"certificate", "privateKey", "trustedCA", "clientCA"} {
			if s, ok := v[k].(string); ok {
				sum := sha256.Sum256([]byte(s))
				v[k] = fmt.Sprintf("sha256:%s", hex.EncodeToString(sum[:6]))
			}
		}
		for _, c := range v {
			scrub(c)
		}
	case []any:
		for _, c := range v {
			scrub(c)
		}
	}
}

// shuffle returns a copy of snap with every slice in random order.
func shuffle(snap *input.Snapshot, r *rand.Rand) *input.Snapshot {
	s := *snap
	s.GatewayClasses = shuffled(s.GatewayClasses, r)
	s.Gateways = shuffled(s.Gateways, r)
	s.HTTPRoutes = shuffled(s.HTTPRoutes, r)
	s.GRPCRoutes = shuffled(s.GRPCRoutes, r)
	s.TLSRoutes = shuffled(s.TLSRoutes, r)
	s.TCPRoutes = shuffled(s.TCPRoutes, r)
	s.UDPRoutes = shuffled(s.UDPRoutes, r)
	s.ListenerSets = shuffled(s.ListenerSets, r)
	s.ReferenceGrants = shuffled(s.ReferenceGrants, r)
	s.Services = shuffled(s.Services, r)
	s.EndpointSlices = shuffled(s.EndpointSlices, r)
	s.Secrets = shuffled(s.Secrets, r)
	s.Namespaces = shuffled(s.Namespaces, r)
	s.Ingresses = shuffled(s.Ingresses, r)
	s.IngressClasses = shuffled(s.IngressClasses, r)
	s.BackendTLSPolicies = shuffled(s.BackendTLSPolicies, r)
	s.ConfigMaps = shuffled(s.ConfigMaps, r)
	return &s
}

func shuffled[T any](in []T, r *rand.Rand) []T {
	out := append([]T(nil), in...)
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
