package server

import (
	"context"
	"fmt"
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// benchResources translates an IR with n routes over n/10 virtual hosts and
// n/2 clusters; tag changes one route's header value.
func benchResources(b *testing.B, n int, tag string) *translator.Resources {
	b.Helper()
	cfg := &ir.Config{}
	clusters := max(1, n/2)
	for c := range clusters {
		cfg.Clusters = append(cfg.Clusters, &ir.Cluster{Name: fmt.Sprintf("service/ns/svc-%05d/80", c), Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin,
			Endpoints: []ir.Endpoint{{Address: fmt.Sprintf("10.0.%d.%d", c/250%250, c%250), Port: 8080, Ready: true}}})
	}
	var vhosts []*ir.VirtualHost
	for i := range n {
		if i%10 == 0 {
			vhosts = append(vhosts, &ir.VirtualHost{Name: fmt.Sprintf("h%d", i/10), Domains: []string{fmt.Sprintf("h%d.example.com", i/10)}})
		}
		value := "v"
		if i == n/2 {
			value = tag
		}
		vh := vhosts[len(vhosts)-1]
		vh.Routes = append(vh.Routes, &ir.Route{
			Name:           fmt.Sprintf("httproute/ns/r%d/rule/0/match/0", i),
			Match:          ir.Match{Path: &ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/p%d", i%17)}},
			Backends:       []*ir.WeightedBackend{{Cluster: cfg.Clusters[i%clusters].Name, Weight: 1}},
			RequestHeaders: &ir.HeaderModifier{Set: []ir.Header{{Name: "x-tag", Value: value}}},
		})
	}
	cfg.Listeners = []*ir.Listener{{Name: "gateway/default/eg/80", Address: "0.0.0.0", Port: 80, Chains: []*ir.HTTPChain{{
		Name: "http", Routes: &ir.RouteTable{Name: "gateway/default/eg/80/http", VirtualHosts: vhosts},
	}}}}
	res, err := translator.Translate(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkUpdate measures updates with configurations translated afresh
// each time (translator.Translate, no memo): every object is new, and the
// server takes each resource's version from the translator (content
// hashes) instead of digesting or validating it again. Equal content
// pushes nothing; the one-route change alternates between two
// configurations.
// xds/publish's BenchmarkOneRouteChange measures the agent's path, where
// the memoizing translator hands over the unchanged objects again.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		base := benchResources(b, n, "v")
		same := benchResources(b, n, "v")
		changed := [2]*translator.Resources{benchResources(b, n, "a"), benchResources(b, n, "b")}
		b.Run(fmt.Sprintf("routes=%d/unchanged", n), func(b *testing.B) {
			s := New(WithLogger(testLogger(b)))
			defer s.Stop(0)
			if _, err := s.Update(context.Background(), base); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if r, err := s.Update(context.Background(), same); err != nil || r.Changed {
					b.Fatal(err, r.Changed)
				}
			}
		})
		b.Run(fmt.Sprintf("routes=%d/one-route-changed", n), func(b *testing.B) {
			s := New(WithLogger(testLogger(b)))
			defer s.Stop(0)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if r, err := s.Update(context.Background(), changed[i%2]); err != nil || !r.Changed {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkConvergence measures config change → every proxy acknowledged:
// Update then WaitForAck with one state-of-the-world and one delta proxy
// connected over the Unix socket, alternating between two configurations
// that differ in one route. The proxies are the builtin proxy's xDS client
// decoding every resource as the builtin proxy does (testProxy), so the
// time includes their decoding and validation, not binding listeners.
func BenchmarkConvergence(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			s, path := startServer(b)
			dialConnected(b, s, path, proxyOptions{NodeID: "sotw"})
			dialConnected(b, s, path, proxyOptions{NodeID: "delta", Delta: true})
			configs := [2]*translator.Resources{benchResources(b, n, "a"), benchResources(b, n, "b")}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r, err := s.Update(ctx, configs[i%2])
				if err != nil {
					b.Fatal(err)
				}
				if err := s.WaitForAck(ctx, r.Version); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
