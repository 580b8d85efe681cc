package proxylib_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
)

// shadowSink records the requests a mirror cluster receives, by their
// x-key header.
type shadowSink struct {
	mu    sync.Mutex
	got   map[string][]shadowSeen
	delay time.Duration
}

type shadowSeen struct {
	method, path, host, body, proto string
}

func (s *shadowSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	if s.got == nil {
		s.got = map[string][]shadowSeen{}
	}
	k := r.Header.Get("X-Key")
	s.got[k] = append(s.got[k], shadowSeen{r.Method, r.RequestURI, r.Host, string(body), r.Proto})
	s.mu.Unlock()
	w.WriteHeader(500) // a mirror's response never reaches the client
	_, _ = io.WriteString(w, "shadow answer")
}

func (s *shadowSink) seen(k string) []shadowSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shadowSeen(nil), s.got[k]...)
}

func (s *shadowSink) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.got {
		if strings.HasPrefix(k, prefix) {
			n += len(v)
		}
	}
	return n
}

func mirrorTo(cluster string, num uint32) *routev3.RouteAction_RequestMirrorPolicy {
	m := &routev3.RouteAction_RequestMirrorPolicy{Cluster: cluster}
	if num <= 100 {
		m.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: num,
			Denominator: typev3.FractionalPercent_HUNDRED}}
	}
	return m
}

func mirrorRoute(prefix string, rp *routev3.RetryPolicy, mirrors ...*routev3.RouteAction_RequestMirrorPolicy) *routev3.Route {
	return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "main"},
			Timeout: durationpb.New(5 * time.Second), RetryPolicy: rp, RequestMirrorPolicies: mirrors}}}
}

