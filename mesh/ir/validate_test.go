package ir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA is a self-signed CA certificate in PEM, made once.
var testCA = sync.OnceValue(func() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
})

// valid returns a small Config exercising every kind; each test case breaks
// one thing.
func valid() *Config {
	return &Config{
		Listeners: []*Listener{{
			Name: "gateway/default/eg/80", Address: "127.0.100.1", Port: 80,
			Chains: []*HTTPChain{{
				Name: "http",
				Routes: &RouteTable{Name: "gateway/default/eg/80/http", VirtualHosts: []*VirtualHost{{
					Name: "*", Domains: []string{"*"},
					Routes: []*Route{
						{
							Name:     "r0",
							Match:    Match{Path: &PathMatch{Type: PathPrefix, Value: "/foo"}, Headers: []HeaderMatch{{Name: "x-v", Type: MatchRegex, Value: "v[0-9]+"}}},
							Backends: []*WeightedBackend{{Cluster: "service/default/echo/8080", Weight: 90}, {Weight: 10}},
							Rewrite:  &Rewrite{Path: &PathRewrite{Type: ReplacePrefixMatch, Value: "/"}},
							// Without a route timeout any backend timeout is valid.
							BackendTimeout: 500 * time.Millisecond,
							CORS: &CORSPolicy{AllowOrigins: []OriginMatch{{Type: MatchExact, Value: "https://a.example"}, {Type: MatchRegex, Value: `https://.*\.b\.example`}},
								AllowMethods: []string{"GET", "PUT"}, AllowHeaders: []string{"*"}, ExposeHeaders: []string{"x-a"}, MaxAge: 5 * time.Second, AllowCredentials: true},
							Retry:   &RetryPolicy{Codes: []int{500, 503}, Attempts: 2, Backoff: 100 * time.Millisecond},
							Mirrors: []*Mirror{{Cluster: "service/default/echo/8080"}, {Cluster: "service/default/echo/8080", Numerator: 1, Denominator: 3}},
						},
						{Name: "r1", Redirect: &Redirect{Scheme: "https", StatusCode: 301}},
					},
				}}},
				CORS: true,
			}},
		}, {
			Name: "gateway/default/eg/443", Address: "127.0.100.1", Port: 443,
			Chains: []*HTTPChain{{
				Name: "https", ServerNames: []string{"*.example.com"},
				TLS:    &TLS{Certificates: []string{"secret/default/cert"}, ALPN: []string{"h2", "http/1.1"}, ClientCA: testCA(), AllowUnverifiedClients: true},
				Routes: &RouteTable{Name: "gateway/default/eg/443/https", VirtualHosts: []*VirtualHost{{Name: "v", Domains: []string{"a.example.com"}, Routes: []*Route{{Name: "d", DirectResponse: &DirectResponse{Status: 500}}}}}},
			}},
			TCPChains: []*TCPChain{{Name: "passthrough", ServerNames: []string{"db.example.org"},
				Backends: []*WeightedBackend{{Cluster: "service/default/db/5432/tcp", Weight: 3}, {Weight: 1}}}},
		}, {
			Name: "gateway/default/eg/5432", Address: "127.0.100.1", Port: 5432,
			TCPChains: []*TCPChain{{Name: "tcp", Backends: []*WeightedBackend{{Cluster: "service/default/db/5432/tcp", Weight: 1}}}},
		}, {
			// A UDP listener may share a TCP listener's address and port.
			Name: "gateway/default/eg/5432/udp", Address: "127.0.100.1", Port: 5432,
			UDP: &UDPProxy{Cluster: "udproute/default/dns/53"},
		}, {
			// A TLSRoute on a Terminate listener.
			Name: "gateway/default/eg/8443", Address: "127.0.100.1", Port: 8443,
			TCPChains: []*TCPChain{{Name: "terminate", ServerNames: []string{"db.example.org"}, TLS: &TLS{Certificates: []string{"secret/default/cert"}},
				Backends: []*WeightedBackend{{Cluster: "service/default/db/5432/tcp", Weight: 1}}}},
		}},
		Clusters: []*Cluster{{Name: "service/default/echo/8080", Protocol: ProtocolHTTP1, LBPolicy: LBRoundRobin, Endpoints: []Endpoint{{Address: "127.0.0.1", Port: 9000, Ready: true}},
			UpstreamTLS: &UpstreamTLS{SNI: "echo.example", TrustedCA: testCA(), SubjectAltNames: []SubjectAltName{{Type: SANURI, Value: "spiffe://example/echo"}, {Type: SANDNS, Value: "echo.example"}},
				ClientCertificate: "secret/default/cert"}},
			{Name: "service/default/db/5432/tcp", Protocol: ProtocolTCP, LBPolicy: LBRoundRobin},
			{Name: "udproute/default/dns/53", Protocol: ProtocolUDP, LBPolicy: LBRoundRobin, Endpoints: []Endpoint{{Address: "10.0.0.1", Port: 53, Ready: true, Weight: 3}}}},
		Secrets: []*Secret{{Name: "secret/default/cert", Certificate: []byte("c"), PrivateKey: []byte("k")}},
	}
}

