package proxylib_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
)

// flaky is a backend whose behaviour each request chooses with headers:
// x-fail-times N makes the first N requests of its x-key fail with the
// status x-fail-status (or, for "reset", by dropping the connection or
// resetting the stream, and for "slow", by never answering: it holds the
// request until the proxy abandons the attempt, at most 30 s); later ones
// answer 200 "ok <attempt>". It records every request of a key.
type flaky struct {
	mu   sync.Mutex
	seen map[string][]flakySeen
}

type flakySeen struct {
	body, expected, host string
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	key := r.Header.Get("X-Key")
	f.mu.Lock()
	if f.seen == nil {
		f.seen = map[string][]flakySeen{}
	}
	f.seen[key] = append(f.seen[key], flakySeen{body: string(body), expected: r.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms"), host: r.Host})
	n := len(f.seen[key])
	f.mu.Unlock()
	times, _ := strconv.Atoi(r.Header.Get("X-Fail-Times"))
	if n <= times {
		switch st := r.Header.Get("X-Fail-Status"); st {
		case "reset":
			if hj, ok := w.(http.Hijacker); ok {
				c, _, err := hj.Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
			panic(http.ErrAbortHandler) // HTTP/2: RST_STREAM
		case "slow":
			// Only a timeout of the proxy ends this attempt: a response
			// after it comes from a retry, however slow the machine.
			select {
			case <-time.After(30 * time.Second):
			case <-r.Context().Done():
			}
			return
		default:
			code, _ := strconv.Atoi(st)
			if g := r.Header.Get("X-Fail-Grpc"); g != "" {
				w.Header().Set("Grpc-Status", g)
			}
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, "fail %d", n)
			return
		}
	}
	_, _ = fmt.Fprintf(w, "ok %d", n)
}

func (f *flaky) requests(key string) []flakySeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]flakySeen(nil), f.seen[key]...)
}

// statOf reads one statistic of a cluster from the admin endpoint.
func statOf(t *testing.T, adminAddr, cluster, name string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "cluster."+cluster+"."+name+": "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no cluster.%s.%s in /stats:\n%s", cluster, name, b)
	return 0
}

func retryRoute(prefix, cluster string, timeout time.Duration, rp *routev3.RetryPolicy) *routev3.Route {
	ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}, RetryPolicy: rp}
	if timeout > 0 {
		ra.Timeout = durationpb.New(timeout)
	}
	return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: ra}}
}

func fastBackoff() *routev3.RetryPolicy_RetryBackOff {
	return &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Millisecond)}
}

type retryCase struct {
	client *http.Client
	name   string
}

// retryClients are an HTTP/1.1 and an HTTP/2 (prior knowledge) client.
func retryClients() []retryCase {
	return []retryCase{{client(), "h1"}, {h2cClient(), "h2"}}
}

// post sends a POST with body (chunked when chunked, else with a length)
// and the test headers.
func post(t *testing.T, c *http.Client, url, body string, chunked bool, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader = strings.NewReader(body)
	if chunked {
		rd = io.MultiReader(strings.NewReader(body)) // no length: chunked (HTTP/1.1) or unknown (HTTP/2)
	}
	return do(t, c, "POST", url, "", hdr, rd)
}

// The budget route: a route timeout over tries that each time out. Since
// no try ends before its per-try timeout, try k starts at least k per-try
// timeouts in: at most 4 start within the route timeout.
const (
	budgetRoute    = 1200 * time.Millisecond
	budgetTry      = 300 * time.Millisecond
	budgetMaxTries = 4
)

