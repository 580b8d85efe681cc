package proxylib_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// timeoutBackend answers by the last path segment: "slow" holds the
// response head for 2 s, "stream" sends the head at once and the body
// after 600 ms, "pause" the same after 1200 ms (longer than the proxy's
// upstream FIN check), anything else answers at once with the
// x-envoy-expected-rq-timeout-ms it received.
func timeoutBackend(w http.ResponseWriter, r *http.Request) {
	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	switch r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
	case "slow":
		if wait(2 * time.Second) {
			_, _ = io.WriteString(w, "too late")
		}
	case "stream", "pause":
		d := 600 * time.Millisecond
		if strings.HasSuffix(r.URL.Path, "pause") {
			d = 1200 * time.Millisecond
		}
		w.Header().Set("Content-Length", "8")
		_, _ = io.WriteString(w, "head")
		w.(http.Flusher).Flush()
		if wait(d) {
			_, _ = io.WriteString(w, "tail")
		}
	default:
		_, _ = io.WriteString(w, "expected="+r.Header.Get("X-Envoy-Expected-Rq-Timeout-Ms"))
	}
}

// TestPerTryTimeout checks retry_policy.per_try_timeout on every pairing
// of downstream and upstream protocol: it bounds the upstream attempt
// until the response starts (504 "upstream request timeout" long before
// the route timeout), also without a route timeout, and no longer applies
// once the response has started; a response pausing after its head for
// longer than the exchange's FIN check is relayed whole.
func TestPerTryTimeout(t *testing.T) {
	h1 := startBackend(t, "h1", http.HandlerFunc(timeoutBackend))
	h2 := startBackend(t, "h2", h2c.NewHandler(http.HandlerFunc(timeoutBackend), &http2.Server{}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	route := func(prefix, cluster string, timeout, perTry time.Duration) *routev3.Route {
		ra := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}, Timeout: durationpb.New(timeout)}
		if perTry > 0 {
			ra.RetryPolicy = &routev3.RetryPolicy{PerTryTimeout: durationpb.New(perTry)}
		}
		return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
			Action: &routev3.Route_Route{Route: ra}}
	}
	var routes []*routev3.Route
	for _, c := range []string{"h1", "h2"} {
		routes = append(routes,
			route("/"+c+"/both/", c, 5*time.Second, 250*time.Millisecond),
			route("/"+c+"/try/", c, 0, 250*time.Millisecond),
			// Not below the route timeout: ignored, as Envoy does.
			route("/"+c+"/long-try/", c, 300*time.Millisecond, time.Second),
			route("/"+c+"/none/", c, 0, 0))
	}
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...)),
		edsCluster(t, "h1", false, nil), cla("h1", h1.addr), edsCluster(t, "h2", true, nil), cla("h2", h2.addr))
	startProxy(t, x.sock)
	base := "http://" + addr
	waitServing(t, base+"/h1/none/x", "x")

	for _, down := range []struct {
		name string
		c    *http.Client
	}{{"http1", client()}, {"h2c", h2cClient()}} {
		for _, up := range []string{"h1", "h2"} {
			t.Run(down.name+" to "+up, func(t *testing.T) {
				t.Parallel()
				get := func(path string) (int, string, time.Duration) {
					start := time.Now()
					status, _, body := do(t, down.c, "GET", base+"/"+up+path, "x", nil, nil)
					return status, body, time.Since(start)
				}
				for _, tc := range []struct {
					path       string
					status     int
					body       string
					minT, maxT time.Duration
				}{
					{"/both/fast", 200, "expected=250", 0, time.Second},
					{"/try/fast", 200, "expected=250", 0, time.Second},
					{"/long-try/fast", 200, "expected=300", 0, time.Second},
					{"/none/fast", 200, "expected=", 0, time.Second},
					// The per-try timeout fires, not the 5 s route timeout
					// nor the backend's 2 s.
					{"/both/slow", 504, "upstream request timeout", 250 * time.Millisecond, 1500 * time.Millisecond},
					{"/try/slow", 504, "upstream request timeout", 250 * time.Millisecond, 1500 * time.Millisecond},
					{"/long-try/slow", 504, "upstream request timeout", 300 * time.Millisecond, 1500 * time.Millisecond},
					// The response started within the per-try timeout: its
					// body may take longer.
					{"/try/stream", 200, "headtail", 600 * time.Millisecond, 3 * time.Second},
					{"/none/pause", 200, "headtail", 1200 * time.Millisecond, 4 * time.Second},
				} {
					status, body, took := get(tc.path)
					if status != tc.status || body != tc.body || took < tc.minT || took > tc.maxT {
						t.Errorf("%s: %d %q after %v, want %d %q after %v to %v", tc.path, status, body, took.Round(time.Millisecond),
							tc.status, tc.body, tc.minT, tc.maxT)
					}
				}
			})
		}
	}
}