func TestValidate(t *testing.T) {
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	// The HTTPS chains and the passthrough chain beside the plaintext
	// chain on one port.
	mixed := valid()
	mixed.Listeners[0].PlainAndTLS = true
	mixed.Listeners[0].Chains = append(mixed.Listeners[0].Chains, mixed.Listeners[1].Chains...)
	mixed.Listeners[0].TCPChains = mixed.Listeners[1].TCPChains
	mixed.Listeners = append(mixed.Listeners[:1], mixed.Listeners[2:]...)
	if err := mixed.Validate(); err != nil {
		t.Fatalf("plainAndTLS listener rejected: %v", err)
	}
	route := func(c *Config) *Route { return c.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[0] }
	cases := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"duplicate listener", func(c *Config) { c.Listeners[1].Name = c.Listeners[0].Name }, `listener "gateway/default/eg/80": name: duplicate`},
		{"bad address", func(c *Config) { c.Listeners[0].Address = "localhost" }, "address: ParseAddr"},
		{"port zero", func(c *Config) { c.Listeners[0].Port = 0 }, "port: 0 out of range"},
		{"same bind", func(c *Config) { c.Listeners[1].Port = 80 }, "127.0.100.1:80 already bound"},
		{"unknown cluster", func(c *Config) { route(c).Backends[0].Cluster = "nope" }, `backends[0].cluster: unknown cluster "nope"`},
		{"retry code", func(c *Config) { route(c).Retry.Codes[1] = 302 }, "retry.codes[1]: 302 is not an error status"},
		{"retry backoff", func(c *Config) { route(c).Retry.Backoff = -1 }, "retry.backoff: negative"},
		{"retry without backends", func(c *Config) { c.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[1].Retry = &RetryPolicy{} }, "retry: retry policy without backends"},
		{"mirror cluster", func(c *Config) { route(c).Mirrors[1].Cluster = "nope" }, `mirrors[1].cluster: unknown cluster "nope"`},
		{"mirror share", func(c *Config) { route(c).Mirrors[1].Numerator = 4 }, "mirrors[1].numerator: 4 exceeds the denominator 3"},
		{"mirror without backends", func(c *Config) {
			c.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[1].Mirrors = []*Mirror{{Cluster: "service/default/echo/8080"}}
		}, "mirrors: mirrors without backends"},
		{"nil mirror", func(c *Config) { route(c).Mirrors[0] = nil }, "mirrors[0]: nil mirror"},
		{"two actions", func(c *Config) { route(c).DirectResponse = &DirectResponse{Status: 200} }, "has 2 actions"},
		{"no action", func(c *Config) { route(c).Backends = nil; route(c).Rewrite = nil }, "has 0 actions"},
		{"bad regex", func(c *Config) { route(c).Match.Headers[0].Value = "(" }, "match.headers[0].value: invalid RE2"},
		{"bad path regex", func(c *Config) { route(c).Match.Path = &PathMatch{Type: PathRegex, Value: "[a-"} }, "match.path.value: invalid RE2"},
		{"prefix trailing slash", func(c *Config) { route(c).Match.Path.Value = "/foo/" }, "trailing /"},
		{"prefix rewrite without prefix match", func(c *Config) { route(c).Match.Path = &PathMatch{Type: PathExact, Value: "/x"} }, "ReplacePrefixMatch needs a Prefix"},
		{"redirect status", func(c *Config) { c.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[1].Redirect.StatusCode = 200 }, "200 is not a redirect status"},
		{"header value injection", func(c *Config) {
			route(c).RequestHeaders = &HeaderModifier{Set: []Header{{Name: "x", Value: "a\r\nb: c"}}}
		}, "requestHeaders.set[0].value: invalid header value"},
		{"header name", func(c *Config) { route(c).RequestHeaders = &HeaderModifier{Remove: []string{"bad name"}} }, `invalid header name "bad name"`},
		{"unknown secret", func(c *Config) { c.Secrets[0].Name = "other" }, `unknown secret "secret/default/cert"`},
		{"server names need TLS", func(c *Config) { c.Listeners[0].Chains[0].ServerNames = []string{"a.com"} }, "server names need TLS"},
		{"duplicate domain", func(c *Config) {
			vhs := &c.Listeners[0].Chains[0].Routes.VirtualHosts
			*vhs = append(*vhs, &VirtualHost{Name: "other", Domains: []string{"*"}, Routes: []*Route{{Name: "x", DirectResponse: &DirectResponse{Status: 404}}}})
		}, `domain "*" also in virtual host "*"`},
		{"route table twice", func(c *Config) { c.Listeners[1].Chains[0].Routes.Name = c.Listeners[0].Chains[0].Routes.Name }, "defined twice"},
		{"endpoint port", func(c *Config) { c.Clusters[0].Endpoints[0].Port = 70000 }, "endpoints[0].port: 70000"},
		{"cluster protocol", func(c *Config) { c.Clusters[0].Protocol = "h3" }, `unknown protocol "h3"`},
		{"invalid domain", func(c *Config) { c.Listeners[1].Chains[0].Routes.VirtualHosts[0].Domains = []string{"a..b"} }, `invalid domain "a..b"`},
		{"negative backend timeout", func(c *Config) { route(c).BackendTimeout = -1 }, "backendTimeout: negative"},
		{"backend timeout beyond route timeout", func(c *Config) { route(c).Timeout, route(c).BackendTimeout = 1e9, 2e9 }, "backendTimeout: 2s exceeds the route timeout 1s"},
		{"cors without the filter", func(c *Config) { c.Listeners[0].Chains[0].CORS = false }, "chains[0].routes.virtualHosts[0].routes[0].cors: a CORS policy on a chain without CORS"},
		{"cors origin regex", func(c *Config) { route(c).CORS.AllowOrigins[1].Value = "(" }, "cors.allowOrigins[1].value: invalid RE2"},
		{"cors origin injection", func(c *Config) { route(c).CORS.AllowOrigins[0].Value = "https://a\r\nx: y" }, "cors.allowOrigins[0].value: "},
		{"cors star among others", func(c *Config) { route(c).CORS.AllowMethods = []string{"GET", "*"} }, `cors.allowMethods[1]: "*" must be the only entry`},
		{"cors header name", func(c *Config) { route(c).CORS.ExposeHeaders = []string{"a b"} }, `cors.exposeHeaders[0]: "a b" is not a token`},
		{"cors max age fraction", func(c *Config) { route(c).CORS.MaxAge = 1500 * time.Millisecond }, "cors.maxAge: 1.5s is not a whole number of seconds"},
		{"tcp chain to an http cluster", func(c *Config) { c.Listeners[2].TCPChains[0].Backends[0].Cluster = "service/default/echo/8080" },
			`tcpChains[0].backends[0].cluster: cluster "service/default/echo/8080" is not a TCP cluster`},
		{"tcp chain unknown cluster", func(c *Config) { c.Listeners[1].TCPChains[0].Backends[0].Cluster = "nope" }, `tcpChains[0].backends[0].cluster: unknown cluster "nope"`},
		{"tcp chain without backends", func(c *Config) { c.Listeners[2].TCPChains[0].Backends = nil }, "tcpChains[0].backends: empty"},
		{"tcp chain header edits", func(c *Config) {
			c.Listeners[2].TCPChains[0].Backends[0].RequestHeaders = &HeaderModifier{Remove: []string{"x"}}
		}, "tcpChains[0].backends[0]: header edits on a TCP backend"},
		{"tcp catch-all beside another", func(c *Config) {
			c.Listeners[1].Chains[0].ServerNames = nil
			c.Listeners[1].TCPChains[0].ServerNames = nil
		},
			"2 chains without server names; at most one may catch all"},
		{"tcp chain name clash", func(c *Config) { c.Listeners[1].TCPChains[0].Name = "https" }, `tcpChains[0].name: empty or duplicate "https"`},
		{"plaintext plus tcp", func(c *Config) {
			c.Listeners[0].TCPChains = []*TCPChain{{Name: "p", ServerNames: []string{"a.example"}, Backends: c.Listeners[2].TCPChains[0].Backends}}
		}, "plaintext chain must be the listener's only chain"},
		{"udp listener with chains", func(c *Config) { c.Listeners[3].TCPChains = c.Listeners[2].TCPChains }, "a UDP listener has no chains"},
		{"udp listener keeping the client's address", func(c *Config) { c.Listeners[3].OriginalSourceMark = 0xa00 }, "a UDP listener cannot keep the client's address"},
		{"udp listener to a tcp cluster", func(c *Config) { c.Listeners[3].UDP.Cluster = "service/default/db/5432/tcp" },
			`udp.cluster: cluster "service/default/db/5432/tcp" is not a UDP cluster`},
		{"two udp listeners on one port", func(c *Config) {
			c.Listeners = append(c.Listeners, &Listener{Name: "other", Address: "127.0.100.1", Port: 5432, UDP: &UDPProxy{Cluster: "udproute/default/dns/53"}})
		}, "udp 127.0.100.1:5432 already bound"},
		{"upstream tls without a ca", func(c *Config) { c.Clusters[0].UpstreamTLS.TrustedCA = nil }, "upstreamTLS.trustedCA: no certificate"},
		{"upstream tls ca not pem", func(c *Config) { c.Clusters[0].UpstreamTLS.TrustedCA = []byte("junk") }, "upstreamTLS.trustedCA: holds bytes that are not PEM"},
		{"upstream tls ca a key", func(c *Config) {
			c.Clusters[0].UpstreamTLS.TrustedCA = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
		}, `upstreamTLS.trustedCA: holds a PEM block of type "PRIVATE KEY"`},
		{"upstream tls ca unparsable", func(c *Config) {
			c.Clusters[0].UpstreamTLS.TrustedCA = append(testCA(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})...)
		}, "upstreamTLS.trustedCA: certificate 1: "},
		{"upstream tls nothing to check", func(c *Config) { c.Clusters[0].UpstreamTLS.SNI, c.Clusters[0].UpstreamTLS.SubjectAltNames = "", nil }, "neither sni nor subjectAltNames"},
		{"upstream tls bad sni", func(c *Config) { c.Clusters[0].UpstreamTLS.SNI = "a b" }, `upstreamTLS.sni: "a b" is not a DNS name`},
		{"upstream tls san type", func(c *Config) { c.Clusters[0].UpstreamTLS.SubjectAltNames[0].Type = "EMAIL" }, `subjectAltNames[0].type: unknown type "EMAIL"`},
		{"upstream tls san empty", func(c *Config) { c.Clusters[0].UpstreamTLS.SubjectAltNames[1].Value = "" }, "subjectAltNames[1].value: empty"},
		{"upstream tls unknown client cert", func(c *Config) { c.Clusters[0].UpstreamTLS.ClientCertificate = "nope" }, `upstreamTLS.clientCertificate: unknown secret "nope"`},
		{"upstream tls on tcp", func(c *Config) { c.Clusters[1].UpstreamTLS = c.Clusters[0].UpstreamTLS }, "upstreamTLS: only HTTP clusters originate TLS, not TCP"},
		{"client ca not pem", func(c *Config) { c.Listeners[1].Chains[0].TLS.ClientCA = []byte("x") }, "chains[0].tls.clientCA: holds bytes that are not PEM"},
		{"client ca empty", func(c *Config) { c.Listeners[1].Chains[0].TLS.ClientCA = []byte{} }, "chains[0].tls.clientCA: no certificate"},
		{"unverified clients without ca", func(c *Config) { c.Listeners[1].Chains[0].TLS.ClientCA = nil }, "chains[0].tls.allowUnverifiedClients: without clientCA"},
		{"terminating tcp chain unknown secret", func(c *Config) {
			c.Listeners[1].TCPChains[0].TLS = &TLS{Certificates: []string{"nope"}}
		}, `tcpChains[0].tls.certificates[0]: unknown secret "nope"`},
		{"terminating tcp chain without certificates", func(c *Config) { c.Listeners[1].TCPChains[0].TLS = &TLS{} }, "tcpChains[0].tls.certificates: empty"},
		{"plaintext plus tls", func(c *Config) { c.Listeners[1].Chains = append(c.Listeners[1].Chains, c.Listeners[0].Chains[0]) }, "plaintext chain must be the listener's only chain"},
		{"plainAndTLS without tls chains", func(c *Config) { c.Listeners[0].PlainAndTLS = true }, "plainAndTLS: needs exactly one plaintext chain"},
		{"plainAndTLS without a plaintext chain", func(c *Config) { c.Listeners[1].PlainAndTLS = true }, "plainAndTLS: needs exactly one plaintext chain"},
		{"plainAndTLS with a source-prefixed chain", func(c *Config) {
			c.Listeners[0].PlainAndTLS = true
			c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(c.Listeners[0].Chains[0], "consumer", "10.0.0.0/8"))
			c.Listeners[0].TCPChains = []*TCPChain{{Name: "p", ServerNames: []string{"a.example"}, Backends: c.Listeners[2].TCPChains[0].Backends}}
		}, "plainAndTLS: needs exactly one plaintext chain"},
		{"plainAndTLS with two tls catch-alls", func(c *Config) {
			c.Listeners[1].PlainAndTLS = true
			c.Listeners[1].Chains[0].ServerNames = nil
			c.Listeners[1].TCPChains[0].ServerNames = nil
			c.Listeners[1].Chains = append(c.Listeners[1].Chains, c.Listeners[0].Chains[0])
		}, "2 chains without server names; at most one may catch all"},
		{"two plaintext chains without source prefixes", func(c *Config) {
			c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(c.Listeners[0].Chains[0], "consumer"))
		}, "plaintext chain must be the listener's only chain"},
		{"source prefix not canonical", func(c *Config) {
			c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(c.Listeners[0].Chains[0], "consumer", "10.1.2.3/24"))
		}, `chains[1].sourcePrefixes[0]: "10.1.2.3/24" is not a canonical CIDR prefix`},
		{"source prefix on two chains", func(c *Config) {
			c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(c.Listeners[0].Chains[0], "a", "10.1.2.3/32"),
				sourced(c.Listeners[0].Chains[0], "b", "fd00::/64", "10.1.2.3/32"))
		}, `chains[2].sourcePrefixes[1]: prefix 10.1.2.3/32 is already chain "a"'s`},
		{"source prefixes on tls", func(c *Config) { c.Listeners[1].Chains[0].SourcePrefixes = []string{"10.0.0.0/8"} },
			"chains[0].sourcePrefixes: source prefixes are for plaintext chains only"},
		{"source prefixed plaintext beside tcp", func(c *Config) {
			c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(c.Listeners[0].Chains[0], "consumer", "10.0.0.0/8"))
			c.Listeners[0].TCPChains = []*TCPChain{{Name: "p", ServerNames: []string{"a.example"}, Backends: c.Listeners[2].TCPChains[0].Backends}}
		}, "plaintext chain must be the listener's only chain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidDomain(t *testing.T) {
	for d, want := range map[string]bool{
		"*": true, "example.com": true, "*.example.com": true, "127.0.0.1": true, "::1": true,
		"2001:db8::1": true, "fe80::1%eth0": true, "10.0.0.256": true,
		"": false, "*.": false, "a..b": false, "-a.com": false, "a-.com": false, "a b": false, "*.*.com": false,
		"[::1]": false, "a:b": false, "example.com:80": false, "*.::1": false,
	} {
		if got := validDomain(d); got != want {
			t.Errorf("validDomain(%q) = %v, want %v", d, got, want)
		}
	}
}

