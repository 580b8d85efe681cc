package hcm

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
)

// localLoopProxy serves on one event loop a route config answering every
// request locally (200); it returns the listener's address and the loop.
func localLoopProxy(t *testing.T) (string, *hloop) {
	t.Helper()
	h, ls := localLoopHandler(t)
	return serveHandler(t, h), ls.loops[0]
}

// localLoopHandler is localLoopProxy's handler and its loops, not yet
// serving.
func localLoopHandler(t *testing.T) (*Handler, *Loops) {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		old := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}
	rc, err := resource.DecodeRouteConfig(mustAny(t, &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
		}},
	}}}))
	if err != nil {
		t.Fatal(err)
	}
	rt := NewRuntime("127.0.0.1", nil)
	rt.Store(&Routing{Routes: map[string]*route.Table{"rc": route.New(rc)}})
	ls, err := StartLoops(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	rt.Loops = ls
	h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecHTTP1, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute}, false)
	return h, ls
}

// serveHandler serves every connection to a new loopback listener with h;
// it returns the listener's address.
func serveHandler(t *testing.T, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.ServeConn(c, listener.ConnInfo{})
		}
	}()
	return ln.Addr().String()
}

// readResponses reads n responses from br.
func readResponses(t *testing.T, c net.Conn, br *bufio.Reader, n int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d of %d: %v", i+1, n, err)
		}
		resp.Body.Close()
	}
}

// A client that pipelines many locally answered requests does not keep
// the loop from another client whose request is ready in the same round:
// after maxTurns answers its connection yields, and the other's answer
// goes out before the rest of its own.
func TestLoopConnectionYieldsAfterMaxTurns(t *testing.T) {
	addr, hl := localLoopProxy(t)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		br := bufio.NewReader(c)
		// Served once, so the loop holds the connection (adopted).
		if _, err := c.Write([]byte("GET /warm HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		readResponses(t, c, br, 1)
		return c, br
	}
	flood, fbr := dial()
	other, obr := dial()

	// hold stops the loop in a posted function until released, so that
	// what the clients send is all ready at its next wait.
	hold := func() (release func(), in chan struct{}) {
		in, ch := make(chan struct{}), make(chan struct{})
		var once sync.Once
		release = func() { once.Do(func() { close(ch) }) }
		t.Cleanup(release) // before the loops close
		if err := hl.l.Post(func() { close(in); <-ch }); err != nil {
			t.Fatal(err)
		}
		return release, in
	}
	// gate stops the loop in a descriptor's handler: made ready after the
	// clients' sockets, it comes after them in the round (a posted
	// function would not: the loop's wake descriptor is level-triggered
	// and so heads the kernel's list).
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	gateCh := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gateCh) }) }
	t.Cleanup(func() { openGate(); unix.Close(fds[0]); unix.Close(fds[1]) })
	gated := make(chan struct{}, 1)
	onLoopT(t, hl, func() {
		if err := hl.l.Add(fds[0], evloop.In|evloop.ET, funcReady(func(uint32) {
			gated <- struct{}{}
			<-gateCh
		})); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { onLoopT(t, hl, func() { _ = hl.l.Del(fds[0]) }) })

	first, in := hold()
	<-in
	const pipelined = 10 * maxTurns
	if _, err := flood.Write([]byte(strings.Repeat("GET /f HTTP/1.1\r\nHost: a\r\n\r\n", pipelined))); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write([]byte("GET /o HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // both on the loopback's receive queues
	if _, err := unix.Write(fds[1], []byte("g")); err != nil {
		t.Fatal(err)
	}
	first()
	<-gated
	readResponses(t, other, obr, 1)
	// The flooding client got at most one turn's answers before the other
	// was served; the loop is held, so no more can come.
	got := 0
	flood.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for {
		resp, err := http.ReadResponse(fbr, nil)
		if err != nil {
			break
		}
		resp.Body.Close()
		got++
	}
	openGate()
	if got > maxTurns {
		t.Fatalf("the flooding client got %d answers before the loop served the other client, want at most %d", got, maxTurns)
	}
	readResponses(t, flood, fbr, pipelined-got)
}

// funcReady is an evloop.Handler calling its function.
type funcReady func(ev uint32)

func (f funcReady) Ready(ev uint32) { f(ev) }
