package proxylib_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// strayBackend is an HTTP/1.1 server on raw sockets that answers every
// request with "conn=<n> req=<path>" and, depending on the path, writes
// bytes nobody asked for on the same keep-alive connection: an injected
// response whose body is "INJECTED", either right behind the response or
// after a delay while the proxy holds the connection idle.
type strayBackend struct {
	addr  string
	conns atomic.Int64
	// strayed gets a value each time stray bytes were written on their
	// own, after the response: a test waits for it so its next request
	// does not race the stray bytes (no proxy can tell which response bytes
	// that arrive while a request is on its way belong to it).
	strayed chan struct{}
	mu      sync.Mutex
	open    []net.Conn
}

const injected = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: 1\r\n\r\nINJECTED"

func startStrayBackend(t *testing.T) *strayBackend {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	b := &strayBackend{addr: ln.Addr().String(), strayed: make(chan struct{}, 16)}
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

func (b *strayBackend) serve(c net.Conn, id int64) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		path := req.URL.Path
		body := fmt.Sprintf("conn=%d req=%s", id, path)
		if strings.HasSuffix(path, "/big") {
			// A body larger than the proxy's read buffer, so the response
			// takes several reads and the stray bytes come after the last.
			body += strings.Repeat(".", 40<<10)
		}
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		switch {
		case strings.HasPrefix(path, "/queued"):
			// The stray response in the same write: it is in the proxy's
			// receive queue when it reads the real one.
			_, _ = io.WriteString(c, resp+injected)
		case strings.HasPrefix(path, "/behind"):
			// A separate segment just behind the response.
			_, _ = io.WriteString(c, resp)
			time.Sleep(5 * time.Millisecond)
			_, _ = io.WriteString(c, injected)
			b.strayed <- struct{}{}
		case strings.HasPrefix(path, "/idle"):
			// While the connection sits idle in the proxy's pool.
			_, _ = io.WriteString(c, resp)
			time.Sleep(50 * time.Millisecond)
			_, _ = io.WriteString(c, injected)
			b.strayed <- struct{}{}
		case strings.HasPrefix(path, "/byte"):
			// A single stray byte while idle.
			_, _ = io.WriteString(c, resp)
			time.Sleep(50 * time.Millisecond)
			_, _ = io.WriteString(c, "H")
			b.strayed <- struct{}{}
		default:
			_, _ = io.WriteString(c, resp)
		}
	}
}

// TestUpstreamStrayBytesNeverReachAnotherRequest reproduces response
// desynchronisation on pooled upstream connections: a backend that writes
// more than the response it was asked for (a second response, or a byte)
// must not get those bytes delivered to the next request on that
// connection, whichever client sends it. The connection is closed instead,
// and the next request goes out on a fresh connection and succeeds.
func TestUpstreamStrayBytesNeverReachAnotherRequest(t *testing.T) {
	be := startStrayBackend(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "b"))),
		edsCluster(t, "b", false, nil), cla("b", be.addr))
	startProxy(t, x.sock)
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + addr + "/warm")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the cluster to serve")

	h1a, h1b := client(), client()
	h2a, h2b := h2cClient(), h2cClient()
	get := func(t *testing.T, c *http.Client, path string) string {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body := string(b)
		if resp.StatusCode != 200 || resp.Header.Get("X-Injected") != "" || !strings.Contains(body, " req="+path) {
			t.Fatalf("GET %s = %d %q (x-injected %q): not its own response", path, resp.StatusCode, trim(body), resp.Header.Get("X-Injected"))
		}
		return body
	}
	cases := []struct {
		name string
		path string
		wait time.Duration // between the stray request and the next ones
	}{
		{"second response queued behind the response", "/queued", 0},
		{"second response queued behind a long response", "/queued/big", 0},
		{"second response right behind the response", "/behind", 20 * time.Millisecond},
		{"second response right behind a long response", "/behind/big", 20 * time.Millisecond},
		{"second response while idle", "/idle", 150 * time.Millisecond},
		{"one byte while idle", "/byte", 150 * time.Millisecond},
	}
	clients := []struct {
		name         string
		first, other *http.Client
	}{{"http1", h1a, h1b}, {"http2", h2a, h2b}}
	for _, cl := range clients {
		for _, tc := range cases {
			t.Run(cl.name+"/"+tc.name, func(t *testing.T) {
				for round := 0; round < 3; round++ {
					get(t, cl.first, tc.path)
					if !strings.HasPrefix(tc.path, "/queued") {
						select {
						case <-be.strayed:
						case <-time.After(10 * time.Second):
							t.Fatal("the backend never wrote its stray bytes")
						}
					}
					time.Sleep(tc.wait)
					// The next requests, from the same client and another
					// one, each get their own response.
					get(t, cl.first, fmt.Sprintf("/next/%d/same", round))
					get(t, cl.other, fmt.Sprintf("/next/%d/other", round))
				}
			})
		}
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
