package e2e

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestHopLoadTimesFromSlot checks that BenchmarkPolicyHop's load generator
// counts the time a request waits for a free connection: one response is
// held back 150 ms on the only connection, so the ~150 requests scheduled
// meanwhile are sent late, and each of them must show that wait. Timed from
// its write instead, only the held request would be slow and p99 would be
// a fraction of a millisecond.
func TestHopLoadTimesFromSlot(t *testing.T) {
	const (
		stall = 150 * time.Millisecond
		n     = 300 // 300 ms at 1k req/s
	)
	var served atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Request 1 is the warm-up; 51 is the 50th timed one.
		if served.Add(1) == 51 {
			time.Sleep(stall)
		}
		w.Write([]byte("ok"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	r, err := hopLoad{
		dial: func(ctx context.Context) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", l.Addr().String())
		},
		n: n, workers: 1, rate: 1000,
	}.run()
	if err != nil {
		t.Fatal(err)
	}
	// At least the 50 requests scheduled in the stall's first 100 ms waited
	// more than 50 ms for the connection: 1/6 of the run, far above 1 %.
	if r.p99 < stall/3 {
		t.Errorf("p99 = %v with a %v stall on the only connection; the wait for a connection is not counted", r.p99, stall)
	}
	if got := served.Load(); got != n+1 {
		t.Errorf("server answered %d requests, want %d", got, n+1)
	}
}
