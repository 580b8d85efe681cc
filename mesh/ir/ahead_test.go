package ir

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// aheadConfig is a Config of two route tables (an HTTP and an HTTPS
// listener) sharing n routes spread over 10 virtual hosts, as a Gateway's
// listeners do; break_ spoils some of them.
func aheadConfig(n int, break_ func(i int, r *Route)) *Config {
	cluster := "service/default/echo/8080"
	vhosts := make([]*VirtualHost, 10)
	for v := range vhosts {
		vhosts[v] = &VirtualHost{Name: fmt.Sprintf("vh%d", v), Domains: []string{fmt.Sprintf("h%d.example.com", v)}}
	}
	for i := range n {
		r := &Route{
			Name:           fmt.Sprintf("r%d", i),
			Match:          Match{Path: &PathMatch{Type: PathPrefix, Value: fmt.Sprintf("/p%d", i)}, Headers: []HeaderMatch{{Name: "x-v", Type: MatchRegex, Value: "v[0-9]+"}}},
			Backends:       []*WeightedBackend{{Cluster: cluster, Weight: 90, RequestHeaders: &HeaderModifier{Set: []Header{{Name: "x-b", Value: "1"}}}}, {Weight: 10}},
			RequestHeaders: &HeaderModifier{Add: []Header{{Name: "x-r", Value: fmt.Sprint(i)}}},
		}
		if break_ != nil {
			break_(i, r)
		}
		vh := vhosts[i%len(vhosts)]
		vh.Routes = append(vh.Routes, r)
	}
	// The HTTPS table holds other virtual host objects with the same
	// routes.
	https := make([]*VirtualHost, len(vhosts))
	for i, vh := range vhosts {
		cp := *vh
		https[i] = &cp
	}
	return &Config{
		Listeners: []*Listener{
			{Name: "l80", Address: "127.0.100.1", Port: 80, Chains: []*HTTPChain{{Name: "http", Routes: &RouteTable{Name: "t80", VirtualHosts: vhosts}}}},
			{Name: "l443", Address: "127.0.100.1", Port: 443, Chains: []*HTTPChain{{Name: "https", TLS: &TLS{Certificates: []string{"cert"}},
				Routes: &RouteTable{Name: "t443", VirtualHosts: https}}}},
		},
		Clusters: []*Cluster{{Name: cluster, Protocol: ProtocolHTTP1, LBPolicy: LBRoundRobin, Endpoints: []Endpoint{{Address: "127.0.0.1", Port: 9000, Ready: true}}}},
		Secrets:  []*Secret{{Name: "cert", Certificate: []byte("c"), PrivateKey: []byte("k")}},
	}
}

// TestValidatorAheadSameAsWalk checks that hashing and checking routes
// ahead on several goroutines changes nothing a Validator reports or
// remembers: for valid Configs and for Configs with broken routes (some
// broken ones sharing content), the errors are those of Config.Validate,
// in the same order, and every route's hash is the one Hashes computes
// alone.
func TestValidatorAheadSameAsWalk(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	saved := aheadMin
	defer func() { aheadMin = saved }()
	breaks := map[string]func(i int, r *Route){
		"valid": nil,
		"broken": func(i int, r *Route) {
			switch i % 97 {
			case 3:
				r.Match.Headers[0].Value = "(" // invalid regex
			case 5:
				r.Backends[0].Cluster = "nope"
			case 7:
				r.Redirect = &Redirect{StatusCode: 301} // two actions
			case 11:
				r.Backends[0].RequestHeaders.Set[0].Name = "bad name"
			case 13:
				r.Match.Path.Value = "nope" // no leading /
			}
		},
		"duplicate name": func(i int, r *Route) {
			if i == 117 {
				r.Name = "r97" // twice in its virtual host, vh7
			}
		},
	}
	for name, br := range breaks {
		t.Run(name, func(t *testing.T) {
			want := aheadConfig(600, br).Validate()
			var remembered []map[Hash][]string
			for _, min := range []int{1 << 30, 0} {
				aheadMin = min
				cfg := aheadConfig(600, br)
				var x Validator
				got := x.Validate(cfg)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("aheadMin=%d: Validator reports\n%v\nwant\n%v", min, got, want)
				}
				remembered = append(remembered, x.valid)
				// The same routes without their cluster: what passed
				// before is checked against the clusters of now.
				noCluster := *cfg
				noCluster.Clusters = nil
				if got, want := x.Validate(&noCluster), noCluster.Validate(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("aheadMin=%d, clusters gone: Validator reports\n%v\nwant\n%v", min, got, want)
				}
				// Twice: the second call reuses what the first remembered.
				x.Hashes = nil
				if again := x.Validate(cfg); fmt.Sprint(again) != fmt.Sprint(want) {
					t.Fatalf("aheadMin=%d, second call: Validator reports\n%v\nwant\n%v", min, again, want)
				}
			}
			// The virtual hosts remembered as valid, with the clusters
			// they use, are the same.
			if !reflect.DeepEqual(remembered[0], remembered[1]) {
				t.Fatalf("remembered virtual hosts differ: walk %v, ahead %v", remembered[0], remembered[1])
			}
			if name == "valid" && len(remembered[1]) != 10 {
				t.Fatalf("%d virtual hosts remembered, want 10 (each twice, same content)", len(remembered[1]))
			}
			// Hashes computed ahead are the ones computed one by one.
			aheadMin = 0
			cfg := aheadConfig(600, br)
			var shared, alone Hashes
			x := Validator{Hashes: &shared}
			shared.Next()
			x.Validate(cfg)
			for _, vh := range cfg.Listeners[0].Chains[0].Routes.VirtualHosts {
				for _, r := range vh.Routes {
					if got, ok := shared.routes.cur[r]; !ok || got != alone.Route(r) {
						t.Fatalf("route %s: hash ahead %v (known %t), alone %v", r.Name, got, ok, alone.Route(r))
					}
				}
			}
			if name == "valid" && len(x.routesOK) != 600 {
				t.Fatalf("%d routes remembered as valid, want 600", len(x.routesOK))
			}
		})
	}
}

// TestValidatorWorksAhead checks that a Validator meeting many new routes
// hashes and checks them before its walk, and a few new ones not.
func TestValidatorWorksAhead(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	saved := aheadMin
	defer func() { aheadMin = saved }()
	aheadMin = 100
	for _, tc := range []struct {
		routes int
		ahead  bool
	}{{600, true}, {50, false}} {
		cfg := aheadConfig(tc.routes, nil)
		var h Hashes
		h.Next()
		v := &validator{hashes: &h, next: map[Hash][]string{}, routesOK: map[Hash]bool{}}
		v.checkRoutesAhead(cfg, map[string]bool{"service/default/echo/8080": true})
		if got := len(v.routesOK) == tc.routes && len(h.routes.cur) == tc.routes; got != tc.ahead {
			t.Errorf("%d routes: worked ahead %t (%d checked, %d hashed), want %t", tc.routes, got, len(v.routesOK), len(h.routes.cur), tc.ahead)
		}
	}
}