// TestValidDomainAllocatesNothing: every validation checks every domain
// of every virtual host, so a DNS name is checked without allocating.
func TestValidDomainAllocatesNothing(t *testing.T) {
	for _, d := range []string{"app7.example.com", "*.example.com", "10.0.0.1"} {
		if n := testing.AllocsPerRun(100, func() { validDomain(d) }); n != 0 {
			t.Errorf("validDomain(%q): %v allocations, want 0", d, n)
		}
	}
}

// TestValidator checks that the remembering Validator reports exactly what
// Validate reports, including for Configs that share virtual hosts with an
// earlier valid one but not the clusters they use.
func TestValidator(t *testing.T) {
	var x Validator
	base := valid()
	if err := x.Validate(base); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if len(x.valid) != 2 {
		t.Fatalf("remembered %d virtual hosts, want 2", len(x.valid))
	}
	if err := x.Validate(base); err != nil {
		t.Fatalf("valid config rejected the second time: %v", err)
	}
	// The same virtual hosts without the cluster their routes use.
	noCluster := *base
	noCluster.Clusters = nil
	err := x.Validate(&noCluster)
	if err == nil || !strings.Contains(err.Error(), `unknown cluster "service/default/echo/8080"`) {
		t.Fatalf("shared virtual host with its cluster gone: got %v", err)
	}
	if err := x.Validate(base); err != nil {
		t.Fatalf("valid config rejected after an invalid one: %v", err)
	}
	// The same virtual host twice in one route table: the domain clash is
	// found although the routes are remembered.
	twice := *base
	vh := base.Listeners[0].Chains[0].Routes.VirtualHosts[0]
	twice.Listeners = []*Listener{{
		Name: "l", Address: "127.0.100.2", Port: 80,
		Chains: []*HTTPChain{{Name: "http", Routes: &RouteTable{Name: "t", VirtualHosts: []*VirtualHost{vh, vh}}}},
	}}
	if err := x.Validate(&twice); err == nil || !strings.Contains(err.Error(), "also in virtual host") {
		t.Fatalf("virtual host listed twice: got %v", err)
	}
	// An invalid virtual host is not remembered as valid.
	bad := valid()
	bad.Listeners[0].Chains[0].Routes.VirtualHosts[0].Routes[0].Match.Headers[0].Value = "("
	for i := 0; i < 2; i++ {
		if err := x.Validate(bad); err == nil || !strings.Contains(err.Error(), "invalid RE2") {
			t.Fatalf("call %d: invalid regex: got %v", i, err)
		}
	}
}

