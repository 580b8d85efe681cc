package proxylib_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

// TestOriginalSrcEDSCluster: a plain (not transparent) listener with
// original_src in front of an EDS cluster, as a CiliumEnvoyConfig listener
// reached through a Service redirect is. The backend sees each client's
// own address, on connections that carry the filter's mark; two requests
// of one HTTP/2 downstream connection in flight together take two HTTP/1.1
// upstream connections from the same client address, which must not
// collide (the source port is the kernel's choice); and a connection
// opened for one client is never reused for another.
func TestOriginalSrcEDSCluster(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	const (
		listenIP  = "10.99.3.1"
		backendIP = "10.99.3.7"
	)
	mark := origSrcAddrs(t, listenIP, backendIP)

	// The backend answers with the address the connection came from;
	// /pair holds the answer until two requests are in flight.
	var mu sync.Mutex
	pair := 0
	both := make(chan struct{})
	ln, err := net.Listen("tcp", backendIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/pair" {
			mu.Lock()
			pair++
			if pair == 2 {
				close(both)
			}
			mu.Unlock()
			select {
			case <-both:
			case <-time.After(10 * time.Second):
				http.Error(w, "no second request in flight", 504)
				return
			}
		}
		_, _ = io.WriteString(w, r.RemoteAddr)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	x := startXDS(t, "", nil)
	src := anyOf(t, &origsrcv3.OriginalSrc{Mark: mark})
	l := httpListener(t, "cec/default/echo/listener", listenIP+":8000", "routes", nil)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_src",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: src}}}
	x.set(l, routeConfig("routes", vh("all", "*", prefixRoute("/", "echo"))), edsCluster(t, "echo", false, nil),
		cla("echo", backendIP+":8080"))
	startProxy(t, x.sock)
	x.waitApplied()
	if n := x.nackMessages(); len(n) > 0 {
		t.Fatalf("NACKed: %v", n)
	}

	seen := func(c *http.Client, path string) netip.AddrPort {
		t.Helper()
		resp, err := c.Get("http://" + listenIP + ":8000" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		ap, err := netip.ParseAddrPort(string(b))
		if err != nil {
			t.Fatalf("backend answered %q", b)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	tie, xw := httpFrom(tiefighter), httpFrom(xwing)
	a := seen(tie, "/")
	if a.Addr().String() != tiefighter {
		t.Fatalf("backend saw %s for %s", a, tiefighter)
	}
	b := seen(xw, "/")
	if b.Addr().String() != xwing {
		t.Fatalf("backend saw %s for %s: a connection opened for another client was reused", b, xwing)
	}
	if a2 := seen(tie, "/"); a2.Addr().String() != tiefighter {
		t.Fatalf("backend saw %s for %s the second time", a2, tiefighter)
	}

	// One HTTP/2 downstream connection, two requests in flight: two
	// HTTP/1.1 upstream connections from the client's address.
	var conns sync.Map
	h2 := &http.Client{Timeout: 15 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			c, err := dialFrom(tiefighter).DialContext(ctx, network, addr)
			if err == nil {
				conns.Store(c.LocalAddr().String(), true)
			}
			return c, err
		}}}
	var wg sync.WaitGroup
	got := make([]netip.AddrPort, 2)
	errs := make([]error, 2)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h2.Get("http://" + listenIP + ":8000/pair")
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				errs[i] = fmt.Errorf("%d %s", resp.StatusCode, body)
				return
			}
			got[i], errs[i] = netip.ParseAddrPort(string(body))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("request over the shared downstream connection: %v", err)
		}
	}
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("the client opened %d connections, want one", n)
	}
	for _, g := range got {
		if g.Addr().Unmap().String() != tiefighter {
			t.Fatalf("backend saw %s, want %s", g, tiefighter)
		}
	}
	if got[0].Port() == got[1].Port() {
		t.Fatalf("both upstream connections came from %s", got[0])
	}
}

// TestOriginalSrcH2ClusterPerClient: original_src in front of an HTTP/2
// EDS cluster (a GRPCRoute's h2c cluster behind a GAMMA listener is one).
// HTTP/2 multiplexes every request onto one upstream connection, so a
// pool shared between clients would carry one client's requests on a
// connection bound to another's address. Interleaved requests of two
// clients must each reach the backend from their own client's address,
// on exactly one upstream connection per client.
func TestOriginalSrcH2ClusterPerClient(t *testing.T) {
	if !inPolicyNetns(t) {
		return
	}
	const (
		listenIP  = "10.99.3.1"
		backendIP = "10.99.3.8"
	)
	mark := origSrcAddrs(t, listenIP, backendIP)

	var mu sync.Mutex
	upstream := map[string]bool{} // the connections the backend accepted
	ln, err := net.Listen("tcp", backendIP+":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "not HTTP/2", http.StatusHTTPVersionNotSupported)
			return
		}
		_, _ = io.WriteString(w, r.RemoteAddr)
	}), &http2.Server{}), ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			upstream[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	x := startXDS(t, "", nil)
	src := anyOf(t, &origsrcv3.OriginalSrc{Mark: mark})
	l := httpListener(t, "mesh/default/grpc/9000", listenIP+":8000", "routes", nil)
	l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.original_src",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: src}}}
	x.set(l, routeConfig("routes", vh("all", "*", prefixRoute("/", "echo"))), edsCluster(t, "echo", true, nil),
		cla("echo", backendIP+":8080"))
	startProxy(t, x.sock)
	x.waitApplied()
	if n := x.nackMessages(); len(n) > 0 {
		t.Fatalf("NACKed: %v", n)
	}

	clients := map[string]*http.Client{tiefighter: httpFrom(tiefighter), xwing: httpFrom(xwing)}
	for i := range 6 {
		from := []string{tiefighter, xwing}[i%2]
		resp, err := clients[from].Get("http://" + listenIP + ":8000/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d from %s: %d %s", i, from, resp.StatusCode, b)
		}
		ap, err := netip.ParseAddrPort(string(b))
		if err != nil {
			t.Fatalf("backend answered %q", b)
		}
		if got := ap.Addr().Unmap().String(); got != from {
			t.Fatalf("request %d from %s reached the backend from %s: it rode a connection opened for another client", i, from, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(upstream) != 2 {
		t.Fatalf("the backend accepted %d connections (%v), want one per client", len(upstream), upstream)
	}
}

// origSrcAddrs puts the listener's and the backend's addresses on lo and
// refuses upstream connections to the backend that lack the proxy mark
// (the mark is what makes the datapath steer replies to the proxy); it
// returns the mark.
func origSrcAddrs(t *testing.T, listenIP, backendIP string) uint32 {
	t.Helper()
	for _, a := range []string{listenIP, backendIP} {
		run(t, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	mark, _ := transparent.UpstreamMark(0)
	run(t, "iptables", "-A", "OUTPUT", "-p", "tcp", "--syn", "-d", backendIP, "-m", "mark", "!", "--mark",
		fmt.Sprintf("0x%x", mark), "-j", "REJECT", "--reject-with", "tcp-reset")
	return mark
}
