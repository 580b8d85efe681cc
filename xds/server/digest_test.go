package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	pgv "github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestSplitFieldsCarryNoRules: validating a split message without its
// split field, and each item on its own, checks exactly what ValidateAll
// on the whole checks only if the field itself has no validation rules
// (no min/max items, no per-item rules).
func TestSplitFieldsCarryNoRules(t *testing.T) {
	if len(splitFields) == 0 {
		t.Fatal("no split fields")
	}
	for name, fd := range splitFields {
		if r := proto.GetExtension(fd.Options(), pgv.E_Rules).(*pgv.FieldRules); r != nil {
			t.Errorf("%s.%s has validation rules %v: items cannot be validated on their own", name, fd.Name(), r)
		}
	}
}

// TestDigestLeafIsHashResource: a resource without a split field is
// versioned exactly as go-control-plane versions it.
func TestDigestLeafIsHashResource(t *testing.T) {
	r := resources(t, spec{clusters: []string{"c/a"}, route: "c/a"})
	for _, m := range []proto.Message{r.Clusters[0], r.ClusterLoadAssignments[0], r.Listeners[0]} {
		n, err := digestResource(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := cachev3.MarshalResource(m)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := n.sum.String(), cachev3.HashResource(b); got != want {
			t.Errorf("%T: digest %s, HashResource %s", m, got, want)
		}
	}
}

// TestComposedDigestMatchesMarshalling applies thousands of random edits to
// a RouteConfiguration the way the translator makes them (new objects
// along the changed path, everything else shared) and checks after each
// one that the digest, computed incrementally from the previous tree,
// equals the digest computed from scratch, and that two versions have
// equal digests exactly when their deterministic marshalling is equal.
func TestComposedDigestMatchesMarshalling(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x6e6f64656d657368))
			runEdits(t, func(n int) int { return r.IntN(n) }, 1500)
		})
	}
}

// FuzzComposedDigest is TestComposedDigestMatchesMarshalling driven by
// fuzzer bytes.
func FuzzComposedDigest(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	f.Add(bytes.Repeat([]byte{0, 7, 3, 250, 12, 1}, 20))
	f.Add([]byte("route configurations change one route at a time"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pos := 0
		next := func(n int) int {
			if pos >= len(data) {
				return 0
			}
			v := int(data[pos]) % n
			pos++
			return v
		}
		runEdits(t, next, len(data)/3+1)
	})
}

type version struct {
	rc      *routev3.RouteConfiguration
	tree    *node
	marshal string // HashResource of the whole
}

// runEdits starts from a small configuration and applies steps random
// edits, checking every version against every earlier one.
func runEdits(t *testing.T, intn func(int) int, steps int) {
	t.Helper()
	g := &gen{intn: intn}
	cur := &routev3.RouteConfiguration{Name: "rc"}
	for i := range 3 {
		cur.VirtualHosts = append(cur.VirtualHosts, g.vhost(i))
	}
	var history []version
	var prevTree *node
	for step := range steps {
		if step > 0 {
			cur = g.edit(cur, history)
		}
		tree, err := digestResource(cur, prevTree)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		scratch, err := digestResource(cur, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tree.sum != scratch.sum {
			t.Fatalf("step %d (%s): incremental digest %s, from scratch %s", step, g.last, tree.sum, scratch.sum)
		}
		b, err := cachev3.MarshalResource(cur)
		if err != nil {
			t.Fatal(err)
		}
		v := version{rc: cur, tree: tree, marshal: cachev3.HashResource(b)}
		for j, h := range history {
			if (h.tree.sum == v.tree.sum) != (h.marshal == v.marshal) {
				t.Fatalf("step %d (%s) vs version %d: digests equal=%t, marshalling equal=%t",
					step, g.last, j, h.tree.sum == v.tree.sum, h.marshal == v.marshal)
			}
		}
		history = append(history, v)
		if len(history) > 40 {
			history = slices.Delete(history, 0, 1)
		}
		prevTree = tree
	}
}

// gen makes valid routes and virtual hosts from small value domains, so
// that edits often recreate content seen before.
type gen struct {
	intn func(int) int
	seq  int
	last string
}

func (g *gen) route() *routev3.Route {
	g.seq++
	r := &routev3.Route{
		Name:  fmt.Sprintf("r%d", g.intn(6)),
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/p%d", g.intn(3))}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("c%d", g.intn(2))},
		}},
	}
	if g.intn(3) == 0 {
		r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", Value: fmt.Sprint(g.intn(2))}}}
	}
	return r
}