// TestValidatorCORSOfRememberedList: the Validator remembers whether a
// list of routes that passed carries CORS, so a chain without CORS need
// not read an unchanged list again; the same list served by a chain
// without CORS, after it passed on one with CORS, is still refused, in the
// same call and in the next.
func TestValidatorCORSOfRememberedList(t *testing.T) {
	var x Validator
	base := valid()
	if err := x.Validate(base); err != nil {
		t.Fatal(err)
	}
	both := *base
	plain := *base.Listeners[0]
	ch := *plain.Chains[0]
	ch.CORS = false
	plain.Chains = []*HTTPChain{&ch}
	plain.Name, plain.Port = "gateway/default/eg/8080", 8080
	ch.Routes = &RouteTable{Name: "gateway/default/eg/8080/http", VirtualHosts: base.Listeners[0].Chains[0].Routes.VirtualHosts}
	both.Listeners = append([]*Listener{&plain}, base.Listeners...)
	slices.SortFunc(both.Listeners, func(a, b *Listener) int { return strings.Compare(a.Name, b.Name) })
	for i := range 2 {
		if err := x.Validate(&both); err == nil || !strings.Contains(err.Error(), "a CORS policy on a chain without CORS") {
			t.Fatalf("call %d: a list with CORS on a chain without: got %v", i, err)
		}
	}
	if err := x.Validate(base); err != nil {
		t.Fatal(err)
	}
}

