package proxylib_test

import (
	"bufio"
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
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
)

// countingBackend is an HTTP/1.1 keep-alive server on raw sockets that
// counts the connections it accepted and those still open. A path
// ".../slow/<ms>" answers after that delay.
type countingBackend struct {
	addr     string
	accepted atomic.Int64
	open     atomic.Int64
}

func startCountingBackend(t *testing.T) *countingBackend {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{addr: ln.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepted.Add(1)
			b.open.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer b.open.Add(-1)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, ms, ok := strings.Cut(req.URL.Path, "/slow/"); ok {
						d, _ := strconv.Atoi(ms)
						time.Sleep(time.Duration(d) * time.Millisecond)
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	return b
}

// thresholds returns a cluster modifier setting DEFAULT circuit breakers
// (0 leaves a threshold unset).
func thresholds(maxConns, maxPending, maxRequests uint32) func(*clusterv3.Cluster) {
	opt := func(v uint32) *wrapperspb.UInt32Value {
		if v == 0 {
			return nil
		}
		return wrapperspb.UInt32(v)
	}
	return func(c *clusterv3.Cluster) {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: opt(maxConns), MaxPendingRequests: opt(maxPending), MaxRequests: opt(maxRequests),
		}}}
	}
}

// breakerProxy starts a proxy with an admin endpoint in front of be, its
// cluster "b" modified by mod, and waits until it serves.
func breakerProxy(t *testing.T, be string, mod func(*clusterv3.Cluster)) (addr, adminAddr string) {
	x := startXDS(t, "", nil)
	addr, adminAddr = freeAddr(t), freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "b"))),
		edsCluster(t, "b", false, mod), cla("b", be))
	startProxy(t, x.sock, proxylib.WithAdminAddress(adminAddr))
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + addr + "/warm")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the cluster to serve")
	waitQuiet(t, adminAddr)
	return addr, adminAddr
}

// waitQuiet waits until cluster "b" has no request in flight: a response
// reaches the client a moment before its request stops counting.
func waitQuiet(t *testing.T, adminAddr string) {
	t.Helper()
	waitFor(t, func() bool { return clusterStat(t, adminAddr, "upstream_rq_active") == 0 }, "no request in flight")
}

// clusterStat reads one statistic of cluster "b" from the admin endpoint.
func clusterStat(t *testing.T, adminAddr, name string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "cluster.b."+name+": "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatalf("no cluster.b.%s in /stats:\n%s", name, b)
	return 0
}

type result struct {
	status     int
	body       string
	overloaded string
	err        error
}

// concurrently sends n GETs of path at once through clients[i%len].
func concurrently(addr, path string, n int, clients ...*http.Client) []result {
	out := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := clients[i%len(clients)].Get("http://" + addr + path)
			if err != nil {
				out[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			out[i] = result{status: resp.StatusCode, body: string(b), overloaded: resp.Header.Get("X-Envoy-Overloaded")}
		}()
	}
	wg.Wait()
	return out
}

// TestCircuitBreakerBoundsUpstreamConnections: three HTTP/2 client
// connections with many concurrent streams each used to open one upstream
// connection per stream. With max_connections the cluster opens at most
// that many; the other requests wait for a connection (they are pending,
// within max_pending_requests) and all succeed.
func TestCircuitBreakerBoundsUpstreamConnections(t *testing.T) {
	be := startCountingBackend(t)
	const maxConns = 8
	addr, adminAddr := breakerProxy(t, be.addr, thresholds(maxConns, 0, 0))
	before := be.accepted.Load()
	res := concurrently(addr, "/slow/100", 300, h2cClient(), h2cClient(), h2cClient())
	for i, r := range res {
		if r.err != nil || r.status != 200 || r.body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, r.status, r.body, r.err)
		}
	}
	if n := be.accepted.Load(); n > maxConns || n-before > maxConns {
		t.Fatalf("the backend accepted %d connections (%d before the burst); max_connections is %d", n, before, maxConns)
	}
	if n := clusterStat(t, adminAddr, "upstream_cx_overflow"); n == 0 {
		t.Errorf("upstream_cx_overflow = 0 after requests waited for connections")
	}
	if n := clusterStat(t, adminAddr, "upstream_rq_pending_overflow"); n != 0 {
		t.Errorf("upstream_rq_pending_overflow = %d, want 0", n)
	}
	if n := clusterStat(t, adminAddr, "upstream_cx_active"); n > maxConns {
		t.Errorf("upstream_cx_active = %d > %d", n, maxConns)
	}
}