func (g *gen) vhost(i int) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: fmt.Sprintf("v%d", i), Domains: []string{fmt.Sprintf("h%d", g.intn(3))}}
	for range g.intn(5) {
		vh.Routes = append(vh.Routes, g.route())
	}
	return vh
}

// edit returns a new version of rc; rc itself is never modified.
func (g *gen) edit(rc *routev3.RouteConfiguration, history []version) *routev3.RouteConfiguration {
	out := &routev3.RouteConfiguration{Name: rc.Name, VirtualHosts: slices.Clone(rc.VirtualHosts),
		ValidateClusters: rc.ValidateClusters, ResponseHeadersToRemove: rc.ResponseHeadersToRemove}
	out.ProtoReflect().SetUnknown(rc.ProtoReflect().GetUnknown())
	if len(out.VirtualHosts) == 0 {
		g.last = "add first virtual host"
		out.VirtualHosts = append(out.VirtualHosts, g.vhost(0))
		return out
	}
	vi := g.intn(len(out.VirtualHosts))
	// vhost replaces virtual host vi by a copy sharing its routes.
	vhost := func() *routev3.VirtualHost {
		old := out.VirtualHosts[vi]
		vh := &routev3.VirtualHost{Name: old.Name, Domains: old.Domains, Routes: slices.Clone(old.Routes)}
		vh.ProtoReflect().SetUnknown(old.ProtoReflect().GetUnknown())
		out.VirtualHosts[vi] = vh
		return vh
	}
	switch op := g.intn(14); op {
	case 0, 1:
		g.last = "replace a route"
		vh := vhost()
		if len(vh.Routes) == 0 {
			vh.Routes = append(vh.Routes, g.route())
		} else {
			vh.Routes[g.intn(len(vh.Routes))] = g.route()
		}
	case 2:
		g.last = "rebuild a route with equal content"
		vh := vhost()
		if len(vh.Routes) > 0 {
			i := g.intn(len(vh.Routes))
			vh.Routes[i] = proto.Clone(vh.Routes[i]).(*routev3.Route)
		}
	case 3:
		g.last = "insert a route"
		vh := vhost()
		vh.Routes = slices.Insert(vh.Routes, g.intn(len(vh.Routes)+1), g.route())
	case 4:
		g.last = "delete a route"
		vh := vhost()
		if len(vh.Routes) > 0 {
			i := g.intn(len(vh.Routes))
			vh.Routes = slices.Delete(vh.Routes, i, i+1)
		}
	case 5:
		g.last = "swap two routes"
		vh := vhost()
		if len(vh.Routes) > 1 {
			i, j := g.intn(len(vh.Routes)), g.intn(len(vh.Routes))
			vh.Routes[i], vh.Routes[j] = vh.Routes[j], vh.Routes[i]
		}
	case 6:
		g.last = "change domains"
		vhost().Domains = []string{fmt.Sprintf("h%d", g.intn(3))}
	case 7:
		g.last = "add, delete or swap virtual hosts"
		switch g.intn(3) {
		case 0:
			out.VirtualHosts = slices.Insert(out.VirtualHosts, g.intn(len(out.VirtualHosts)+1), g.vhost(g.intn(4)))
		case 1:
			out.VirtualHosts = slices.Delete(out.VirtualHosts, vi, vi+1)
		default:
			j := g.intn(len(out.VirtualHosts))
			out.VirtualHosts[vi], out.VirtualHosts[j] = out.VirtualHosts[j], out.VirtualHosts[vi]
		}
	case 8:
		g.last = "move a route to another virtual host"
		from := out.VirtualHosts[vi]
		if len(from.Routes) > 0 {
			r := from.Routes[g.intn(len(from.Routes))]
			vi = g.intn(len(out.VirtualHosts))
			vh := vhost()
			vh.Routes = append(vh.Routes, r)
		}
	case 9:
		g.last = "go back to an earlier version"
		if len(history) > 0 {
			return history[g.intn(len(history))].rc
		}
	case 10:
		g.last = "change a field of the route configuration itself"
		if g.intn(2) == 0 {
			out.ValidateClusters = wrapperspb.Bool(g.intn(2) == 0)
		} else {
			out.ResponseHeadersToRemove = []string{fmt.Sprintf("x-%d", g.intn(2))}
		}
	case 11:
		g.last = "rebuild everything with equal content"
		return proto.Clone(rc).(*routev3.RouteConfiguration)
	case 12:
		g.last = "unknown fields"
		unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9999, protowire.VarintType), uint64(g.intn(2)))
		switch g.intn(3) {
		case 0:
			out.ProtoReflect().SetUnknown(unknown)
		case 1:
			vhost().ProtoReflect().SetUnknown(unknown)
		default:
			vh := vhost()
			if len(vh.Routes) > 0 {
				i := g.intn(len(vh.Routes))
				r := proto.Clone(vh.Routes[i]).(*routev3.Route)
				r.ProtoReflect().SetUnknown(unknown)
				vh.Routes[i] = r
			}
		}
	default:
		g.last = "list one virtual host twice"
		out.VirtualHosts = append(out.VirtualHosts, out.VirtualHosts[vi])
	}
	return out
}

