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

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// closingBackend is an HTTP/1.1 server on raw sockets that ends its
// keep-alive connections the ways real servers do. Every response body is
// "conn=<n>", n counting the connections it accepted.
type closingBackend struct {
	addr  string
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
}

func startClosingBackend(t *testing.T) *closingBackend {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	b := &closingBackend{addr: ln.Addr().String()}
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.open {
			c.Close()
		}
		b.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.open = append(b.open, c)
			b.mu.Unlock()
			go b.serve(c, b.conns.Add(1))
		}
	}()
	return b
}

func (b *closingBackend) serve(c net.Conn, id int64) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			c.Close()
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		body := fmt.Sprintf("conn=%d", id)
		head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		// The route prefixes select timeouts; the rest says what to do.
		path := strings.TrimPrefix(strings.TrimPrefix(req.URL.Path, "/short"), "/none")
		if ms, ok := strings.CutPrefix(path, "/slow/"); ok {
			d, _ := strconv.Atoi(ms)
			time.Sleep(time.Duration(d) * time.Millisecond)
		}
		if path == "/pieces" {
			_, _ = io.WriteString(c, head[:10])
			time.Sleep(30 * time.Millisecond)
			_, _ = io.WriteString(c, head[10:]+body)
		} else {
			_, _ = io.WriteString(c, head+body)
		}
		switch path {
		case "/close-now":
			// FIN right behind the response, no "connection: close".
			c.Close()
			return
		case "/close-later":
			time.Sleep(50 * time.Millisecond)
			c.Close()
			return
		case "/linger":
			// Half-close the idle connection and keep reading (as a
			// server's lingering close does): requests sent on it are
			// swallowed without an answer or a reset.
			time.Sleep(50 * time.Millisecond)
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
			c.Close()
			return
		}
	}
}

// TestUpstreamConnectionEnds checks how the proxy's pooled upstream
// connections behave when the server ends them, and that waiting for a
// response keeps honouring the route timeout.
func TestUpstreamConnectionEnds(t *testing.T) {
	be := startClosingBackend(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	timeoutRoute := func(prefix string, d time.Duration) *routev3.Route {
		return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "b"},
				Timeout: durationpb.New(d)}}}
	}
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*",
			timeoutRoute("/short/", 300*time.Millisecond),
			timeoutRoute("/none/", 0),
			timeoutRoute("/", 10*time.Second))),
		edsCluster(t, "b", false, nil), cla("b", be.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "h")

	c, br := dialRaw(t, addr)
	get := func(t *testing.T, path string) (int, string) {
		t.Helper()
		send(t, c, "GET "+path+" HTTP/1.1\r\nHost: h\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	conn := func(t *testing.T, path string) string {
		t.Helper()
		status, body := get(t, path)
		if status != 200 || !strings.HasPrefix(body, "conn=") {
			t.Fatalf("GET %s = %d %q", path, status, body)
		}
		return body
	}

	first := conn(t, "/a")
	if again := conn(t, "/b"); again != first {
		t.Fatalf("keep-alive upstream connection not reused: %s then %s", first, again)
	}
	t.Run("closed right after a response", func(t *testing.T) {
		closing := conn(t, "/close-now")
		if next := conn(t, "/after"); next == closing {
			t.Fatalf("request after the server's close went to the closed connection %s", next)
		}
	})
	t.Run("closed while idle", func(t *testing.T) {
		closing := conn(t, "/close-later")
		time.Sleep(150 * time.Millisecond)
		if next := conn(t, "/after"); next == closing {
			t.Fatalf("request after the server's close went to the closed connection %s", next)
		}
	})
	t.Run("half-closed while idle", func(t *testing.T) {
		// The proxy may only learn of the FIN by reading: the request it
		// sends is swallowed, so on a route without a timeout it would
		// wait forever unless it notices the close and replays.
		lingering := conn(t, "/none/linger")
		time.Sleep(150 * time.Millisecond)
		if next := conn(t, "/none/after"); next == lingering {
			t.Fatalf("answer from the half-closed connection %s", next)
		}
	})
	t.Run("reused after an idle second", func(t *testing.T) {
		before := conn(t, "/a")
		time.Sleep(1200 * time.Millisecond)
		if after := conn(t, "/b"); after != before {
			t.Fatalf("idle connection %s not reused after the probe: got %s", before, after)
		}
	})
	t.Run("response slower than the close check", func(t *testing.T) {
		conn(t, "/slow/1300")
		conn(t, "/none/slow/1300")
	})
	t.Run("response head in pieces", func(t *testing.T) {
		conn(t, "/pieces")
		conn(t, "/short/pieces")
	})
	t.Run("route timeout", func(t *testing.T) {
		if status, body := get(t, "/short/slow/1000"); status != 504 || body != "upstream request timeout" {
			t.Fatalf("slow response on a 300 ms route: %d %q", status, body)
		}
		conn(t, "/a")
	})
}
