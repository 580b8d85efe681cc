package proxylib_test

import (
	"bufio"
	"net"
	"runtime"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A keep-alive HTTP/1.1 request through the proxy allocates nothing once
// its connections and pools are warm: heap allocations per request are
// what turns a busy proxy's load into GC work and tail latency. The client
// and the backend here allocate nothing per request either, so every
// malloc the process counts over the measured requests is the proxy's (or
// a rare background one, which the bound absorbs).
func TestHTTP1KeepAliveRequestAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop pooled buffers on purpose")
	}
	backendAddr := rawBackend(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
	}),
		routeConfig("rc", vh("alloc", "*", prefixRoute("/", "c"))),
		edsCluster(t, "c", false, nil), cla("c", backendAddr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "alloc")

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	req := []byte("GET /alloc/a//b HTTP/1.1\r\nHost: alloc.example\r\nUser-Agent: t\r\n\r\n")
	do := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if err := readResponse(br); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 { // warm the pools, buffers and the upstream connection
		do()
	}
	const n = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		do()
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.05 {
		t.Fatalf("%.2f heap allocations per keep-alive request through the proxy, want none", per)
	}
}

// An idle keep-alive HTTP/1.1 connection holds no I/O buffers: they are
// lent while a request is served and given back while the connection
// waits for the next one, on both sides of the proxy (package connbuf).
// Measured as the live heap each idle connection adds; a connection that
// kept its buffers added two 16 KiB buffers downstream on top of its
// bookkeeping (about 9 KiB: the connection and stream state and the
// socket).
func TestIdleKeepAliveConnectionsHoldNoBuffers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend func(testing.TB) string
	}{
		{"pooled upstream", rawBackend},
		// Each response ends its upstream connection, which is
		// discarded: the idle client connection must not keep it (and
		// its buffers) reachable.
		{"upstream answering connection close", connCloseBackend},
	} {
		t.Run(tc.name, func(t *testing.T) { testIdleKeepAliveHoldsNoBuffers(t, tc.backend(t)) })
	}
}

func testIdleKeepAliveHoldsNoBuffers(t *testing.T, backendAddr string) {
	if raceEnabled {
		t.Skip("the race detector's bookkeeping and sync.Pool's deliberate drops distort the live heap")
	}
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("idle", "*", prefixRoute("/", "c"))),
		edsCluster(t, "c", false, nil), cla("c", backendAddr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "idle")

	req := []byte("GET /idle HTTP/1.1\r\nHost: idle.example\r\n\r\n")
	br := bufio.NewReaderSize(nil, 4096)
	do := func(c net.Conn) {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		br.Reset(c)
		if err := readResponse(br); err != nil {
			t.Fatal(err)
		}
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	warm := dial()
	for range 50 { // the pools, the upstream connection and the lent buffers
		do(warm)
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 100
	before := heap()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dial()
		do(conns[i]) // serial: one upstream connection at a time
	}
	after := heap()
	per := (int64(after) - int64(before)) / n
	t.Logf("%d B of live heap per idle keep-alive connection", per)
	if per > 16<<10 {
		t.Fatalf("each idle keep-alive connection holds %d B of heap, want less than one 16 KiB buffer: its I/O buffers were not given back", per)
	}
	// The connections still serve.
	for _, c := range conns {
		do(c)
	}
}