// stuckEndpoint returns the address of a listener whose accept queue is
// full: the kernel drops every further SYN, so a connect to it hangs until
// the dialer gives up.
func stuckEndpoint(t *testing.T) string {
	t.Helper()
	addr, _ := stuckSocket(t)
	return addr
}

// stuckSocket is stuckEndpoint's, with the listening socket.
func stuckSocket(t *testing.T) (string, int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Nothing accepts: connections fill the queue until one hangs.
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err != nil {
			return addr, fd
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("connections to %s with a backlog of 0 never hang", addr)
	return "", 0
}

// slowConnectEndpoint returns the address of an endpoint whose accept
// queue is full until a connect to it is seen waiting (SYN_SENT): handler
// is then served, which drains the queue, so that connect completes when
// its SYN is sent again (the kernel's first retransmission, about 1 s
// after the first).
func slowConnectEndpoint(t *testing.T, handler http.Handler) string {
	t.Helper()
	addr, fd := stuckSocket(t)
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "stuck"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	srv := &http.Server{Handler: handler}
	t.Cleanup(func() { _ = srv.Close(); _ = ln.Close() })
	go func() {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !synSent(port); {
			time.Sleep(5 * time.Millisecond) // polls the kernel's socket table
		}
		_ = srv.Serve(ln)
	}()
	return addr
}

// synSent reports an IPv4 TCP socket connecting to 127.0.0.1:port (decimal)
// whose SYN is unanswered.
func synSent(port string) bool {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	p, _ := strconv.Atoi(port)
	want := fmt.Sprintf("0100007F:%04X", p)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == want && f[3] == "02" {
			return true
		}
	}
	return false
}

// TestRouteTimeoutFromRequestEnd: a request whose body came with its head
// is complete from its start, so its route timer covers the connect that
// follows and the wait for the response, as Envoy's does: a connect taking
// about 1 s and a response taking 1 s more end in 504 "upstream request
// timeout" when the 1.5 s route timeout passes, not in the response (the
// route timer started again once the body was sent). On HTTP/1.1 and
// HTTP/2 upstreams, with and without a retry policy.
func TestRouteTimeoutFromRequestEnd(t *testing.T) {
	late := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-time.After(time.Second):
			_, _ = io.WriteString(w, "late")
		case <-r.Context().Done():
		}
	})
	ok := startBackend(t, "ok", http.HandlerFunc(timeoutBackend))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	route := func(prefix, cluster string, rp *routev3.RetryPolicy) *routev3.Route {
		return timedRoute(prefix, cluster, 1500*time.Millisecond, rp)
	}
	routes := []*routev3.Route{route("/ok/", "ok", nil)}
	res := []proto.Message{edsCluster(t, "ok", false, nil), cla("ok", ok.addr)}
	var cases []string
	for _, up := range []string{"h1", "h2"} {
		for _, path := range []string{"plain", "retry"} {
			name := up + "-" + path
			var rp *routev3.RetryPolicy
			if path == "retry" {
				rp = &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: fastBackoff()}
			}
			h := http.Handler(late)
			if up == "h2" {
				h = h2c.NewHandler(late, &http2.Server{})
			}
			routes = append(routes, route("/"+name+"/", name, rp))
			res = append(res, edsCluster(t, name, up == "h2", longConnect), cla(name, slowConnectEndpoint(t, h)))
			cases = append(cases, name)
		}
	}
	x.set(append([]proto.Message{httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...))}, res...)...)
	startProxy(t, x.sock)
	base := "http://" + addr
	waitServing(t, base+"/ok/x", "x")
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			code, _, body := do(t, client(), "POST", base+"/"+name+"/x", "x", nil, strings.NewReader("payload"))
			took := time.Since(start)
			if code != 504 || body != "upstream request timeout" || took < 1500*time.Millisecond || took > 4*time.Second {
				t.Fatalf("%d %q after %v, want 504 \"upstream request timeout\" after the route timeout (1.5s) from the request's end, which covers the connect",
					code, body, took.Round(time.Millisecond))
			}
		})
	}
}

