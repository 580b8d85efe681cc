package hcm

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/evloop"
)

// onLoopT runs fn on hl's loop thread and waits for it.
func onLoopT(t *testing.T, hl *hloop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := hl.l.Post(func() { defer close(done); fn() }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posted function did not run")
	}
}

// An idle connection the loop parked in an earlier round is handed out
// without a probe when the round's wait had nothing for it; bytes that
// arrive after that wait are the window popIdle's probe argument closes
// (the replay's pop). Here they arrive inside the round: Quiet still
// holds, and only the probing pop refuses the connection.
func TestLoopPopIdleProbeSeesWhatTheWaitMissed(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		old := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}
	be, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := be.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			accepted <- c
		}
	}()
	_, cluster := oneClusterRuntime(t, be)
	pool := cluster.Hosts[0].Pool
	ls, err := StartLoops(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	hl := ls.loops[0]

	park := func() (*loopUp, net.Conn) {
		t.Helper()
		uc, _, err := pool.Get(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		srv := <-accepted
		fd, err := uc.Detach()
		if err != nil {
			t.Fatal(err)
		}
		lu := newLoopUp(uc, fd, hl)
		onLoopT(t, hl, func() {
			// Without Out: its first edge (writable at once) would be
			// the next wait's, as an exchange's writes consume it.
			if err := hl.l.Add(fd, evloop.In|evloop.RdHup|evloop.ET, lu); err != nil {
				t.Error(err)
				return
			}
			lu.reg = true
			hl.putIdle(lu, time.Now())
		})
		return lu, srv
	}
	for _, probe := range []bool{false, true} {
		lu, srv := park()
		var got *loopUp
		var quiet bool
		onLoopT(t, hl, func() { // a later round: its wait had nothing for lu
			if _, err := srv.Write([]byte("HTTP/1.1 408 Request Timeout\r\n\r\n")); err != nil {
				t.Error(err)
			}
			quiet = hl.l.Quiet(lu.fd, lu.parked)
			got = hl.popIdle(pool, time.Now(), probe)
			if got != nil {
				hl.discard(got)
			}
		})
		if !quiet {
			t.Fatal("the scenario needs a Quiet connection: bytes that came after the round's wait")
		}
		switch {
		case probe && got != nil:
			t.Fatal("the probing pop handed out a connection with bytes waiting")
		case !probe && got != lu:
			t.Fatalf("the pop without probe: got %p, want the parked connection %p (Quiet stands for the probe)", got, lu)
		}
	}
}