const overflowBody = "upstream connect error or disconnect/reset before headers. reset reason: overflow"

// checkOverflow checks that every result is a success or Envoy's overflow
// reply, and returns how many of each.
func checkOverflow(t *testing.T, res []result) (ok, overflow int) {
	t.Helper()
	for i, r := range res {
		switch {
		case r.err != nil:
			t.Fatalf("request %d: %v", i, r.err)
		case r.status == 200 && r.body == "ok" && r.overloaded == "":
			ok++
		case r.status == 503 && r.body == overflowBody && r.overloaded == "true":
			overflow++
		default:
			t.Fatalf("request %d: %d %q x-envoy-overloaded %q", i, r.status, r.body, r.overloaded)
		}
	}
	return ok, overflow
}

// TestCircuitBreakerPendingOverflow: with one connection allowed and two
// requests allowed to wait for it, a burst gets Envoy's overflow reply for
// the rest, counted as upstream_rq_pending_overflow.
func TestCircuitBreakerPendingOverflow(t *testing.T) {
	be := startCountingBackend(t)
	addr, adminAddr := breakerProxy(t, be.addr, thresholds(1, 2, 0))
	var clients []*http.Client
	for range 10 {
		clients = append(clients, client())
	}
	res := concurrently(addr, "/slow/800", 10, clients...)
	ok, overflow := checkOverflow(t, res)
	if ok == 0 || overflow == 0 || ok > 4 {
		t.Fatalf("%d succeeded, %d overflowed; want a connection and at most 3 waiting", ok, overflow)
	}
	if n := be.accepted.Load(); n != 1 {
		t.Fatalf("the backend accepted %d connections, max_connections is 1", n)
	}
	if n := clusterStat(t, adminAddr, "upstream_rq_pending_overflow"); n != overflow {
		t.Fatalf("upstream_rq_pending_overflow = %d, %d requests overflowed", n, overflow)
	}
	// The breaker let go: the next requests succeed.
	waitQuiet(t, adminAddr)
	if _, o := checkOverflow(t, concurrently(addr, "/after", 2, clients...)); o != 0 {
		t.Fatalf("%d overflowed after the burst", o)
	}
}

// TestCircuitBreakerMaxRequests: beyond max_requests in flight, requests
// get the overflow reply at once, from HTTP/1.1 and HTTP/2 clients.
func TestCircuitBreakerMaxRequests(t *testing.T) {
	be := startCountingBackend(t)
	addr, adminAddr := breakerProxy(t, be.addr, thresholds(0, 0, 2))
	for _, tc := range []struct {
		name    string
		clients []*http.Client
	}{
		{"http1", []*http.Client{client(), client(), client(), client(), client(), client()}},
		{"http2", []*http.Client{h2cClient()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waitQuiet(t, adminAddr)
			before := clusterStat(t, adminAddr, "upstream_rq_pending_overflow")
			ok, overflow := checkOverflow(t, concurrently(addr, "/slow/1000", 6, tc.clients...))
			if ok != 2 || overflow != 4 {
				t.Fatalf("%d succeeded, %d overflowed; want 2 and 4", ok, overflow)
			}
			if n := clusterStat(t, adminAddr, "upstream_rq_pending_overflow") - before; n != 4 {
				t.Fatalf("upstream_rq_pending_overflow grew by %d, want 4", n)
			}
		})
	}
}

// TestUpstreamIdleTimeout: a pooled connection without requests for the
// cluster's idle_timeout is closed, without any further traffic.
func TestUpstreamIdleTimeout(t *testing.T) {
	be := startCountingBackend(t)
	addr, _ := breakerProxy(t, be.addr, func(c *clusterv3.Cluster) {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": anyOf(t, &httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(200 * time.Millisecond)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}}}},
			}),
		}
	})
	c := client()
	for i := range 3 {
		if status, _, body := do(t, c, "GET", "http://"+addr+fmt.Sprintf("/r%d", i), "h", nil, nil); status != 200 || body != "ok" {
			t.Fatalf("GET: %d %q", status, body)
		}
	}
	if n := be.open.Load(); n == 0 {
		t.Fatal("no upstream connection kept open right after the requests")
	}
	waitFor(t, func() bool { return be.open.Load() == 0 }, "the idle upstream connection to close")
	if status, _, body := do(t, c, "GET", "http://"+addr+"/again", "h", nil, nil); status != 200 || body != "ok" {
		t.Fatalf("GET after the idle timeout: %d %q", status, body)
	}
}