// TestRouteTimeoutCoversConnect: the route timeout runs while the proxy
// connects to the upstream, as Envoy's does. An endpoint that never
// completes the connect gets 504 "upstream request timeout" when the
// route timeout passes, shorter than connect_timeout, on every pairing of
// downstream and upstream protocol, with and without a retry policy.
func TestRouteTimeoutCoversConnect(t *testing.T) {
	stuck := stuckEndpoint(t)
	ok := startBackend(t, "ok", http.HandlerFunc(timeoutBackend))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	route := func(prefix, cluster string, rp *routev3.RetryPolicy) *routev3.Route {
		return timedRoute(prefix, cluster, 300*time.Millisecond, rp)
	}
	routes := []*routev3.Route{route("/ok/", "ok", nil)}
	for _, c := range []string{"h1", "h2"} {
		routes = append(routes, route("/"+c+"/plain/", c, nil),
			route("/"+c+"/retry/", c, &routev3.RetryPolicy{RetryOn: "5xx", RetryBackOff: fastBackoff()}))
	}
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...)),
		edsCluster(t, "ok", false, nil), cla("ok", ok.addr),
		edsCluster(t, "h1", false, longConnect), cla("h1", stuck), edsCluster(t, "h2", true, longConnect), cla("h2", stuck))
	startProxy(t, x.sock)
	base := "http://" + addr
	waitServing(t, base+"/ok/x", "x")
	for _, down := range retryClients() {
		for _, up := range []string{"h1", "h2"} {
			for _, path := range []string{"plain", "retry"} {
				t.Run(down.name+" to "+up+" "+path, func(t *testing.T) {
					start := time.Now()
					code, _, body := do(t, down.client, "GET", base+"/"+up+"/"+path+"/x", "x", nil, nil)
					if code != 504 || body != "upstream request timeout" {
						t.Fatalf("%d %q after %v, want 504 \"upstream request timeout\" after the route timeout (300ms), not a connect failure after connect_timeout (5s)",
							code, body, time.Since(start).Round(time.Millisecond))
					}
				})
			}
		}
	}
}

// TestPerTryTimeoutAfterConnect: an attempt's per-try timeout starts once
// it has a connection and the request is complete, as Envoy's: a connect
// taking about 1 s does not use up a 700 ms per-try timeout, and the
// response that follows at once is relayed. Every pairing of downstream
// and upstream protocol.
func TestPerTryTimeoutAfterConnect(t *testing.T) {
	ok := startBackend(t, "ok", http.HandlerFunc(timeoutBackend))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	route := func(prefix, cluster string) *routev3.Route {
		return timedRoute(prefix, cluster, 5*time.Second, &routev3.RetryPolicy{PerTryTimeout: durationpb.New(700 * time.Millisecond)})
	}
	routes := []*routev3.Route{route("/ok/", "ok")}
	res := []proto.Message{edsCluster(t, "ok", false, nil), cla("ok", ok.addr)}
	for _, down := range retryClients() {
		for _, up := range []string{"h1", "h2"} {
			name := down.name + "-" + up
			h := http.Handler(http.HandlerFunc(timeoutBackend))
			if up == "h2" {
				h = h2c.NewHandler(h, &http2.Server{})
			}
			routes = append(routes, route("/"+name+"/", name))
			res = append(res, edsCluster(t, name, up == "h2", longConnect), cla(name, slowConnectEndpoint(t, h)))
		}
	}
	x.set(append([]proto.Message{httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", routes...))}, res...)...)
	startProxy(t, x.sock)
	base := "http://" + addr
	waitServing(t, base+"/ok/x", "x")
	for _, down := range retryClients() {
		for _, up := range []string{"h1", "h2"} {
			name := down.name + "-" + up
			t.Run(name, func(t *testing.T) {
				start := time.Now()
				code, _, body := do(t, down.client, "GET", base+"/"+name+"/fast", "x", nil, nil)
				if took := time.Since(start); code != 200 || body != "expected=700" || took < 700*time.Millisecond {
					t.Fatalf("%d %q after %v, want 200 \"expected=700\" after the connect (about 1s): the per-try timeout (700ms) starts once connected",
						code, body, took.Round(time.Millisecond))
				}
			})
		}
	}
}

// timedRoute routes the prefix to cluster with a route timeout and retry
// policy rp (nil: none).
func timedRoute(prefix, cluster string, timeout time.Duration, rp *routev3.RetryPolicy) *routev3.Route {
	return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout: durationpb.New(timeout), RetryPolicy: rp}}}
}

// longConnect gives a cluster a connect timeout (5 s) longer than the
// route timeouts the tests check, so only the route timer can end a dial.
func longConnect(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(5 * time.Second) }