// TestDigestValidatesNewParts: an invalid route among reused ones is found
// and named by its path; reused parts are not validated again, so a valid
// configuration digests without error.
func TestDigestValidatesNewParts(t *testing.T) {
	g := &gen{intn: rand.New(rand.NewPCG(1, 2)).IntN}
	rc := &routev3.RouteConfiguration{Name: "rc"}
	for i := range 3 {
		vh := g.vhost(i)
		vh.Routes = append(vh.Routes, g.route())
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	tree, err := digestResource(rc, nil)
	if err != nil {
		t.Fatal(err)
	}

	bad := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: slices.Clone(rc.VirtualHosts)}
	vh := &routev3.VirtualHost{Name: "v1", Domains: rc.VirtualHosts[1].Domains, Routes: slices.Clone(rc.VirtualHosts[1].Routes)}
	vh.Routes = append(vh.Routes, &routev3.Route{Name: "broken", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}})
	bad.VirtualHosts[1] = vh
	_, err = digestResource(bad, tree)
	if err == nil {
		t.Fatal("a route without an action was accepted")
	}
	want := fmt.Sprintf(`virtual_hosts[1] "v1": routes[%d] "broken": `, len(vh.Routes)-1)
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "Action") {
		t.Errorf("error %q, want it to start with %q and name the field", err, want)
	}

	noDomains := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: slices.Clone(rc.VirtualHosts)}
	noDomains.VirtualHosts[2] = &routev3.VirtualHost{Name: "v2", Routes: rc.VirtualHosts[2].Routes}
	if _, err := digestResource(noDomains, tree); err == nil || !strings.Contains(err.Error(), "Domains") {
		t.Errorf("virtual host without domains: %v", err)
	}
	withNil := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: slices.Clone(rc.VirtualHosts)}
	withNil.VirtualHosts[0] = &routev3.VirtualHost{Name: "v0", Domains: []string{"a"}, Routes: []*routev3.Route{rc.VirtualHosts[0].Routes[0], nil}}
	if _, err := digestResource(withNil, tree); err == nil || !strings.Contains(err.Error(), `virtual_hosts[0] "v0": routes[1]: nil item`) {
		t.Errorf("nil route: %v", err)
	}
	// Envoy's generated validation skips nil items (and marshalling
	// writes them as empty, invalid routes), which is why the digest
	// rejects them itself.
	if err := withNil.ValidateAll(); err != nil {
		t.Errorf("ValidateAll now rejects nil items (%v); the digest's own check may go", err)
	}
	if err := bad.ValidateAll(); err == nil {
		t.Error("ValidateAll accepts what the digest rejects")
	}
}
