package proxylib_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/connbuf"
)

// askOn sends a GET for path on c and reads the answer.
func askOn(t *testing.T, c net.Conn, br *bufio.Reader, path string) (int, string) {
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
	sent := make(chan struct{}, 1)
	go serveRequests(ln, func(c net.Conn, req *http.Request) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
		if req.URL.Path == "/stray" {
			go func() {
				time.Sleep(20 * time.Millisecond) // most often after the proxy parked it
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				sent <- struct{}{}
			}()
		}
		return true
	})
	addr := loopProxy(t, ln.Addr().String())
	c, br := dialRaw(t, addr)
	for range 5 {
		if code, got := askOn(t, c, br, "/stray"); code != 200 || got != "/stray" {
			t.Fatalf("/stray: %d %q", code, got)
		}
		<-sent
		time.Sleep(50 * time.Millisecond) // the loop sees the bytes arrive
		if code, got := askOn(t, c, br, "/next"); code != 200 || got != "/next" {
			t.Fatalf("the request after stray bytes on the idle connection: %d %q, want 200 \"/next\"", code, got)
		}
	}
}

// A response that fills the loop's read buffer exactly, with more bytes
// behind it in the same write: the read that took the response reported
// the socket's only edge, so no later wait tells of the rest. The
// connection is checked when it is parked and not reused, and the extra
// response never answers the next request.
func TestEventLoopIdleUpstreamBytesBehindAFullRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const bufSize = connbuf.Size // the loop's first read of a response
	const bodyLen = 8000         // relayed by the loop (at most 8 KiB)
	body := strings.Repeat("b", bodyLen)
	go serveRequests(ln, func(c net.Conn, req *http.Request) bool {
		if req.URL.Path != "/full" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
			return true
		}
		head := "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(bodyLen) + "\r\nX-Pad: "
		resp := head + strings.Repeat("p", bufSize-bodyLen-len(head)-4) + "\r\n\r\n" + body
		io.WriteString(c, resp+"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
		return true
	})
	addr := loopProxy(t, ln.Addr().String())
	c, br := dialRaw(t, addr)
	for i := range 5 {
		if code, got := askOn(t, c, br, "/full"); code != 200 || got != body {
			t.Fatalf("/full: %d, %d bytes", code, len(got))
		}
		if code, got := askOn(t, c, br, "/next"); code != 200 || got != "/next" {
			t.Fatalf("try %d: the request after /full got %d %q, want 200 \"/next\"", i, code, got)
		}
	}
}