// TestRetryPolicy checks retry_on, num_retries, retriable_status_codes and
// the back-off for every pairing of client and upstream protocol: a request
// is retried on the configured conditions with its whole body, the last
// response is relayed when retries run out, and the router's retry
// statistics count it.
func TestRetryPolicy(t *testing.T) {
	fb := &flaky{}
	h1 := startBackend(t, "h1", fb)
	h2 := startBackend(t, "h2", h2c.NewHandler(fb, &http2.Server{}))
	x := startXDS(t, "", nil)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	var routes []*routev3.Route
	for _, c := range []string{"h1", "h2"} {
		routes = append(routes,
			retryRoute("/"+c+"/codes/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "retriable-status-codes",
				RetriableStatusCodes: []uint32{500}, NumRetries: wrapperspb.UInt32(3), RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/5xx/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(2),
				RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/gw/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "gateway-error", RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/409/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "retriable-4xx", RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/reset/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "reset", RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/grpc/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "unavailable", RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/connect/", c, 5*time.Second, &routev3.RetryPolicy{RetryOn: "connect-failure", RetryBackOff: fastBackoff()}),
			// The per-try timeouts leave a loaded machine time to answer
			// the try after a timed-out one.
			retryRoute("/"+c+"/pertry/", c, 10*time.Second, &routev3.RetryPolicy{RetryOn: "5xx", PerTryTimeout: durationpb.New(700 * time.Millisecond),
				RetryBackOff: fastBackoff()}),
			retryRoute("/"+c+"/budget/", c, budgetRoute, &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(10),
				PerTryTimeout: durationpb.New(budgetTry), RetryBackOff: fastBackoff()}),
			// What the translator emits for an HTTPRoute retry stanza
			// with codes and a backendRequest timeout.
			retryRoute("/"+c+"/gwapi/", c, 10*time.Second, &routev3.RetryPolicy{RetryOn: "connect-failure,reset,retriable-status-codes",
				RetriableStatusCodes: []uint32{500}, NumRetries: wrapperspb.UInt32(2), PerTryTimeout: durationpb.New(700 * time.Millisecond),
				RetryBackOff: fastBackoff()}),
		)
	}
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...)),
		edsCluster(t, "h1", false, nil), cla("h1", h1.addr), edsCluster(t, "h2", true, nil), cla("h2", h2.addr))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr))
	x.waitApplied()
	waitServing(t, "http://"+addr+"/", "")

	key := 0
	for _, up := range []string{"h1", "h2"} {
		for _, cl := range retryClients() {
			for _, chunked := range []bool{false, true} {
				name := fmt.Sprintf("%s-to-%s/chunked=%v", cl.name, up, chunked)
				run := func(path, body string, hdr map[string]string) (int, string, []flakySeen) {
					key++
					k := fmt.Sprintf("k%d", key)
					h := map[string]string{"X-Key": k}
					for n, v := range hdr {
						h[n] = v
					}
					code, _, got := post(t, cl.client, "http://"+addr+"/"+up+path, body, chunked, h)
					return code, got, fb.requests(k)
				}
				t.Run(name, func(t *testing.T) {
					body := strings.Repeat("payload-", 100)
					// Two 500s, then success: within num_retries 3.
					code, got, seen := run("/codes/x", body, map[string]string{"X-Fail-Times": "2", "X-Fail-Status": "500"})
					if code != 200 || got != "ok 3" || len(seen) != 3 {
						t.Fatalf("codes: %d %q after %d attempts, want 200 \"ok 3\" after 3", code, got, len(seen))
					}
					for i, s := range seen {
						if s.body != body {
							t.Fatalf("attempt %d received a body of %d bytes, want the whole %d", i+1, len(s.body), len(body))
						}
					}
					// Four 500s: the fourth attempt's 500 is relayed.
					code, got, seen = run("/codes/x", body, map[string]string{"X-Fail-Times": "4", "X-Fail-Status": "500"})
					if code != 500 || got != "fail 4" || len(seen) != 4 {
						t.Fatalf("exhausted: %d %q after %d attempts, want 500 \"fail 4\" after 4", code, got, len(seen))
					}
					// 503 is not a retriable status code here.
					code, _, seen = run("/codes/x", body, map[string]string{"X-Fail-Times": "2", "X-Fail-Status": "503"})
					if code != 503 || len(seen) != 1 {
						t.Fatalf("503 under retriable-status-codes [500]: %d after %d attempts, want 503 after 1", code, len(seen))
					}
					// 5xx: any 5xx, and a dropped connection or reset stream.
					for _, st := range []string{"502", "reset"} {
						code, got, seen = run("/5xx/x", body, map[string]string{"X-Fail-Times": "2", "X-Fail-Status": st})
						if code != 200 || got != "ok 3" {
							t.Fatalf("5xx on %s: %d %q after %d attempts, want 200", st, code, got, len(seen))
						}
					}
					// gateway-error retries 502-504 only, once by default.
					code, _, seen = run("/gw/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "504"})
					if code != 200 || len(seen) != 2 {
						t.Fatalf("gateway-error on 504: %d after %d attempts, want 200 after 2", code, len(seen))
					}
					code, _, seen = run("/gw/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "500"})
					if code != 500 || len(seen) != 1 {
						t.Fatalf("gateway-error on 500: %d after %d attempts, want 500 after 1", code, len(seen))
					}
					code, _, seen = run("/gw/x", body, map[string]string{"X-Fail-Times": "2", "X-Fail-Status": "503"})
					if code != 503 || len(seen) != 2 {
						t.Fatalf("gateway-error, default num_retries 1: %d after %d attempts, want 503 after 2", code, len(seen))
					}
					// retriable-4xx is 409 only.
					code, _, seen = run("/409/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "409"})
					if code != 200 || len(seen) != 2 {
						t.Fatalf("retriable-4xx on 409: %d after %d attempts", code, len(seen))
					}
					// reset retries a reset, not a 5xx.
					code, _, seen = run("/reset/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "reset"})
					if code != 200 || len(seen) != 2 {
						t.Fatalf("reset on a reset: %d after %d attempts", code, len(seen))
					}
					code, _, seen = run("/reset/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "500"})
					if code != 500 || len(seen) != 1 {
						t.Fatalf("reset on a 500: %d after %d attempts", code, len(seen))
					}
					// connect-failure does not retry a response.
					code, _, seen = run("/connect/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "503"})
					if code != 503 || len(seen) != 1 {
						t.Fatalf("connect-failure on a 503: %d after %d attempts", code, len(seen))
					}
					// gRPC conditions read grpc-status in the response head.
					code, _, seen = run("/grpc/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "200", "X-Fail-Grpc": "14"})
					if code != 200 || len(seen) != 2 {
						t.Fatalf("unavailable on grpc-status 14: %d after %d attempts", code, len(seen))
					}
					code, _, seen = run("/grpc/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "200", "X-Fail-Grpc": "13"})
					if code != 200 || len(seen) != 1 {
						t.Fatalf("unavailable on grpc-status 13: %d after %d attempts", code, len(seen))
					}
					// A per-try timeout is retried under 5xx, with the
					// expected timeout of each try. The first try is
					// never answered: "ok 2" within the route timeout
					// is the retry after its per-try timeout, which
					// never ends a try early.
					start := time.Now()
					code, got, seen = run("/pertry/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "slow"})
					if code != 200 || got != "ok 2" || time.Since(start) < 700*time.Millisecond {
						t.Fatalf("per-try timeout: %d %q after %v", code, got, time.Since(start))
					}
					if seen[0].expected != "700" || seen[1].expected != "700" {
						t.Fatalf("x-envoy-expected-rq-timeout-ms %q, %q, want the per-try 700 on both", seen[0].expected, seen[1].expected)
					}
					// The Gateway API mapping: reset retries a per-try
					// timeout and a reset, the codes their statuses only.
					start = time.Now()
					code, got, _ = run("/gwapi/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "slow"})
					if code != 200 || got != "ok 2" || time.Since(start) < 700*time.Millisecond {
						t.Fatalf("gateway api, per-try timeout: %d %q after %v", code, got, time.Since(start))
					}
					code, got, _ = run("/gwapi/x", body, map[string]string{"X-Fail-Times": "2", "X-Fail-Status": "reset"})
					if code != 200 || got != "ok 3" {
						t.Fatalf("gateway api, reset: %d %q, want 200 \"ok 3\"", code, got)
					}
					code, _, seen = run("/gwapi/x", body, map[string]string{"X-Fail-Times": "1", "X-Fail-Status": "503"})
					if code != 503 || len(seen) != 1 {
						t.Fatalf("gateway api, unlisted 503: %d after %d attempts, want 503 after 1", code, len(seen))
					}
					// The route timeout bounds every try together: it
					// never ends the request early, and the tries that
					// fit in it are retried. The backend records a try
					// when it reads it, which for the last one may be
					// after the 504: the count may miss it.
					start = time.Now()
					code, got, seen = run("/budget/x", body, map[string]string{"X-Fail-Times": "100", "X-Fail-Status": "slow"})
					el := time.Since(start)
					if code != 504 || got != "upstream request timeout" || el < budgetRoute-100*time.Millisecond {
						t.Fatalf("route timeout over retries: %d %q after %v (%d attempts), want 504 after %v", code, got, el, len(seen), budgetRoute)
					}
					if len(seen) < 2 || len(seen) > budgetMaxTries {
						t.Fatalf("route timeout %v with %v tries: %d attempts, want 2 to %d", budgetRoute, budgetTry, len(seen), budgetMaxTries)
					}
					// Every try hangs until its per-try timeout, so try
					// k starts at least k per-try timeouts into the route
					// timeout: its header is at most the smaller of the
					// per-try timeout and what the route had left.
					for k, s := range seen {
						e, _ := strconv.Atoi(s.expected)
						if limit := min(budgetTry, budgetRoute-time.Duration(k)*budgetTry).Milliseconds(); e <= 0 || int64(e) > limit {
							t.Fatalf("try %d's x-envoy-expected-rq-timeout-ms is %q, want 1..%d (the per-try timeout or the route time left)", k, s.expected, limit)
						}
					}
				})
			}
		}
	}
	if n := statOf(t, adminAddr, "h1", "upstream_rq_retry"); n == 0 {
		t.Errorf("upstream_rq_retry = 0")
	}
	if n := statOf(t, adminAddr, "h1", "upstream_rq_retry_success"); n == 0 {
		t.Errorf("upstream_rq_retry_success = 0")
	}
	if n := statOf(t, adminAddr, "h2", "upstream_rq_retry_limit_exceeded"); n == 0 {
		t.Errorf("upstream_rq_retry_limit_exceeded = 0")
	}
}

// TestRetryConnectFailureAndHosts: connection failures are retried on
// another host with previous_hosts, and a request that runs out of
// retries gets Envoy's "retried and the latest reset reason" reply.
func TestRetryConnectFailureAndHosts(t *testing.T) {
	fb := &flaky{}
	good := startBackend(t, "good", fb)
	dead := freeAddr(t) // nothing listens here
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	prev := &routev3.RetryPolicy_RetryHostPredicate{Name: "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: anyOf(t, &previoushostsv3.PreviousHostsPredicate{})}}
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*",
		retryRoute("/mixed/", "mixed", 5*time.Second, &routev3.RetryPolicy{RetryOn: "connect-failure",
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{prev}, HostSelectionRetryMaxAttempts: 5,
			RetryBackOff: fastBackoff()}),
		retryRoute("/dead/", "dead", 5*time.Second, &routev3.RetryPolicy{RetryOn: "connect-failure",
			NumRetries: wrapperspb.UInt32(2), RetryBackOff: fastBackoff()}))),
		edsCluster(t, "mixed", false, nil), cla("mixed", dead, good.addr),
		edsCluster(t, "dead", false, nil), cla("dead", dead))
	startProxy(t, x.sock)
	x.waitApplied()
	waitServing(t, "http://"+addr+"/", "")
	c := client()
	for i := range 20 {
		code, _, body := do(t, c, "GET", "http://"+addr+"/mixed/x", "", map[string]string{"X-Key": "m" + strconv.Itoa(i)}, nil)
		if code != 200 {
			t.Fatalf("request %d: %d %q; a connect failure should be retried on the other host", i, code, body)
		}
	}
	code, _, body := do(t, c, "GET", "http://"+addr+"/dead/x", "", nil, nil)
	want := "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: connection failure"
	if code != 503 || body != want {
		t.Fatalf("dead cluster: %d %q, want 503 %q", code, body, want)
	}
}

// TestRetryLimits: a request body larger than the listener's buffer limit
// is not retried (retry_or_shadow_abandoned), and the cluster's
// max_retries circuit breaker refuses retries beyond it
// (upstream_rq_retry_overflow).
func TestRetryLimits(t *testing.T) {
	fb := &flaky{}
	be := startBackend(t, "be", fb)
	x := startXDS(t, "", nil)
	addr, adminAddr := freeAddr(t), freeAddr(t)
	l := httpListener(t, "l", addr, "rc", nil)
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(1024)
	noRetries := func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRetries: wrapperspb.UInt32(0)}}}
	}
	rp := &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: fastBackoff()}
	x.set(l, routeConfig("rc", vh("v", "*", retryRoute("/b/", "b", 5*time.Second, rp), retryRoute("/z/", "z", 5*time.Second, rp))),
		edsCluster(t, "b", false, nil), cla("b", be.addr), edsCluster(t, "z", false, noRetries), cla("z", be.addr))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr))
	x.waitApplied()
	waitServing(t, "http://"+addr+"/", "")
	for _, cl := range retryClients() {
		for _, chunked := range []bool{false, true} {
			small, large := strings.Repeat("s", 1000), strings.Repeat("L", 8000)
			k := fmt.Sprintf("%s-%v", cl.name, chunked)
			code, _, _ := post(t, cl.client, "http://"+addr+"/b/x", small, chunked, map[string]string{"X-Key": k + "s", "X-Fail-Times": "1", "X-Fail-Status": "500"})
			if seen := fb.requests(k + "s"); code != 200 || len(seen) != 2 || seen[1].body != small {
				t.Fatalf("%s: body within the limit: %d after %d attempts", k, code, len(seen))
			}
			before := statOf(t, adminAddr, "b", "retry_or_shadow_abandoned")
			code, _, _ = post(t, cl.client, "http://"+addr+"/b/x", large, chunked, map[string]string{"X-Key": k + "l", "X-Fail-Times": "1", "X-Fail-Status": "500"})
			if seen := fb.requests(k + "l"); code != 500 || len(seen) != 1 || seen[0].body != large {
				t.Fatalf("%s: body over the limit: %d after %d attempts, want the 500 after 1", k, code, len(seen))
			}
			if n := statOf(t, adminAddr, "b", "retry_or_shadow_abandoned"); n != before+1 {
				t.Fatalf("%s: retry_or_shadow_abandoned %d, want %d", k, n, before+1)
			}
			before = statOf(t, adminAddr, "z", "upstream_rq_retry_overflow")
			code, _, _ = post(t, cl.client, "http://"+addr+"/z/x", small, chunked, map[string]string{"X-Key": k + "z", "X-Fail-Times": "1", "X-Fail-Status": "500"})
			if seen := fb.requests(k + "z"); code != 500 || len(seen) != 1 {
				t.Fatalf("%s: max_retries 0: %d after %d attempts, want the 500 after 1", k, code, len(seen))
			}
			if n := statOf(t, adminAddr, "z", "upstream_rq_retry_overflow"); n != before+1 {
				t.Fatalf("%s: upstream_rq_retry_overflow %d, want %d", k, n, before+1)
			}
		}
	}
}

