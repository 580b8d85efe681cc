package translator

import (
	"fmt"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// BenchmarkTranslate measures a full translation of an IR with n routes:
// one HTTP and one HTTPS listener sharing the virtual hosts (ten routes
// each), route matches with headers, two weighted backends and header
// edits per route, n/2 clusters of three endpoints.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 5000} {
		cfg := benchConfig(n)
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Translate(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchConfig(n int) *ir.Config {
	clusters := max(1, n/2)
	cfg := &ir.Config{}
	for c := range clusters {
		cl := &ir.Cluster{Name: fmt.Sprintf("service/ns-%d/svc-%d/8080", c%7, c), Protocol: ir.ProtocolHTTP1, LBPolicy: ir.LBRoundRobin, ConnectTimeout: time.Second}
		for e := range 3 {
			cl.Endpoints = append(cl.Endpoints, ir.Endpoint{Address: fmt.Sprintf("10.%d.%d.%d", c/250%250, c%250, e+1), Port: 8080, Ready: e != 2})
		}
		cfg.Clusters = append(cfg.Clusters, cl)
	}
	var vhosts []*ir.VirtualHost
	for i := range n {
		if i%10 == 0 {
			vhosts = append(vhosts, &ir.VirtualHost{Name: fmt.Sprintf("host-%d.example.com", i/10), Domains: []string{fmt.Sprintf("host-%d.example.com", i/10)}})
		}
		vh := vhosts[len(vhosts)-1]
		r := &ir.Route{
			Name: fmt.Sprintf("httproute/ns-%d/route-%d/rule/0/match/0", i%7, i),
			Match: ir.Match{
				Path:    &ir.PathMatch{Type: ir.PathPrefix, Value: fmt.Sprintf("/api/v%d/items", i%5)},
				Headers: []ir.HeaderMatch{{Name: "x-tenant", Type: ir.MatchExact, Value: fmt.Sprintf("t%d", i%13)}},
			},
			Backends: []*ir.WeightedBackend{
				{Cluster: cfg.Clusters[i%clusters].Name, Weight: 80},
				{Cluster: cfg.Clusters[(i+1)%clusters].Name, Weight: 20},
			},
			RequestHeaders:  &ir.HeaderModifier{Set: []ir.Header{{Name: "x-route", Value: fmt.Sprint(i)}}, Remove: []string{"x-debug"}},
			ResponseHeaders: &ir.HeaderModifier{Add: []ir.Header{{Name: "x-served-by", Value: "nodemesh"}}},
			Timeout:         30 * time.Second,
		}
		if i%4 == 0 {
			r.Rewrite = &ir.Rewrite{Path: &ir.PathRewrite{Type: ir.ReplacePrefixMatch, Value: "/"}}
		}
		vh.Routes = append(vh.Routes, r)
	}
	cfg.Listeners = []*ir.Listener{
		{Name: "gateway/default/eg/80", Address: "0.0.0.0", Port: 80, Chains: []*ir.HTTPChain{{
			Name: "http", Routes: &ir.RouteTable{Name: "gateway/default/eg/80/http", VirtualHosts: vhosts},
		}}},
		{Name: "gateway/default/eg/443", Address: "0.0.0.0", Port: 443, Chains: []*ir.HTTPChain{{
			Name: "https", TLS: &ir.TLS{Certificates: []string{"secret/default/tls"}, ALPN: []string{"h2", "http/1.1"}},
			Routes: &ir.RouteTable{Name: "gateway/default/eg/443/https", VirtualHosts: vhosts},
		}}},
	}
	cfg.Secrets = []*ir.Secret{{Name: "secret/default/tls", Certificate: []byte("cert"), PrivateKey: []byte("key")}}
	return cfg
}

// BenchmarkTranslatorOneRouteChange measures the incremental path: a
// Translator alternating between two Configs that differ in one route.
func BenchmarkTranslatorOneRouteChange(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		cfgs := [2]*ir.Config{benchConfig(n), benchConfig(n)}
		cfgs[1].Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[0].Timeout++
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			tr := New()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := tr.Translate(cfgs[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
