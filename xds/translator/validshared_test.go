package translator

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestSharedActionValidation: a route sharing the action of an earlier
// route is checked for its own part only, and nothing invalid gets
// through that way. Each case spoils one route of a translation just
// before it is validated (the validating hook): a per-route part of the
// second route sharing rule 0's action, something given to it on top of
// the shared action, or the shared action itself. The translation must
// fail naming the route a route-by-route ValidateAll names first: the
// spoiled one, or for the shared action the first route holding it.
// With a few routes validation runs on one goroutine; with hundreds of
// routes sharing the action, on several.
func TestSharedActionValidation(t *testing.T) {
	const first, second = "httproute/ns/r/rule/0/match/0", "httproute/ns/r/rule/0/match/1"
	for _, tc := range []struct {
		name  string
		spoil func(r *routev3.Route) // applied to the second route
		want  string                 // the route named in the error
	}{
		{"empty regex in its match", func(r *routev3.Route) {
			r.Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{}}}
		}, second},
		{"no match", func(r *routev3.Route) { r.Match = nil }, second},
		{"invalid header matcher in its match", func(r *routev3.Route) {
			m := &routev3.RouteMatch{PathSpecifier: r.Match.PathSpecifier}
			m.Headers = []*routev3.HeaderMatcher{{Name: "bad\nname"}}
			r.Match = m
		}, second},
		{"an action of its own", func(r *routev3.Route) {
			r.Action = &routev3.Route_Route{Route: &routev3.RouteAction{}}
		}, second},
		{"a request header of its own", func(r *routev3.Route) {
			r.RequestHeadersToAdd = append(r.RequestHeadersToAdd[:len(r.RequestHeadersToAdd):len(r.RequestHeadersToAdd)],
				&corev3.HeaderValueOption{})
		}, second},
		{"a header removal of its own", func(r *routev3.Route) {
			r.ResponseHeadersToRemove = []string{""}
		}, second},
		{"a decorator", func(r *routev3.Route) { r.Decorator = &routev3.Decorator{} }, second},
		{"invalid weighted cluster in the shared action", func(r *routev3.Route) {
			r.GetRoute().GetWeightedClusters().Clusters[1].ClusterHeader = "x-\n"
		}, first},
		{"invalid request header in the shared edits", func(r *routev3.Route) {
			r.RequestHeadersToAdd[0].Header.Key = ""
		}, first},
	} {
		for _, pad := range []int{0, parallelCheckMin} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, pad), func(t *testing.T) {
				cfg := sharedActionConfig()
				padRule0(cfg, pad)
				var once sync.Once
				validating = func(m validator) {
					if r, ok := m.(*routev3.Route); ok && r.Name == second {
						once.Do(func() { tc.spoil(r) })
					}
				}
				t.Cleanup(func() { validating = nil })
				_, err := Translate(cfg)
				if !errors.Is(err, ErrInvalidOutput) {
					t.Fatalf("error %v, want ErrInvalidOutput", err)
				}
				if want := fmt.Sprintf(`route %q:`, tc.want); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s", err, want)
				}
			})
		}
	}
}

// padRule0 adds n matches to rule 0 of sharedActionConfig: routes
// holding that rule's action objects, so they share its action.
func padRule0(cfg *ir.Config, n int) {
	vh := cfg.Listeners[0].Chains[0].Routes.VirtualHosts[0]
	for i := range n {
		r := *vh.Routes[0]
		r.Name = fmt.Sprintf("httproute/ns/r/rule/0/match/%d", i+2)
		r.Match = ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/pad/%d", i)}}
		vh.Routes = append(vh.Routes, &r)
	}
}