// startRefusingH2 is an h2c backend that refuses (RST_STREAM
// REFUSED_STREAM) the first refuse streams of all its connections and
// answers the others 200 "ok" once their request ended. It returns its
// address and the streams it saw.
func startRefusingH2(t *testing.T, refuse int64) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen := &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				pre := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, pre); err != nil {
					return
				}
				fr := http2.NewFramer(c, c)
				if fr.WriteSettings() != nil {
					return
				}
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				respond := func(id uint32) error {
					hb.Reset()
					_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					_ = enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "2"})
					if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
						return err
					}
					return fr.WriteData(id, true, []byte("ok"))
				}
				refused := map[uint32]bool{}
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
						}
					case *http2.PingFrame:
						if !f.IsAck() {
							_ = fr.WritePing(true, f.Data)
						}
					case *http2.HeadersFrame:
						if seen.Add(1) <= refuse {
							refused[f.StreamID] = true
							_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
						} else if f.StreamEnded() {
							_ = respond(f.StreamID)
						}
					case *http2.DataFrame:
						if n := len(f.Data()); n > 0 {
							_ = fr.WriteWindowUpdate(0, uint32(n))
						}
						if f.StreamEnded() && !refused[f.StreamID] {
							_ = respond(f.StreamID)
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), seen
}

