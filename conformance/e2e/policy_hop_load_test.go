package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
// from its slot, and as written late. The samples come back in round
// order: the held request is the 50th timed one.
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
	res, err := hopGen{Targets: []string{addr}, Conns: 1, Rate: 1000, N: n, Warmup: 1}.run()
	if err != nil {
		t.Fatal(err)
	}
	s := res.Stats[0]
	if len(s.FromSlot) != n || len(s.FromSend) != n || len(s.Dispatch) != n || len(s.Behind) != n {
		t.Fatalf("%d/%d/%d/%d samples, want %d each", len(s.FromSlot), len(s.FromSend), len(s.Dispatch), len(s.Behind), n)
	}
	// At least the 50 requests scheduled in the stall's first 100 ms
	// waited more than 50 ms for the connection: 1/6 of the run. However
	// slow the machine, that wait is in their time from the slot and not
	// in their time from the write.
	if p99 := time.Duration(quantile(sortedCopy(s.FromSlot), .99)); p99 < stall/3 {
		t.Errorf("p99 from slot = %v with a %v stall on the only connection; the wait for a connection is not counted", p99, stall)
	}
	var waited time.Duration
	for i := range n {
		waited += time.Duration(s.FromSlot[i] - s.FromSend[i])
	}
	if waited < 50*stall/3 {
		t.Errorf("times from slot exceed times from write by %v in all, want at least %v: the wait for a connection is not counted", waited, 50*stall/3)
	}
	if late := time.Duration(quantile(sortedCopy(s.Dispatch), .99)); late < stall/3 {
		t.Errorf("p99 dispatch lateness = %v; the requests queued behind the stall were not counted as written late", late)
	}
	if s.Late < 50 {
		t.Errorf("%d requests counted as late, want at least 50", s.Late)
	}
	// They were late for want of a connection, which the generator
	// counts apart from its own pacing.
	if s.Queued < 50 {
		t.Errorf("%d requests counted as waiting for a connection, want at least 50", s.Queued)
	}
	// From its write, the held request still shows the stall, in its own
	// place. (That the others do not is not asserted: on a loaded machine
	// a loopback round trip can take that long too.)
	if held := time.Duration(s.FromSend[49]); held < stall {
		t.Errorf("the held request (timed round 49) took %v from its write, want at least the %v stall", held, stall)
	}
	if got := served.Load(); got != n+1 {
		t.Errorf("server answered %d requests, want %d", got, n+1)
	}
	if u := res.Usage; u.Wall <= 0 || u.CPUs == "" {
		t.Errorf("generator usage %+v: no wall time or CPUs", u)
	}
}

// TestHopGenInterleaves checks that the generator interleaves the targets
// request by request: every round holds each target once, in adjacent
// slots, in an order that varies between rounds and is fixed by the seed;
// and each target gets its warm-up and then exactly N timed requests.
func TestHopGenInterleaves(t *testing.T) {
	const (
		n      = 200
		warmup = 10
	)
	g := hopGen{Conns: 2, Rate: 1000, N: n, Warmup: warmup, Seed: 7}
	var served [2]atomic.Int64
	g.Targets = []string{hopServer(t, func() { served[0].Add(1) }), hopServer(t, func() { served[1].Add(1) })}

	sched := g.schedule()
	if len(sched) != 2*(n+warmup) {
		t.Fatalf("%d slots, want %d", len(sched), 2*(n+warmup))
	}
	firsts := [2]int{}
	for r := range n + warmup {
		a, b := sched[2*r], sched[2*r+1]
		wantRound := r - warmup
		if wantRound < 0 {
			wantRound = -1
		}
		if a.target == b.target || a.round != wantRound || b.round != wantRound {
			t.Fatalf("slots %d and %d are %+v and %+v, want both targets of round %d", 2*r, 2*r+1, a, b, wantRound)
		}
		firsts[a.target]++
	}
	// A fair coin puts each target first in about half of 210 rounds;
	// fewer than 70 is a fixed or biased order (p < 1e-6 for a fair one).
	if firsts[0] < 70 || firsts[1] < 70 {
		t.Errorf("target 0 first in %d rounds, target 1 in %d: the order within rounds is not random", firsts[0], firsts[1])
	}
	if again := g.schedule(); !slices.Equal(again, sched) {
		t.Error("the same seed gave another schedule")
	}
	g2 := g
	g2.Seed++
	if slices.Equal(g2.schedule(), sched) {
		t.Error("another seed gave the same schedule")
	}

	res, err := g.run()
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range res.Stats {
		if len(s.FromSlot) != n {
			t.Errorf("target %d: %d timed requests, want %d", i, len(s.FromSlot), n)
		}
		for r, v := range s.FromSend {
			if v <= 0 {
				t.Fatalf("target %d, round %d: no sample (%d)", i, r, v)
			}
		}
		if got := served[i].Load(); got != n+warmup {
			t.Errorf("target %d served %d requests, want %d", i, got, n+warmup)
		}
	}
}

