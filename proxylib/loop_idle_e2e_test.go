package proxylib_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Bytes a server sends on a connection the loop holds idle (here the 408
// some servers write before closing an idle connection) are never read
// as the next request's response: the connection is dropped, and the next
// request gets its own answer on another one.
func TestEventLoopIdleUpstreamStrayBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveRequests(ln, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		if req.URL.Path == "/stray" {
			go func() {
				time.Sleep(30 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
			}()
		}
		return true
	})
	addr := loopProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	ask := func(path string) (int, string) {
		t.Helper()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: loop.example\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(got)
	}
	for range 5 {
		if code, got := ask("/stray"); code != 200 || got != "/stray" {
			t.Fatalf("/stray: %d %q", code, got)
		}
		time.Sleep(100 * time.Millisecond) // the stray bytes arrive while idle
		if code, got := ask("/next"); code != 200 || got != "/next" {
			t.Fatalf("the request after stray bytes on the idle connection: %d %q, want 200 \"/next\"", code, got)
		}
	}
}