// TestRetryRefusedStream: an HTTP/2 upstream's REFUSED_STREAM is retried
// under refused-stream, and answered 503 "remote refused stream reset"
// (flag UR) otherwise.
func TestRetryRefusedStream(t *testing.T) {
	for _, cl := range retryClients() {
		t.Run(cl.name, func(t *testing.T) {
			retried, seenR := startRefusingH2(t, 1)
			plain, seenP := startRefusingH2(t, 1)
			x := startXDS(t, "", nil)
			addr := freeAddr(t)
			x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*",
				retryRoute("/r/", "r", 5*time.Second, &routev3.RetryPolicy{RetryOn: "refused-stream", RetryBackOff: fastBackoff()}),
				retryRoute("/p/", "p", 5*time.Second, &routev3.RetryPolicy{RetryOn: "connect-failure", RetryBackOff: fastBackoff()}))),
				edsCluster(t, "r", true, nil), cla("r", retried), edsCluster(t, "p", true, nil), cla("p", plain))
			startProxy(t, x.sock)
			x.waitApplied()
			waitServing(t, "http://"+addr+"/", "")
			code, _, body := post(t, cl.client, "http://"+addr+"/r/x", "some body", false, nil)
			if code != 200 || body != "ok" || seenR.Load() != 2 {
				t.Fatalf("refused-stream: %d %q after %d streams, want 200 after 2", code, body, seenR.Load())
			}
			code, _, body = post(t, cl.client, "http://"+addr+"/p/x", "some body", false, nil)
			want := "upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset"
			if code != 503 || body != want || seenP.Load() != 1 {
				t.Fatalf("without refused-stream: %d %q after %d streams, want 503 %q after 1", code, body, seenP.Load(), want)
			}
		})
	}
}