// TestRequestMirror checks request_mirror_policies from HTTP/1.1 and
// HTTP/2 clients to HTTP/1.1 and HTTP/2 mirror clusters: the copy has the
// request's method, path and whole body and the host suffixed "-shadow";
// its response is discarded; several mirrors each get a copy; the fraction
// samples requests; a slow or unreachable mirror neither delays nor fails
// the request; a body over the buffer limit is not mirrored; a retried
// request is mirrored once.
func TestRequestMirror(t *testing.T) {
	main := startBackend(t, "main", &flaky{})
	s1, s2, slow := &shadowSink{}, &shadowSink{}, &shadowSink{delay: 3 * time.Second}
	b1 := startBackend(t, "s1", s1)
	b2 := startBackend(t, "s2", h2c.NewHandler(s2, &http2.Server{}))
	bslow := startBackend(t, "slow", slow)
	x := startXDS(t, "", nil)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	l := httpListener(t, "l", addr, "rc", nil)
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(4096)
	noSuffix := mirrorTo("s1", 101)
	noSuffix.DisableShadowHostSuffixAppend = true
	renamed := mirrorTo("s2", 101)
	renamed.HostRewriteLiteral = "elsewhere.example"
	x.set(l, routeConfig("rc", vh("v", "*",
		mirrorRoute("/one/", nil, mirrorTo("s1", 101)),
		mirrorRoute("/multi/", nil, mirrorTo("s1", 101), mirrorTo("s2", 101)),
		mirrorRoute("/opts/", nil, noSuffix, renamed),
		mirrorRoute("/never/", nil, mirrorTo("s1", 0)),
		mirrorRoute("/half/", nil, mirrorTo("s1", 50)),
		mirrorRoute("/slow/", nil, mirrorTo("slow", 101), mirrorTo("dead", 101), mirrorTo("unknown", 101)),
		mirrorRoute("/retried/", &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: fastBackoff()}, mirrorTo("s1", 101)),
	)),
		edsCluster(t, "main", false, nil), cla("main", main.addr),
		edsCluster(t, "s1", false, nil), cla("s1", b1.addr),
		edsCluster(t, "s2", true, nil), cla("s2", b2.addr),
		edsCluster(t, "slow", false, nil), cla("slow", bslow.addr),
		edsCluster(t, "dead", false, nil), cla("dead", freeAddr(t)))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr))
	x.waitApplied()
	waitServing(t, "http://"+addr+"/", "")

	awaitCopies := func(t *testing.T, s *shadowSink, k string, n int) []shadowSeen {
		t.Helper()
		waitFor(t, func() bool { return len(s.seen(k)) >= n }, "%d mirrored copies of %s", n, k)
		time.Sleep(50 * time.Millisecond) // and no more
		got := s.seen(k)
		if len(got) != n {
			t.Fatalf("%s mirrored %d times, want %d", k, len(got), n)
		}
		return got
	}
	body := strings.Repeat("mirror-", 300)
	for _, cl := range retryClients() {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/chunked=%v", cl.name, chunked), func(t *testing.T) {
				k := fmt.Sprintf("%s-%v-", cl.name, chunked)
				req := func(path, key string, b string, hdr ...string) (int, string) {
					h := map[string]string{"X-Key": key}
					for i := 0; i+1 < len(hdr); i += 2 {
						h[hdr[i]] = hdr[i+1]
					}
					var rd io.Reader = strings.NewReader(b)
					if chunked {
						rd = io.MultiReader(rd)
					}
					code, _, got := do(t, cl.client, "POST", "http://"+addr+path, "example.com:8080", h, rd)
					return code, got
				}
				if code, got := req("/one/x?q=1", k+"one", body); code != 200 || got != "ok 1" {
					t.Fatalf("mirrored request: %d %q; the mirror's response must not reach the client", code, got)
				}
				c := awaitCopies(t, s1, k+"one", 1)[0]
				if c.method != "POST" || c.path != "/one/x?q=1" || c.host != "example.com-shadow:8080" || c.body != body {
					t.Fatalf("copy: %s %s host %q body %d bytes; want POST /one/x?q=1 host example.com-shadow:8080 and the whole %d-byte body",
						c.method, c.path, c.host, len(c.body), len(body))
				}
				req("/multi/x", k+"multi", body)
				awaitCopies(t, s1, k+"multi", 1)
				if c := awaitCopies(t, s2, k+"multi", 1)[0]; c.body != body || c.proto != "HTTP/2.0" || c.host != "example.com-shadow:8080" {
					t.Fatalf("HTTP/2 mirror copy: %s host %q body %d bytes", c.proto, c.host, len(c.body))
				}
				req("/opts/x", k+"opts", "")
				if c := awaitCopies(t, s1, k+"opts", 1)[0]; c.host != "example.com:8080" || c.body != "" {
					t.Fatalf("disable_shadow_host_suffix_append: host %q body %q", c.host, c.body)
				}
				if c := awaitCopies(t, s2, k+"opts", 1)[0]; c.host != "elsewhere.example" {
					t.Fatalf("host_rewrite_literal: host %q", c.host)
				}
				start := time.Now()
				if code, got := req("/slow/x", k+"slow", body); code != 200 || got != "ok 1" || time.Since(start) > time.Second {
					t.Fatalf("slow, unreachable and unknown mirrors: %d %q after %v; the request must not wait for them", code, got, time.Since(start))
				}
				before := statOf(t, adminAddr, "main", "retry_or_shadow_abandoned")
				large := strings.Repeat("L", 10000)
				if code, _ := req("/one/x", k+"large", large); code != 200 {
					t.Fatalf("large body: %d", code)
				}
				if n := statOf(t, adminAddr, "main", "retry_or_shadow_abandoned"); n != before+1 {
					t.Fatalf("retry_or_shadow_abandoned %d, want %d", n, before+1)
				}
				if code, got := req("/retried/x", k+"retried", body, "X-Fail-Times", "1", "X-Fail-Status", "503"); code != 200 || got != "ok 2" {
					t.Fatalf("retried request: %d %q", code, got)
				}
				awaitCopies(t, s1, k+"retried", 1)
				for i := range 10 {
					req("/never/x", fmt.Sprintf("%snever%d", k, i), "")
				}
				time.Sleep(200 * time.Millisecond)
				if n := len(s1.seen(k + "large")); n != 0 {
					t.Fatalf("a body over the buffer limit was mirrored %d times", n)
				}
				if n := s1.count(k + "never"); n != 0 {
					t.Fatalf("0%% mirror sent %d copies", n)
				}
			})
		}
	}
	const n = 200
	for i := range n {
		do(t, client(), "GET", "http://"+addr+"/half/x", "", map[string]string{"X-Key": fmt.Sprintf("half%d", i)}, nil)
	}
	time.Sleep(300 * time.Millisecond)
	if got := s1.count("half"); got < n/4 || got > 3*n/4 {
		t.Fatalf("50%% mirror sent %d copies of %d requests", got, n)
	}
}
