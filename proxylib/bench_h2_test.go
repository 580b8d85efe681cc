package proxylib_test

import (
	"bufio"
	"bytes"
	"net"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h2load is a minimal HTTP/2 load client for one prior-knowledge
// connection: it keeps a fixed number of GET streams in flight, sends the
// same HPACK-indexed header block for each (as h2load does once its
// dynamic table is warm) and counts a stream done at its END_STREAM
// without decoding the response's fields. Frames are reused and writes
// batched until the client would block on a read, so the client itself
// allocates nothing per request and costs few system calls: what the
// process spends per request beyond that is the proxy's (and the
// backend's, rawBackend, which allocates nothing per request either).
type h2load struct {
	tb      testing.TB
	c       net.Conn
	bw      *bufio.Writer
	br      *bufio.Reader
	fr      *http2.Framer
	block   []byte
	next    uint32 // the next stream id
	unacked uint32 // DATA bytes received since the last connection WINDOW_UPDATE
}

func dialH2Load(tb testing.TB, addr, host, path string) *h2load {
	tb.Helper()
	h := dialH2(tb, addr, nil)
	_ = h.c.SetDeadline(time.Time{})
	l := &h2load{tb: tb, c: h.c, next: 1}
	l.bw = bufio.NewWriterSize(h.c, 16<<10)
	l.br = bufio.NewReaderSize(h.c, 16<<10)
	l.fr = http2.NewFramer(l.bw, l.br)
	l.fr.SetReuseFrames()
	// The first encoding inserts the fields into the client's dynamic
	// table; from the second on each field is an index, the same bytes
	// every time, and the server's table does not change either.
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	fields := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: host}, {Name: ":path", Value: path}, {Name: "user-agent", Value: "h2bench"}}
	for i := range 2 {
		buf.Reset()
		for _, f := range fields {
			if err := enc.WriteField(f); err != nil {
				tb.Fatal(err)
			}
		}
		if i == 0 {
			l.send(buf.Bytes())
			if err := l.bw.Flush(); err != nil {
				tb.Fatal(err)
			}
			l.await(1)
		}
	}
	l.block = append([]byte(nil), buf.Bytes()...)
	return l
}

func (l *h2load) send(block []byte) {
	err := l.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: l.next, BlockFragment: block, EndStream: true, EndHeaders: true})
	if err != nil {
		l.tb.Fatal(err)
	}
	l.next += 2
}

// await reads frames until n streams ended (200 with a body), starting a
// new stream for each that ends while more than inflight remain to be
// started: run(n, inflight) completes n requests with inflight in flight.
func (l *h2load) await(n int) { l.run(n, 0, 0) }

func (l *h2load) run(n, inflight, toStart int) {
	for range min(inflight, toStart) {
		l.send(l.block)
		toStart--
	}
	for done := 0; done < n; {
		if l.br.Buffered() == 0 {
			if err := l.bw.Flush(); err != nil {
				l.tb.Fatal(err)
			}
		}
		f, err := l.fr.ReadFrame()
		if err != nil {
			l.tb.Fatalf("reading: %v", err)
		}
		ended := false
		switch f := f.(type) {
		case *http2.HeadersFrame:
			// An indexed :status 200 (0x88) is the first byte of every
			// response block the proxy's encoder sends.
			if frag := f.HeaderBlockFragment(); len(frag) == 0 || frag[0] != 0x88 {
				l.tb.Fatalf("stream %d: response block % x does not start with :status 200", f.StreamID, frag[:min(len(frag), 8)])
			}
			ended = f.StreamEnded()
		case *http2.DataFrame:
			ended = f.StreamEnded()
			l.unacked += f.Length
			if l.unacked >= 16<<10 {
				if err := l.fr.WriteWindowUpdate(0, l.unacked); err != nil {
					l.tb.Fatal(err)
				}
				l.unacked = 0
			}
		case *http2.RSTStreamFrame:
			l.tb.Fatalf("stream %d reset: %v", f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			l.tb.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = l.fr.WritePing(true, f.Data)
			}
		}
		if ended {
			done++
			if toStart > 0 {
				l.send(l.block)
				toStart--
			}
		}
	}
}

// h2BenchProxy starts a proxy with an h2c-capable listener (the connection
// manager's default codec sniffs the preface) in front of rawBackend and
// returns its address.
func h2BenchProxy(tb testing.TB) string {
	backendAddr := rawBackend(tb)
	x := startXDS(tb, "", nil)
	addr := freeAddr(tb)
	x.set(httpListener(tb, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
	}),
		routeConfig("rc", vh("bench", "*", prefixRoute("/", "c"))),
		edsCluster(tb, "c", false, nil), cla("c", backendAddr))
	startProxy(tb, x.sock)
	waitServing(tb, "http://"+addr+"/", "bench")
	return addr
}

// goroutinesCreated reads the runtime's count of goroutines started.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// cpuTime returns the CPU time the process used so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkH2Proxy measures HTTP/2 requests through the proxy over
// loopback: one prior-knowledge connection with 10 streams in flight, as
// the proxybench h2 section drives it with h2load, to an HTTP/1.1 backend
// (64-byte bodies). Besides time and allocations per request it reports
// the goroutines started per request, every one of them the proxy's, and
// the process's CPU time per request (client, proxy and backend: compare
// builds by it, alternated, not with other programs).
func BenchmarkH2Proxy(b *testing.B) {
	addr := h2BenchProxy(b)
	l := dialH2Load(b, addr, "bench.example", "/bench")
	l.run(200, 10, 200) // warm the pools and the upstream connections
	b.ReportAllocs()
	g0, c0 := goroutinesCreated(), cpuTime()
	b.ResetTimer()
	l.run(b.N, 10, b.N)
	b.StopTimer()
	b.ReportMetric(float64(goroutinesCreated()-g0)/float64(b.N), "goroutines/op")
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// h2RequestCost runs n requests with 10 in flight on one warm h2c
// connection and returns the heap allocations and goroutines started per
// request.
func h2RequestCost(t *testing.T, n int) (allocs, goroutines float64) {
	addr := h2BenchProxy(t)
	l := dialH2Load(t, addr, "cost.example", "/cost/a//b")
	l.run(500, 10, 500)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := goroutinesCreated()
	l.run(n, 10, n)
	g1 := goroutinesCreated()
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n), float64(g1-g0) / float64(n)
}

// An HTTP/2 request costs what golang.org/x/net/http2's server spends on a
// stream (about 32 heap allocations with golang.org/x/net v0.62: the
// decoded fields, the request and its URL, the header maps and their
// copy, contexts; a goroutine for the handler and one for most response
// HEADERS and flushes) and few of the proxy's own: the response fields'
// strings and slice (setH2Header) and no more. The bounds hold the
// proxy's share there: a context derived for every stream cost five
// allocations, a response body reader one, a goroutine of the proxy's
// per stream would add a whole one. The client (h2load) and the backend
// allocate nothing per request.
func TestH2RequestCost(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop pooled values on purpose")
	}
	allocs, gs := h2RequestCost(t, 3000)
	t.Logf("per HTTP/2 request at 10 streams: %.1f heap allocations, %.2f goroutines started", allocs, gs)
	if allocs > 40 {
		t.Errorf("%.1f heap allocations per HTTP/2 request, want at most 40", allocs)
	}
	if gs > 3.5 {
		t.Errorf("%.2f goroutines started per HTTP/2 request, want at most 3.5", gs)
	}
}