// TestValidatorClusters: a cluster that passed is not checked field by
// field again while its content is unchanged, and one that failed is
// reported every time; duplicates are found either way.
func TestValidatorClusters(t *testing.T) {
	var x Validator
	base := valid()
	for i := 0; i < 2; i++ {
		if err := x.Validate(base); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if len(x.clusters) != len(base.Clusters) {
		t.Fatalf("remembered %d clusters, want %d", len(x.clusters), len(base.Clusters))
	}
	dup := valid()
	dup.Clusters = append(dup.Clusters, dup.Clusters[0])
	if err := x.Validate(dup); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("a cluster listed twice: got %v", err)
	}
	bad := valid()
	bad.Clusters[0].Endpoints[0].Address = "nowhere"
	for i := 0; i < 2; i++ {
		if err := x.Validate(bad); err == nil || !strings.Contains(err.Error(), "endpoints[0].address") {
			t.Fatalf("call %d: invalid endpoint: got %v", i, err)
		}
	}
}

// sourced is a copy of a plaintext chain named name, for the clients of
// prefixes.
func sourced(ch *HTTPChain, name string, prefixes ...string) *HTTPChain {
	c := *ch
	rt := *ch.Routes
	rt.Name += "/" + name
	c.Name, c.SourcePrefixes, c.Routes = name, prefixes, &rt
	return &c
}

