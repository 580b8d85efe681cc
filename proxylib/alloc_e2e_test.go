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
