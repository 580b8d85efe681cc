package config

import (
	"fmt"
	"reflect"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	pgv "github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// routeConfig is a RouteConfiguration of n virtual hosts of three routes
// each; tags[i], when set, changes a header value of virtual host i.
func routeConfig(t *testing.T, n int, tags map[int]string) *anypb.Any {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: "rc", IgnorePortInHostMatching: true}
	for i := range n {
		vh := &routev3.VirtualHost{Name: fmt.Sprintf("vh%d", i), Domains: []string{fmt.Sprintf("h%d.example.com", i)}}
		for j := range 3 {
			vh.Routes = append(vh.Routes, &routev3.Route{
				Name: fmt.Sprintf("r%d", j),
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/p%d", j)},
					Headers: []*routev3.HeaderMatcher{{Name: "x-tag", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "v" + tags[i]}}}}}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: resource.RouteType, Value: b}
}

// TestDecodeRoutesReusesVirtualHosts: a new version of a route
// configuration decodes to what decoding it whole gives, keeping the very
// decoded virtual hosts whose bytes did not change.
func TestDecodeRoutesReusesVirtualHosts(t *testing.T) {
	entries := map[string]*entry{}
	decode := func(a *anypb.Any) *resource.RouteConfig {
		t.Helper()
		name, rc, vhosts, err := decodeRoutes(a, string(a.GetValue()), entries)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := resource.DecodeRouteConfig(a)
		if err != nil {
			t.Fatal(err)
		}
		if name != "rc" || !reflect.DeepEqual(rc, whole) {
			t.Fatalf("decoded %s differently from a whole decode", name)
		}
		entries[name] = &entry{vhosts: vhosts}
		return rc
	}
	first := decode(routeConfig(t, 5, nil))
	second := decode(routeConfig(t, 5, map[int]string{2: "edited"}))
	for i, vh := range second.VirtualHosts {
		if same := vh == first.VirtualHosts[i]; same != (i != 2) {
			t.Errorf("virtual host %d: reused %t", i, same)
		}
	}
	// Fewer virtual hosts, one of them edited again.
	third := decode(routeConfig(t, 4, map[int]string{2: "edited", 3: "x"}))
	if third.VirtualHosts[2] != second.VirtualHosts[2] || third.VirtualHosts[3] == second.VirtualHosts[3] {
		t.Error("reuse does not follow the bytes of each virtual host")
	}
}

// TestDecodeRoutesRejectsAsWhole: a new version that is invalid (a bad
// virtual host, a domain taken by another virtual host) is rejected with
// the error decoding it whole gives.
func TestDecodeRoutesRejectsAsWhole(t *testing.T) {
	good := routeConfig(t, 3, nil)
	_, _, vhosts, err := decodeRoutes(good, string(good.GetValue()), nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*entry{"rc": {vhosts: vhosts}}
	rc := &routev3.RouteConfiguration{}
	if err := good.UnmarshalTo(rc); err != nil {
		t.Fatal(err)
	}
	noAction := proto.Clone(rc).(*routev3.RouteConfiguration)
	noAction.VirtualHosts[1].Routes[0].Action = nil
	clash := proto.Clone(rc).(*routev3.RouteConfiguration)
	clash.VirtualHosts[2].Domains = []string{"H0.example.com"}
	for name, bad := range map[string]*routev3.RouteConfiguration{"no action": noAction, "domain clash": clash} {
		t.Run(name, func(t *testing.T) {
			a, err := anypb.New(bad)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _, got := decodeRoutes(a, string(a.GetValue()), entries)
			_, want := resource.DecodeRouteConfig(a)
			if got == nil || want == nil || got.Error() != want.Error() {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

// TestVirtualHostsCarryNoListRules: a virtual host can be validated on its
// own only because the list of virtual hosts has no validation rules of
// its own (no min or max items, no per-item rules beyond the message's).
func TestVirtualHostsCarryNoListRules(t *testing.T) {
	fd := (&routev3.RouteConfiguration{}).ProtoReflect().Descriptor().Fields().ByNumber(vhostField)
	if fd == nil || fd.Name() != "virtual_hosts" {
		t.Fatalf("field %d is %v", vhostField, fd)
	}
	if r := proto.GetExtension(fd.Options(), pgv.E_Rules).(*pgv.FieldRules); r != nil {
		t.Errorf("virtual_hosts has validation rules %v", r)
	}
}
