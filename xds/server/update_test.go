package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// memoConfig is a configuration of several virtual hosts whose route i of
// virtual host 0 carries tag.
func memoConfig(tag string) *ir.Config {
	cfg := &ir.Config{Clusters: []*ir.Cluster{{Name: "c/a", Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin,
		Endpoints: []ir.Endpoint{{Address: "127.0.0.1", Port: 8080, Ready: true}}}}}
	var vhosts []*ir.VirtualHost
	for v := range 4 {
		vh := &ir.VirtualHost{Name: fmt.Sprintf("v%d", v), Domains: []string{fmt.Sprintf("h%d.example", v)}}
		for r := range 5 {
			value := "x"
			if v == 0 && r == 2 {
				value = tag
			}
			vh.Routes = append(vh.Routes, &ir.Route{
				Name:           fmt.Sprintf("v%d/r%d", v, r),
				Match:          ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/r%d", r)}},
				Backends:       []*ir.WeightedBackend{{Cluster: "c/a", Weight: 1}},
				RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "x-tag", Value: value}}},
			})
		}
		vhosts = append(vhosts, vh)
	}
	cfg.Listeners = []*ir.Listener{{Name: "l0", Address: "127.0.0.1", Port: 10000, Chains: []*ir.HTTPChain{{
		Name: "chain", Routes: &ir.RouteTable{Name: "l0/routes", VirtualHosts: vhosts},
	}}}}
	return cfg
}

// TestMemoizedRouteChanges: route changes made by the memoizing translator
// (one new route object inside otherwise reused objects) reach proxies of
// both protocols, which end up holding exactly the translated
// configuration, and the version a delta proxy is recorded to hold is the
// translator's.
func TestMemoizedRouteChanges(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		s, path := startServer(t)
		c := dialConnected(t, s, path, proxyOptions{NodeID: "p", Delta: delta})
		tr := translator.New()
		var prev UpdateResult
		for i, tag := range []string{"a", "b", "a", "c", "c"} {
			res, err := tr.Translate(memoConfig(tag))
			if err != nil {
				t.Fatal(err)
			}
			r := update(t, s, res)
			if i > 0 && r.Changed != (tag != "c" || i == 3) {
				t.Fatalf("step %d: changed=%t", i, r.Changed)
			}
			if i > 0 && r.Changed && r.TypeVersions[resource.RouteType] == prev.TypeVersions[resource.RouteType] {
				t.Fatalf("step %d: route version unchanged", i)
			}
			waitAck(t, s, r)
			rc := res.RouteConfigurations[0]
			got := &routev3.RouteConfiguration{}
			if raw := c.Raw(resource.RouteType, rc.Name); raw == nil || raw.UnmarshalTo(got) != nil || !proto.Equal(got, rc) {
				t.Fatalf("step %d: the proxy holds %v, want %v", i, got, rc)
			}
			if delta {
				acked := typeStatus(nodeStatus(t, s, "p"), resource.RouteType)
				if acked.VersionAcked == "" {
					t.Fatalf("step %d: nothing acknowledged", i)
				}
				s.mu.Lock()
				e := s.published[kindRoute].items[rc.Name]
				held := s.streamsAckedLocked(kindRoute)[rc.Name]
				s.mu.Unlock()
				if e.version != res.Version(rc) || held != e.version {
					t.Fatalf("step %d: published version %s, the proxy acknowledged %s, the translator's is %s", i, e.version, held, res.Version(rc))
				}
			}
			prev = r
		}
		requireNoViolations(t, c)
	})
}

// TestUpdateRejectsInvalidNewPart: a RouteConfiguration the translator
// did not emit (an invalid route added to a virtual host whose other
// routes are the translator's objects) is validated, its problem named,
// and changes nothing; the last good configuration stays.
func TestUpdateRejectsInvalidNewPart(t *testing.T) {
	s := New(WithLogger(testLogger(t)))
	defer s.Stop(time.Second)
	tr := translator.New()
	good, err := tr.Translate(memoConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	r1 := update(t, s, good)

	rc := good.RouteConfigurations[0]
	vh := rc.VirtualHosts[1]
	bad := *good
	bad.RouteConfigurations = []*routev3.RouteConfiguration{{Name: rc.Name, VirtualHosts: slices.Clone(rc.VirtualHosts)}}
	bad.RouteConfigurations[0].VirtualHosts[1] = &routev3.VirtualHost{Name: vh.Name, Domains: vh.Domains,
		Routes: append(slices.Clone(vh.Routes), &routev3.Route{Name: "no-action", Match: vh.Routes[0].Match})}
	_, err = s.Update(context.Background(), &bad)
	if err == nil {
		t.Fatal("a route without an action was accepted")
	}
	for _, want := range []string{`"l0/routes"`, "VirtualHosts[1]", "Routes[5]", "Action"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	again := update(t, s, good)
	if again.Changed || again.Version != r1.Version {
		t.Errorf("the failed update changed the state: %+v then %+v", r1, again)
	}
}

// TestUpdateValidatesOnlyUnversioned: the translator validated what it
// versioned, so the server validates none of its resources, cold or after
// an edit; a resource the caller put into the Resources is validated once.
func TestUpdateValidatesOnlyUnversioned(t *testing.T) {
	var seen []string
	validating = func(m types.Resource) { seen = append(seen, cachev3.GetResourceName(m)) }
	t.Cleanup(func() { validating = nil })
	s := New(WithLogger(testLogger(t)))
	defer s.Stop(time.Second)
	tr := translator.New()
	for _, tag := range []string{"a", "b"} {
		res, err := tr.Translate(memoConfig(tag))
		if err != nil {
			t.Fatal(err)
		}
		update(t, s, res)
	}
	if len(seen) != 0 {
		t.Fatalf("the server validated translated resources %v", seen)
	}
	res, err := tr.Translate(memoConfig("c"))
	if err != nil {
		t.Fatal(err)
	}
	extra := *res
	extra.RouteConfigurations = append(slices.Clone(res.RouteConfigurations), &routev3.RouteConfiguration{Name: "zz/extra"})
	// Nothing refers to it, so the update fails its consistency check,
	// after validation.
	if _, err := s.Update(context.Background(), &extra); err == nil {
		t.Fatal("an update with an unreferenced route configuration was accepted")
	}
	if !slices.Equal(seen, []string{"zz/extra"}) {
		t.Fatalf("validated %v, want only zz/extra", seen)
	}
}

// TestUpdateReadsAReusedList: a caller that puts another resource into the
// very slice it handed to the previous Update gets the change applied: the
// server compares the next list with a copy of the previous one, not with
// the caller's slice.
func TestUpdateReadsAReusedList(t *testing.T) {
	s := New(WithLogger(testLogger(t)))
	defer s.Stop(0)
	a, err := translator.Translate(memoConfig("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := translator.Translate(memoConfig("b"))
	if err != nil {
		t.Fatal(err)
	}
	first := update(t, s, a)
	a.RouteConfigurations[0] = b.RouteConfigurations[0]
	second := update(t, s, a)
	if !second.Changed || second.TypeVersions[resource.RouteType] == first.TypeVersions[resource.RouteType] {
		t.Fatalf("a route configuration put into the same slice was not seen: changed=%t", second.Changed)
	}
}