// hopSynthetic returns n pairs of latencies (ns) that share a machine
// noise correlated in time (stalls lasting several pairs, heavy-tailed),
// each with its own noise too; b is shifted by shift. The two paths have
// the same distribution but for the shift, so every quantile of b exceeds
// a's by exactly shift in the population.
func hopSynthetic(n int, shift int64, seed uint64) (a, b []int64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	a, b = make([]int64, n), make([]int64, n)
	var stall float64 // the machine's current stall, decaying
	for i := range n {
		if rng.Float64() < 0.005 {
			stall += rng.ExpFloat64() * 1.5e6 // ~1.5 ms stalls
		}
		stall *= 0.7
		shared := math.Exp(rng.NormFloat64()*0.3)*200e3 + stall
		a[i] = int64(shared + rng.ExpFloat64()*40e3)
		b[i] = int64(shared+rng.ExpFloat64()*40e3) + shift
	}
	return a, b
}

// TestPairedQuantileDiffs checks the hop's confidence intervals on
// synthetic pairs with a known shift: the estimate is the difference of
// the sample quantiles, the intervals hold the true shift (and 0 when
// there is none), a shift the size of the hop's cost is told apart from
// none at the median, pairing narrows the intervals, and the same seed
// gives the same intervals.
func TestPairedQuantileDiffs(t *testing.T) {
	ps := []float64{.5, .99, .999}
	for _, shift := range []int64{0, 74e3} {
		a, b := hopSynthetic(20000, shift, 1)
		got := pairedQuantileDiffs(a, b, ps, 100, 1000, 1)
		sa, sb := sortedCopy(a), sortedCopy(b)
		for i, q := range got {
			t.Logf("shift %d µs, p%v: %+.0f µs [%+.0f, %+.0f]", shift/1e3, ps[i]*100, float64(q.Est)/1e3, float64(q.Lo)/1e3, float64(q.Hi)/1e3)
			if want := quantile(sb, ps[i]) - quantile(sa, ps[i]); q.Est != want || q.P != ps[i] {
				t.Errorf("shift %d, p%v: estimate %+v, want %d", shift, ps[i], q, want)
			}
			if q.Lo > shift || q.Hi < shift || q.Lo > q.Est || q.Hi < q.Est {
				t.Errorf("shift %d, p%v: interval [%d, %d] around %d misses the true shift", shift, ps[i], q.Lo, q.Hi, q.Est)
			}
		}
		if shift > 0 && got[0].Lo <= 0 {
			t.Errorf("shift %d: p50 interval [%d, %d] does not tell it from none", shift, got[0].Lo, got[0].Hi)
		}
		if again := pairedQuantileDiffs(a, b, ps, 100, 1000, 1); !slices.Equal(again, got) {
			t.Errorf("shift %d: same seed, other intervals: %+v then %+v", shift, got, again)
		}
		// The pairs share the machine's noise, so the paired intervals
		// are narrower than those of the same samples paired wrongly
		// (b rotated by half the run: each a[i] with a b from another
		// moment); at p99, where the shared stalls dominate, less than
		// half as wide (about a seventh here).
		rotated := append(slices.Clone(b[len(b)/2:]), b[:len(b)/2]...)
		unpaired := pairedQuantileDiffs(a, rotated, ps, 100, 1000, 1)
		for i, factor := range []int64{1, 2} {
			if w, wu := got[i].Hi-got[i].Lo, unpaired[i].Hi-unpaired[i].Lo; w*factor >= wu {
				t.Errorf("shift %d, p%v: paired interval %d ns wide, unpaired %d ns: pairing does not narrow it %d-fold", shift, ps[i], w, wu, factor)
			} else {
				t.Logf("shift %d µs, p%v: interval %.0f µs wide paired, %.0f µs unpaired", shift/1e3, ps[i]*100, float64(w)/1e3, float64(wu)/1e3)
			}
		}
	}

	// Coverage: over 40 independent synthetic runs a 95 % interval should
	// miss the true shift about twice; more than 6 misses at p50 or p99
	// means the intervals are too narrow (for a calibrated one, fewer than
	// 1 in 1000 sets of runs miss that often).
	const runs = 40
	var miss [2]int
	for seed := range uint64(runs) {
		a, b := hopSynthetic(4000, 74e3, 100+seed)
		for i, q := range pairedQuantileDiffs(a, b, ps[:2], 50, 400, seed) {
			if q.Lo > 74e3 || q.Hi < 74e3 {
				miss[i]++
			}
		}
	}
	t.Logf("the intervals missed the shift in %d (p50) and %d (p99) of %d runs", miss[0], miss[1], runs)
	if miss[0] > 6 || miss[1] > 6 {
		t.Errorf("the 95 %% intervals missed the true shift in %d (p50) and %d (p99) of %d runs", miss[0], miss[1], runs)
	}
}

