package proxylib_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib"
)

// loopProxy starts a proxy serving on one event loop with a listener
// routing everything to backend; it returns the listener's address.
func loopProxy(t *testing.T, backend string) string {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		old := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("loop", "*", prefixRoute("/", "c"))),
		edsCluster(t, "c", false, nil), cla("c", backend))
	startProxy(t, x.sock, proxylib.WithEventLoops(1))
	waitServing(t, "http://"+addr+"/", "loop")
	return addr
}

// Connections served by the event loop hold no goroutine while they wait
// for their next request (a goroutine per connection would).
func TestEventLoopIdleConnectionsHoldNoGoroutine(t *testing.T) {
	addr := loopProxy(t, rawBackend(t))
	const conns = 64
	req := []byte("GET /x HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	before := runtime.NumGoroutine()
	var cs []net.Conn
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		br := bufio.NewReader(c)
		for range 3 {
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if err := readResponse(br); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if grew := runtime.NumGoroutine() - before; grew > conns/4 {
		t.Fatalf("%d idle keep-alive connections added %d goroutines", conns, grew)
	}
}

// What the loop does not serve itself goes to a goroutine mid-connection:
// a streamed (chunked) response, a large one, a request body in chunks;
// the connection keeps serving afterwards, pipelined requests in order.
func TestEventLoopHandsOffAndKeepsServing(t *testing.T) {
	big := strings.Repeat("b", 100<<10)
	b := startBackend(t, "b", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part1"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
		case "/big":
			w.Write([]byte(big))
		default:
			w.Header().Set("Content-Length", itoa(len(r.URL.Path)+len(body)))
			w.Write([]byte(r.URL.Path + string(body)))
		}
	}))
	addr := loopProxy(t, b.addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	get := func(path, extra, body string) string {
		t.Helper()
		if _, err := io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: loop.example\r\n"+extra+"\r\n"+body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	if got := get("/a", "Content-Length: 3\r\n", "xyz"); got != "/axyz" {
		t.Fatalf("buffered body: %q", got)
	}
	if got := get("/chunked", "Content-Length: 0\r\n", ""); got != "part1part2" {
		t.Fatalf("chunked response: %q", got)
	}
	if got := get("/big", "Content-Length: 0\r\n", ""); got != big {
		t.Fatalf("large response: %d bytes", len(got))
	}
	if got := get("/c", "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n"); got != "/cabc" {
		t.Fatalf("chunked request: %q", got)
	}
	// Pipelined: three requests in one write, answered in order.
	pipe := strings.Repeat("", 0)
	for _, p := range []string{"/p1", "/p2", "/p3"} {
		pipe += "GET " + p + " HTTP/1.1\r\nHost: loop.example\r\n\r\n"
	}
	if _, err := io.WriteString(c, pipe); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/p1", "/p2", "/p3"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != p {
			t.Fatalf("pipelined %s answered %q", p, got)
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
