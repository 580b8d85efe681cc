package publish

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// gatewayLike builds the IR the Gateway API translator produces for
// httpRoutes HTTPRoutes on one listener (the shape of conformance/perf's
// scenario): about nine Envoy routes per HTTPRoute spread over 50 virtual
// hosts, two weighted backends per route, a request header edit, and
// httpRoutes/2 clusters of three endpoints. tag is written into one
// route's header edit, so two tags give two configurations that differ in
// one route. Every call builds new objects, as the Gateway API translator
// does.
func gatewayLike(httpRoutes int, tag string) *ir.Config {
	cfg := &ir.Config{}
	clusters := max(httpRoutes/2, 10)
	for c := range clusters {
		cl := &ir.Cluster{Name: fmt.Sprintf("service/team-%d/svc-%d/80", c%10, c), Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin}
		for e := range 3 {
			cl.Endpoints = append(cl.Endpoints, ir.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d", c/250, c%250, e+1), Port: 8080, Ready: true})
		}
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	// The Gateway API translator lists clusters by name.
	slices.SortFunc(cfg.Clusters, func(a, b *ir.Cluster) int { return strings.Compare(a.Name, b.Name) })
	vhosts := make([]*ir.VirtualHost, 50)
	for i := range vhosts {
		vhosts[i] = &ir.VirtualHost{Name: fmt.Sprintf("app%d.example.com", i), Domains: []string{fmt.Sprintf("app%d.example.com", i)}}
	}
	for r := range httpRoutes {
		vh := vhosts[r%50]
		value := fmt.Sprintf("r%d", r)
		if r == 0 {
			value = tag
		}
		for k := range 2 + r%3 {
			for m := range 1 + (r+k)%5 {
				vh.Routes = append(vh.Routes, &ir.Route{
					Name: fmt.Sprintf("httproute/team-%d/route-%d/rule/%d/match/%d", r%10, r, k, m),
					Match: ir.Match{
						Path:    &ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/r%d/k%d/m%d", r, k, m)},
						Headers: []ir.HeaderMatch{{Name: "x-tenant", Type: ir.MatchExact, Value: fmt.Sprintf("t%d", m)}},
					},
					Backends: []*ir.WeightedBackend{
						{Cluster: fmt.Sprintf("service/team-%d/svc-%d/80", (r+k)%clusters%10, (r+k)%clusters), Weight: 1},
						{Cluster: fmt.Sprintf("service/team-%d/svc-%d/80", (r+k+1)%clusters%10, (r+k+1)%clusters), Weight: 4},
					},
					RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "x-route", Value: value}}},
				})
			}
		}
	}
	cfg.Listeners = []*ir.Listener{{Name: "gateway/infra/gw/http", Address: "127.0.100.1", Port: 80, Chains: []*ir.HTTPChain{{
		Name: "http", Routes: &ir.RouteTable{Name: "gateway/infra/gw/http", VirtualHosts: vhosts},
	}}}}
	return cfg
}

// BenchmarkOneRouteChange is the xDS half of a one-route edit: the
// memoizing translator and the server's versioning (no proxy connected),
// alternating between two freshly built IRs that differ in one route.
// "translate" and "update" time the halves on their own ("ir-validate" is
// the IR validation "translate" starts with), "publish" both through
// Publisher.Publish. It reports the Envoy routes per
// configuration.
func BenchmarkOneRouteChange(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		cfgs := [2]*ir.Config{gatewayLike(n, "a"), gatewayLike(n, "b")}
		for _, c := range cfgs {
			if err := c.Validate(); err != nil {
				b.Fatal(err)
			}
		}
		routes := 0
		for _, vh := range cfgs[0].Listeners[0].Chains[0].Routes.VirtualHosts {
			routes += len(vh.Routes)
		}
		b.Run(fmt.Sprintf("httproutes=%d/translate", n), func(b *testing.B) {
			tr := translator.New()
			if _, err := tr.Translate(cfgs[1]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := tr.Translate(cfgs[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(routes), "envoy-routes")
		})
		// The share of "translate" that is ir.Config.Validate, which
		// Translate runs first.
		b.Run(fmt.Sprintf("httproutes=%d/ir-validate", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := cfgs[i%2].Validate(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(fmt.Sprintf("httproutes=%d/update", n), func(b *testing.B) {
			// The translator's outputs for the two IRs share every
			// object but the changed route and what contains it.
			tr := translator.New()
			var res [2]*translator.Resources
			for _, i := range []int{0, 1, 0} {
				r, err := tr.Translate(cfgs[i])
				if err != nil {
					b.Fatal(err)
				}
				res[i] = r
			}
			srv := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
			defer srv.Stop(time.Second)
			if _, err := srv.Update(context.Background(), res[1]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if r, err := srv.Update(context.Background(), res[i%2]); err != nil || !r.Changed {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(routes), "envoy-routes")
		})
		b.Run(fmt.Sprintf("httproutes=%d/publish", n), func(b *testing.B) {
			srv := server.New(server.WithLogger(slog.New(slog.DiscardHandler)))
			defer srv.Stop(time.Second)
			p := New(srv)
			if _, err := p.Publish(context.Background(), cfgs[1]); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if pub, err := p.Publish(context.Background(), cfgs[i%2]); err != nil || !pub.Changed {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(routes), "envoy-routes")
		})
	}
}