// TestCountQuantiles checks the bootstrap's counting quantiles against
// sorting the multiset they stand for.
func TestCountQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ps := []float64{0, .1, .5, .9, .99, .999, 1}
	for range 50 {
		n := 1 + rng.IntN(300)
		v := make([]int64, n)
		for i := range v {
			v[i] = rng.Int64N(50) // ties on purpose
		}
		rank, sorted := ranks(v)
		count := make([]int32, n)
		var multiset []int64
		for range n + rng.IntN(n) {
			i := rng.IntN(n)
			count[rank[i]]++
			multiset = append(multiset, v[i])
		}
		slices.Sort(multiset)
		got := make([]int64, len(ps))
		countQuantiles(count, sorted, ps, got)
		for j, p := range ps {
			if want := quantile(multiset, p); got[j] != want {
				t.Fatalf("n=%d p%v: %d, want %d", n, p, got[j], want)
			}
		}
	}
}

// TestHopGenWritesTimeline checks the generator's per-request timeline:
// one line per timed request and target, matching the samples it
// reports, with times on CLOCK_MONOTONIC (the clock of a scheduler trace
// with trace_clock mono) from slot to answer.
func TestHopGenWritesTimeline(t *testing.T) {
	const n = 50
	addr := hopServer(t, func() {})
	path := filepath.Join(t.TempDir(), "timeline")
	var before unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
		t.Fatal(err)
	}
	res, err := hopGen{Targets: []string{addr, addr}, Conns: 1, Rate: 1000, N: n, Warmup: 1, Seed: 3, Timeline: path}.run()
	if err != nil {
		t.Fatal(err)
	}
	var after unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &after); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2*n {
		t.Fatalf("%d timeline lines, want %d", len(lines), 2*n)
	}
	seen := map[[2]int64]bool{}
	for _, l := range lines {
		var round, target, slot, sent, done int64
		if _, err := fmt.Sscanf(l, "%d %d %d %d %d", &round, &target, &slot, &sent, &done); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		k := [2]int64{round, target}
		if round < 0 || round >= n || target < 0 || target > 1 || seen[k] {
			t.Fatalf("line %q: round or target out of range, or repeated", l)
		}
		seen[k] = true
		if slot < before.Nano() || slot > sent || sent > done || done > after.Nano() {
			t.Fatalf("line %q: times out of order or outside the run [%d, %d]", l, before.Nano(), after.Nano())
		}
		s := res.Stats[target]
		if done-slot != s.FromSlot[round] || done-sent != s.FromSend[round] {
			t.Fatalf("line %q: %d from slot and %d from write, the result says %d and %d", l, done-slot, done-sent, s.FromSlot[round], s.FromSend[round])
		}
	}
}

// TestHopBackend checks the benchmark's server against a real HTTP
// client, pipelined heads, requests with a body, and that it allocates
// nothing per request on an open connection.
func TestHopBackend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- (&hopBackend{l: l}).serve() }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	addr := l.Addr().String()

	resp, err := http.Get("http://" + addr + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, hopBody) {
		t.Fatalf("GET: %d %q, want 200 %q", resp.StatusCode, body, hopBody)
	}

	resp, err = http.Post("http://"+addr+"/", "text/plain", strings.NewReader("a body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST with a body: %d, want 400", resp.StatusCode)
	}

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// Two pipelined heads in one write get two answers.
	if _, err := c.Write(append(slices.Clone(hopRequestBytes), hopRequestBytes...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*len(hopResponse))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if want := append(slices.Clone(hopResponse), hopResponse...); !bytes.Equal(got, want) {
		t.Fatalf("pipelined answers %q, want %q", got, want)
	}
	one := got[:len(hopResponse)]
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(hopRequestBytes); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, one); err != nil {
			t.Fatal(err)
		}
	})
	// The count covers the whole process: this client too, and the
	// runtime's occasional own allocations.
	if allocs > 0.5 {
		t.Errorf("%.1f allocations per request, want none", allocs)
	}
}
