package hcm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// readSizes is a client connection that records the size of every read
// the proxy asks of it. The socket underneath is a real loopback TCP
// connection; wrapping it only hides it from the raw socket path, whose
// reads go through the same readRoom.
type readSizes struct {
	net.Conn
	mu  sync.Mutex
	max int
	n   int
}

func (r *readSizes) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.max = max(r.max, len(p))
	r.n++
	r.mu.Unlock()
	return r.Conn.Read(p)
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBufferLimitBoundsReads checks per_connection_buffer_limit_bytes on
// the HTTP/1.1 path: however much the client sends at once, the proxy
// reads at most the limit at a time, and a request larger than the limit
// still goes through whole.
func TestBufferLimitBoundsReads(t *testing.T) {
	// A backend that counts the body it receives.
	be := requestBackend(t, func(c net.Conn, _ *bufio.Reader, req *http.Request) bool {
		n, _ := io.Copy(io.Discard, req.Body)
		body := fmt.Sprint(n)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	})

	rt, _ := oneClusterRuntime(t, be)

	const limit = 1000
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecHTTP1, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, BufferLimit: limit}, false)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan *readSizes, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		rs := &readSizes{Conn: c}
		h.ServeConn(rs, listener.ConnInfo{})
		served <- rs
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, size := range []int{0, 10, limit, 64 << 10} {
		go fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", size, strings.Repeat("x", size))
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%d-byte body: %v", size, err)
		}
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != fmt.Sprint(size) {
			t.Fatalf("%d-byte body: %d %q", size, resp.StatusCode, got)
		}
	}
	c.Close()
	rs := <-served
	if rs.max > limit || rs.n < (64<<10)/limit {
		t.Fatalf("%d reads of up to %d bytes; want none over %d", rs.n, rs.max, limit)
	}
}

// requestBackend serves HTTP/1.1 on loopback until the test ends: each
// request read from a connection goes to serve, which answers on c (and
// may go on reading br, as an upgraded stream does); it returns false to
// close the connection.
func requestBackend(t *testing.T, serve func(c net.Conn, br *bufio.Reader, req *http.Request) bool) net.Listener {
	t.Helper()
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil || !serve(c, br, req) {
						return
					}
				}
			}()
		}
	}()
	return be
}
