package proxylib_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

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
	local := &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/local"}},
		Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}}}
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("loop", "*", local, prefixRoute("/", "c"))),
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

// serveRequests accepts connections on ln and hands every request read
// from one to answer, which writes the response itself; false ends the
// connection.
func serveRequests(ln net.Listener, answer func(c net.Conn, req *http.Request) bool) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil || !answer(c, req) {
					return
				}
			}
		}()
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

// A request body larger than the read buffer, sent in one write on a
// kept-alive connection, streams on a goroutine (the loop reads one read
// at a time and parses in between); a response sent head and large body
// in one write is relayed the same way. Pipelined requests followed by
// the client's FIN are all answered before the connection closes.
func TestEventLoopLargeMessagesAndHalfClose(t *testing.T) {
	big := strings.Repeat("u", 200<<10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveRequests(ln, func(c net.Conn, req *http.Request) bool {
		n, _ := io.Copy(io.Discard, req.Body)
		body := req.URL.Path + ":" + itoa(int(n))
		if req.URL.Path == "/bigresp" {
			body = big
		}
		// Head and body in one write.
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(body))+"\r\n\r\n"+body)
		return err == nil
	})
	addr := loopProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	read := func() string {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %q", resp.StatusCode, got)
		}
		return string(got)
	}
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	if got := read(); got != "/first:0" {
		t.Fatalf("first: %q", got)
	}
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: loop.example\r\nContent-Length: "+itoa(len(big))+"\r\n\r\n"+big)
	if got := read(); got != "/upload:"+itoa(len(big)) {
		t.Fatalf("upload: %q", got)
	}
	io.WriteString(c, "GET /bigresp HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	if got := read(); got != big {
		t.Fatalf("large response: %d bytes", len(got))
	}
	// A fresh connection: pipelined requests, then the client's FIN.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	io.WriteString(c2, "GET /h1 HTTP/1.1\r\nHost: loop.example\r\n\r\nGET /h2 HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	c2.(*net.TCPConn).CloseWrite()
	c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	br = bufio.NewReader(c2)
	if got := read(); got != "/h1:0" {
		t.Fatalf("pipelined 1: %q", got)
	}
	if got := read(); got != "/h2:0" {
		t.Fatalf("pipelined 2: %q", got)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the client's FIN and its answers: %v, want EOF", err)
	}
}

// A request replayed after its reused upstream connection was reset, whose
// replay could not connect, is answered 503 and forgotten: the next
// request on the client connection is sent as itself, once.
func TestEventLoopFailedReplayIsForgotten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	reopen := make(chan struct{})
	seen := make(chan string, 16)
	serve := func(ln net.Listener) {
		serveRequests(ln, func(c net.Conn, req *http.Request) bool {
			seen <- req.URL.Path
			if req.URL.Path == "/reset" {
				ln.Close()   // the replay cannot connect
				return false // and this connection is reset unanswered
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+itoa(len(req.URL.Path))+"\r\n\r\n"+req.URL.Path)
			return true
		})
	}
	go serve(ln)
	go func() {
		<-reopen
		ln2, err := net.Listen("tcp", backend)
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { ln2.Close() })
		serve(ln2)
	}()
	addr := loopProxy(t, backend)
	for len(seen) > 0 {
		<-seen // waitServing's requests
	}
	c, br := dialRaw(t, addr)
	ask := func(path string) (int, string) {
		t.Helper()
		return askOn(t, c, br, path)
	}
	if code, got := ask("/warm"); code != 200 || got != "/warm" {
		t.Fatalf("warm: %d %q", code, got)
	}
	if code, _ := ask("/reset"); code != 503 {
		t.Fatalf("reset with its replay refused: %d, want 503", code)
	}
	close(reopen)
	time.Sleep(100 * time.Millisecond)
	if code, got := ask("/next"); code != 200 || got != "/next" {
		t.Fatalf("the request after a failed replay: %d %q", code, got)
	}
	var paths []string
	for len(seen) > 0 {
		paths = append(paths, <-seen)
	}
	if strings.Join(paths, " ") != "/warm /reset /next" {
		t.Fatalf("the backend saw %v, want /warm /reset /next", paths)
	}
}

// A server that sends part of a head and closes (both arriving before
// the loop reads) gets its client a 503 at once, not after the route
// timeout: the FIN in the event is read to the end of stream.
func TestEventLoopUpstreamFinWithPartialHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveRequests(ln, func(c net.Conn, req *http.Request) bool {
		if req.URL.Path == "/cut" {
			// Corked: the bytes leave with the FIN, in one segment, so
			// the proxy sees both in one event.
			rc, _ := c.(*net.TCPConn).SyscallConn()
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	addr := loopProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "GET /cut HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within 5 s: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || time.Since(start) > 3*time.Second {
		t.Fatalf("%d after %v, want 503 at once", resp.StatusCode, time.Since(start))
	}
}

// More pipelined requests than a connection serves in one turn of the
// loop, followed at once by the client's FIN: every one is answered
// before the connection closes.
func TestEventLoopYieldKeepsPipelinedRequestsAfterFin(t *testing.T) {
	addr := loopProxy(t, rawBackend(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A first request: the connection is on the loop when the batch
	// comes (the first bytes of a connection are read before a loop
	// adopts it).
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /local HTTP/1.1\r\nHost: loop.example\r\n\r\n")
	if err := readResponse(br); err != nil {
		t.Fatal(err)
	}
	const n = 40 // direct responses: answered by the loop without waiting
	// Corked: the requests leave with the FIN, so the loop sees both in
	// one event.
	rc, _ := c.(*net.TCPConn).SyscallConn()
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, 1) })
	io.WriteString(c, strings.Repeat("GET /local HTTP/1.1\r\nHost: loop.example\r\n\r\n", n))
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := range n {
		if err := readResponse(br); err != nil {
			t.Fatalf("response %d of %d: %v", i+1, n, err)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after %d answers: %v, want EOF", n, err)
	}
}