// TestValidateSourcePrefixedChains: plaintext chains told apart by source
// prefixes may share a listener with one chain without prefixes.
func TestValidateSourcePrefixedChains(t *testing.T) {
	c := valid()
	base := c.Listeners[0].Chains[0]
	c.Listeners[0].Chains = append(c.Listeners[0].Chains, sourced(base, "a", "10.1.2.3/32", "fd00::1e/128"), sourced(base, "b", "10.1.0.0/16"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// sharedListConfig is a Config of two route tables (an HTTP and an HTTPS
// listener) whose virtual hosts, different objects with their own names,
// hold the same n routes spread over 10 lists, as a Gateway's listeners
// do; break_ spoils some of the routes.
func sharedListConfig(n int, break_ func(i int, r *Route)) *Config {
	cluster := "service/default/echo/8080"
	vhosts := make([]*VirtualHost, 10)
	for v := range vhosts {
		vhosts[v] = &VirtualHost{Name: fmt.Sprintf("http/vh%d", v), Domains: []string{fmt.Sprintf("h%d.example.com", v)}}
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
	https := make([]*VirtualHost, len(vhosts))
	for i, vh := range vhosts {
		https[i] = &VirtualHost{Name: fmt.Sprintf("https/vh%d", i), Domains: vh.Domains, Routes: vh.Routes}
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

// TestValidatorSharedRouteLists: the virtual hosts of two listeners
// holding the same list of routes are remembered once (by their route
// list), and the Validator reports exactly what Validate reports, in the
// same order, whether the lists are valid or some of their routes are
// broken (an invalid list is walked, and reported, in each virtual host
// holding it).
func TestValidatorSharedRouteLists(t *testing.T) {
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
			}
		},
		"duplicate name": func(i int, r *Route) {
			if i == 117 {
				r.Name = "r97" // twice in its list
			}
		},
	}
	for name, br := range breaks {
		t.Run(name, func(t *testing.T) {
			cfg := sharedListConfig(300, br)
			want := cfg.Validate()
			if (want == nil) != (name == "valid") {
				t.Fatalf("Validate() = %v", want)
			}
			var x Validator
			for call := range 2 {
				if got := x.Validate(cfg); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("call %d: Validator reports\n%v\nwant\n%v", call, got, want)
				}
			}
			if name == "valid" && len(x.valid) != 10 {
				t.Fatalf("%d route lists remembered, want 10 (each held by two virtual hosts)", len(x.valid))
			}
			// The same routes without their cluster: what passed before is
			// checked against the clusters of now.
			noCluster := *cfg
			noCluster.Clusters = nil
			if got, want := x.Validate(&noCluster), noCluster.Validate(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("clusters gone: Validator reports\n%v\nwant\n%v", got, want)
			}
		})
	}
}
