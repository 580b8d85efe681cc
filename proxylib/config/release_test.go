package config

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// recorder is a release func that records when it ran; each run costs
// took of CPU on its clock (cpu).
type recorder struct {
	mu    sync.Mutex
	at    []time.Time
	took  time.Duration
	clock time.Duration
}

func (r *recorder) release() {
	r.mu.Lock()
	r.at = append(r.at, time.Now())
	r.clock += r.took
	r.mu.Unlock()
}

func (r *recorder) cpu() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

func (r *recorder) runs() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// waitRuns polls until rec ran n times (generous deadline).
func waitRuns(t *testing.T, rec *recorder, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.runs()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases after 10 s, want %d", len(rec.runs()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rec.runs()
}

// TestReleaserWaitsForAPause: a burst of updates is followed by one
// release, no sooner than the quiet time after the last of them.
func TestReleaserWaitsForAPause(t *testing.T) {
	rec := &recorder{}
	r := &releaser{release: rec.release, cpu: rec.cpu, quiet: 50 * time.Millisecond, maxWait: time.Minute, cost: 20}
	defer r.close()
	var last time.Time
	for range 5 {
		r.updated()
		last = time.Now()
		time.Sleep(10 * time.Millisecond)
	}
	runs := waitRuns(t, rec, 1)
	if runs[0].Sub(last) < 50*time.Millisecond {
		t.Errorf("released %v after the last update, want at least the quiet time", runs[0].Sub(last))
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rec.runs()); n != 1 {
		t.Errorf("%d releases after one burst, want 1", n)
	}
}

// TestReleaserMaxWait: updates that never pause still get a release once
// maxWait passed since the first of them.
func TestReleaserMaxWait(t *testing.T) {
	rec := &recorder{}
	r := &releaser{release: rec.release, cpu: rec.cpu, quiet: time.Minute, maxWait: 100 * time.Millisecond, cost: 20}
	defer r.close()
	start := time.Now()
	done := time.After(10 * time.Second)
	for len(rec.runs()) == 0 {
		select {
		case <-done:
			t.Fatal("no release while updates kept coming")
		default:
		}
		r.updated()
		time.Sleep(10 * time.Millisecond)
	}
	if d := rec.runs()[0].Sub(start); d < 100*time.Millisecond {
		t.Errorf("released %v after the first update, want at least maxWait", d)
	}
}

// TestReleaserBoundsItsCost: the next release waits cost times the CPU
// time the previous one took, however many updates come in between.
func TestReleaserBoundsItsCost(t *testing.T) {
	rec := &recorder{took: 20 * time.Millisecond}
	r := &releaser{release: rec.release, cpu: rec.cpu, quiet: time.Millisecond, maxWait: time.Minute, cost: 20}
	defer r.close()
	r.updated()
	first := waitRuns(t, rec, 1)[0]
	for range 10 {
		time.Sleep(5 * time.Millisecond)
		r.updated()
	}
	second := waitRuns(t, rec, 2)[1]
	if gap := second.Sub(first); gap < 20*(20*time.Millisecond) {
		t.Errorf("second release %v after the first, which took 20 ms of CPU: want at least 400 ms", gap)
	}
}

// TestReleaserClose: a release pending when the store closes never runs.
func TestReleaserClose(t *testing.T) {
	rec := &recorder{}
	r := &releaser{release: rec.release, cpu: rec.cpu, quiet: 50 * time.Millisecond, maxWait: time.Minute, cost: 20}
	r.updated()
	r.close()
	r.updated()
	time.Sleep(200 * time.Millisecond)
	if n := len(rec.runs()); n != 0 {
		t.Errorf("%d releases after close", n)
	}
}

// TestUpdateReturnsMemory: applying a large route configuration is
// followed by a forced collection that returns the heap's free pages to
// the OS, so the decoding's garbage does not stay resident until the
// runtime's two-minute forced GC and its gradual scavenging.
func TestUpdateReturnsMemory(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var s *Store
	lm := listener.New(func(n string) *tls.Certificate { return s.Cert(n) }, listener.WithSockets(1), listener.WithLogger(logger))
	um := upstream.NewManager(nil)
	s = New(hcm.NewRuntime("127.0.0.1", logger), lm, um, WithLogger(logger))
	defer func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		lm.Close(ctx)
		um.Close()
	}()
	forced := func() uint64 {
		m := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(m)
		return m[0].Value.Uint64()
	}
	before := forced()
	// A route configuration only (nothing references it, so nothing is
	// published to listeners); its decoding is the garbage.
	if err := s.Update(resource.RouteType, "1", []*anypb.Any{routeConfig(t, 1000, nil)}, nil, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for forced() == before {
		if time.Now().After(deadline) {
			t.Fatal("no forced collection within 10 s of the update")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
