package e2e

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// hopServer serves 200 "ok" on loopback and calls seen with each request
// (from the server's goroutines).
func hopServer(t *testing.T, seen func()) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		seen()
		w.Write([]byte("ok"))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestHopGenTimesFromSlot checks that BenchmarkPolicyHop's load generator
// counts the time a request waits for a free connection: one response is
// held back 150 ms on the only connection, so the ~150 requests scheduled
// meanwhile are sent late, and each of them must show that wait when timed
// from its slot, and as written late.
func TestHopGenTimesFromSlot(t *testing.T) {
	const (
		stall = 150 * time.Millisecond
		n     = 300 // 300 ms at 1k req/s
	)
	var served atomic.Int64
	addr := hopServer(t, func() {
		// Request 1 is the warm-up; 51 is the 50th timed one.
		if served.Add(1) == 51 {
			time.Sleep(stall)
		}
	})
	stats, err := hopGen{Targets: []string{addr}, Conns: 1, Rate: 1000, Block: 100, N: n, Warmup: 1}.run()
	if err != nil {
		t.Fatal(err)
	}
	s := stats[0]
	if len(s.FromSlot) != n || len(s.FromSend) != n || len(s.Dispatch) != n {
		t.Fatalf("%d/%d/%d samples, want %d each", len(s.FromSlot), len(s.FromSend), len(s.Dispatch), n)
	}
	// At least the 50 requests scheduled in the stall's first 100 ms
	// waited more than 50 ms for the connection: 1/6 of the run. However
	// slow the machine, that wait is in their time from the slot and not
	// in their time from the write (samples are sorted, so compare sums).
	if p99 := s.q(s.FromSlot, .99); p99 < stall/3 {
		t.Errorf("p99 from slot = %v with a %v stall on the only connection; the wait for a connection is not counted", p99, stall)
	}
	var waited time.Duration
	for i := range n {
		waited += time.Duration(s.FromSlot[i] - s.FromSend[i])
	}
	if waited < 50*stall/3 {
		t.Errorf("times from slot exceed times from write by %v in all, want at least %v: the wait for a connection is not counted", waited, 50*stall/3)
	}
	if late := s.q(s.Dispatch, .99); late < stall/3 {
		t.Errorf("p99 dispatch lateness = %v; the requests queued behind the stall were not counted as written late", late)
	}
	if s.Late < 50 {
		t.Errorf("%d requests counted as late, want at least 50", s.Late)
	}
	// From its write, the held request still shows the stall. (That the
	// others do not is not asserted: on a loaded machine a loopback round
	// trip can take that long too.)
	if max := time.Duration(s.FromSend[n-1]); max < stall {
		t.Errorf("slowest request from its write took %v, want at least the %v stall", max, stall)
	}
	if got := served.Load(); got != n+1 {
		t.Errorf("server answered %d requests, want %d", got, n+1)
	}
}

// TestHopGenAlternatesBlocks checks that the generator sends the targets'
// requests in alternating blocks on one schedule, each target getting its
// warm-up and then exactly N timed requests.
func TestHopGenAlternatesBlocks(t *testing.T) {
	const (
		block  = 20
		n      = 60
		warmup = 10
	)
	g := hopGen{Conns: 2, Rate: 1000, Block: block, N: n, Warmup: warmup}
	var served [2]atomic.Int64
	g.Targets = []string{hopServer(t, func() { served[0].Add(1) }), hopServer(t, func() { served[1].Add(1) })}

	// The schedule: warm-up blocks of min(block, warmup), alternating,
	// then timed blocks of block, alternating, starting with target 0.
	var want []int
	for i := range 2 * warmup {
		want = append(want, (i/warmup)%2)
	}
	for i := range 2 * n {
		want = append(want, (i/block)%2)
	}
	for k, w := range want {
		target, timed := g.slotTarget(k)
		if target != w || timed != (k >= 2*warmup) {
			t.Fatalf("slot %d: target %d timed %v, want target %d timed %v", k, target, timed, w, k >= 2*warmup)
		}
	}

	stats, err := g.run()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stats {
		if len(s.FromSlot) != n {
			t.Errorf("target %d: %d timed requests, want %d", i, len(s.FromSlot), n)
		}
		if got := served[i].Load(); got != n+warmup {
			t.Errorf("target %d served %d requests, want %d", i, got, n+warmup)
		}
	}
}