// TestValidSharedCoversRoute: validShared accepts a route sharing an
// action only while every field but its name holds what the route it
// shares with holds (and its match is valid). Each field of Route, as
// go-control-plane defines it, is set in turn to a value of the route's
// own; a field validShared does not compare fails here.
func TestValidSharedCoversRoute(t *testing.T) {
	res, err := Translate(sharedActionConfig())
	if err != nil {
		t.Fatal(err)
	}
	routes := res.RouteConfigurations[0].VirtualHosts[0].Routes
	from, out := routes[0], routes[1]
	if !validShared(out, from) {
		t.Fatal("the two matches of rule 0 are not proven valid together")
	}
	fields := out.ProtoReflect().Descriptor().Fields()
	if fields.Len() < 17 {
		t.Fatalf("Route has %d fields; expected at least 17", fields.Len())
	}
	for i := range fields.Len() {
		fd := fields.Get(i)
		t.Run(string(fd.Name()), func(t *testing.T) {
			res, err := Translate(sharedActionConfig())
			if err != nil {
				t.Fatal(err)
			}
			routes := res.RouteConfigurations[0].VirtualHosts[0].Routes
			from, out := routes[0], routes[1]
			m := out.ProtoReflect()
			// Nothing out shares with from may change: lists and maps are
			// replaced by new ones holding one more entry.
			switch {
			case fd.IsList():
				l, old := m.NewField(fd).List(), m.Get(fd).List()
				for i := range old.Len() {
					l.Append(old.Get(i))
				}
				if fd.Kind() == protoreflect.MessageKind {
					l.Append(l.NewElement())
				} else {
					l.Append(protoreflect.ValueOfString("x-own"))
				}
				m.Set(fd, protoreflect.ValueOfList(l))
			case fd.IsMap():
				mp := m.NewField(fd).Map()
				m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
					mp.Set(k, v)
					return true
				})
				mp.Set(protoreflect.ValueOfString("own").MapKey(), mp.NewValue())
				m.Set(fd, protoreflect.ValueOfMap(mp))
			case fd.Kind() == protoreflect.MessageKind:
				// Setting a oneof member of the type it holds writes into
				// the wrapper out shares with from; clearing first makes
				// Set allocate a wrapper of out's own.
				m.Clear(fd)
				m.Set(fd, m.NewField(fd))
			case fd.Kind() == protoreflect.StringKind:
				m.Set(fd, protoreflect.ValueOfString("own"))
			default:
				t.Fatalf("field %s of kind %s: teach this test (and validShared) about it", fd.Name(), fd.Kind())
			}
			got := validShared(out, from)
			if fd.Name() == "name" {
				if !got {
					t.Error("a route's own name (which Route's rules do not read) made it unproven")
				}
				return
			}
			if got {
				t.Errorf("a route with its own %s passes as sharing the checked route's fields", fd.Name())
			}
		})
	}
}

// TestSharedActionValidatedOnce: checking routes that share one action
// allocates no more than checking the first of them alone, i.e. the
// action (whose generated validation allocates for every route and every
// weighted cluster) is validated once, not once per route. It observes
// the generated code, which validRoute would otherwise stand in for.
func TestSharedActionValidatedOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("counts allocations")
	}
	generatedOnly = true
	defer func() { generatedOnly = false }()
	cfg := sharedActionConfig()
	padRule0(cfg, 20)
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rule0 []*routev3.Route
	for _, r := range res.RouteConfigurations[0].VirtualHosts[0].Routes {
		if strings.HasPrefix(r.Name, "httproute/ns/r/rule/0/") {
			rule0 = append(rule0, r)
		}
	}
	if len(rule0) != 22 {
		t.Fatalf("%d routes of rule 0, want 22", len(rule0))
	}
	check := func(routes []*routev3.Route) float64 {
		list := make([]uncheckedRoute, len(routes))
		for i, r := range routes {
			list[i] = uncheckedRoute{out: r, rc: "rc", vhost: "vh"}
			if i > 0 {
				list[i].from = routes[0]
			}
		}
		b := &builder{}
		return testing.AllocsPerRun(20, func() {
			b.unchecked = list
			if err := b.checkRoutes(); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, all := check(rule0[:1]), check(rule0)
	if one < 3 {
		t.Fatalf("validating a forwarding route allocates %.0f times; this test measures nothing", one)
	}
	if all > one {
		t.Errorf("checking %d routes sharing an action: %.0f allocations, checking the first alone %.0f", len(rule0), all, one)
	}
}
