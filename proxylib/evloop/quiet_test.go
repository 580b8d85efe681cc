package evloop

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// funcHandler calls fn with the events.
type funcHandler func(ev uint32)

func (f funcHandler) Ready(ev uint32) { f(ev) }

// waitFor waits for a value from c.
func waitFor[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived")
	}
	var zero T
	return zero
}

// A descriptor is Quiet only once a later wait covered it: not in the
// round it was looked at (nor registered) in, and not in a round whose
// wait reported it.
func TestQuietNeedsALaterWaitWithoutItsEvent(t *testing.T) {
	eachMode(t, testQuietNeedsALaterWaitWithoutItsEvent)
}

func testQuietNeedsALaterWaitWithoutItsEvent(t *testing.T) {
	l := newLoop(t)
	a, b := socketpair(t)
	type look struct {
		round uint64
		quiet bool
	}
	looks := make(chan look, 4)
	var since uint64
	h := funcHandler(func(uint32) {
		var buf [8]byte
		for {
			if _, err := Read(a, buf[:]); err != nil {
				break
			}
		}
		looks <- look{l.Round(), l.Quiet(a, since)}
	})
	start(t, l)
	onLoop(t, l, func() {
		if err := l.Add(a, In|RdHup|ET, h); err != nil {
			t.Error(err)
		}
		since = l.Round()
		if l.Quiet(a, since) || l.Quiet(a, since-1) {
			t.Error("Quiet in the round it was registered in")
		}
	})
	onLoop(t, l, func() {
		if !l.Quiet(a, since) {
			t.Errorf("not Quiet in round %d, a wait after round %d", l.Round(), since)
		}
		if l.Quiet(a, l.Round()) {
			t.Error("Quiet since the current round")
		}
	})
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := waitFor(t, looks); got.quiet {
		t.Errorf("Quiet in round %d, whose wait reported it", got.round)
	}
	onLoop(t, l, func() {
		if l.Quiet(a, since) {
			t.Errorf("Quiet in round %d since round %d, though a round between reported it", l.Round(), since)
		}
		if l.Quiet(a, l.Round()+1) {
			t.Error("Quiet since a round not yet come")
		}
		if l.Quiet(b, 0) {
			t.Error("an unregistered descriptor is Quiet")
		}
	})
}

// Every descriptor the round's wait reported is not Quiet in that round,
// also in the handlers that run before its own.
func TestQuietNotForThisRoundsLaterEvents(t *testing.T) {
	eachMode(t, testQuietNotForThisRoundsLaterEvents)
}

func testQuietNotForThisRoundsLaterEvents(t *testing.T) {
	l := newLoop(t)
	const n = 4
	fds, peers := make([]int, n), make([]int, n)
	var since uint64
	loud := make(chan int, n*n)
	done := make(chan struct{}, n)
	for i := range fds {
		fds[i], peers[i] = socketpair(t)
	}
	for i := range fds {
		h := funcHandler(func(uint32) {
			var buf [8]byte
			_, _ = Read(fds[i], buf[:])
			for _, fd := range fds {
				if l.Quiet(fd, since) {
					loud <- fd
				}
			}
			done <- struct{}{}
		})
		if err := l.Add(fds[i], In|RdHup|ET, h); err != nil {
			t.Fatal(err)
		}
	}
	start(t, l)
	onLoop(t, l, func() {
		since = l.Round()
		// All ready before the next wait: one round reports them all.
		writeEach(t, peers)
	})
	for range n {
		waitFor(t, done)
	}
	select {
	case fd := <-loud:
		t.Errorf("descriptor %d Quiet in the round that reported it", fd)
	default:
	}
}

// A wait that filled its array may have left ready descriptors in the
// kernel: nothing is Quiet in its round.
func TestQuietNotAfterAFullWait(t *testing.T) { eachMode(t, testQuietNotAfterAFullWait) }

func testQuietNotAfterAFullWait(t *testing.T) {
	l := newLoop(t)
	n := len(l.evs) + 40
	quietFd, _ := socketpair(t)
	if err := l.Add(quietFd, In|RdHup|ET, funcHandler(func(uint32) {})); err != nil {
		t.Fatal(err)
	}
	type look struct {
		round uint64
		quiet bool
	}
	looks := make(chan look, n)
	var since uint64
	peers := make([]int, n)
	for i := range peers {
		fd, peer := socketpair(t)
		peers[i] = peer
		h := funcHandler(func(uint32) {
			var buf [8]byte
			_, _ = Read(fd, buf[:])
			looks <- look{l.Round(), l.Quiet(quietFd, since)}
		})
		if err := l.Add(fd, In|ET, h); err != nil {
			t.Fatal(err)
		}
	}
	start(t, l)
	onLoop(t, l, func() {
		since = l.Round()
		writeEach(t, peers)
	})
	rounds := map[uint64]int{}
	quiet := map[uint64]bool{}
	for range n {
		lk := waitFor(t, looks)
		rounds[lk.round]++
		quiet[lk.round] = lk.quiet
	}
	full, rest := 0, 0
	for r, c := range rounds {
		switch {
		case c == len(l.evs):
			full++
			if quiet[r] {
				t.Errorf("Quiet in round %d, whose wait filled its array", r)
			}
		default:
			rest++
			if !quiet[r] {
				t.Errorf("not Quiet in round %d (%d events, the array holds %d)", r, c, len(l.evs))
			}
		}
	}
	if full != 1 || rest < 1 {
		t.Fatalf("rounds %v: want one full wait and the rest after it", rounds)
	}
}

// writeEach writes a byte to each descriptor.
func writeEach(t *testing.T, fds []int) {
	for _, fd := range fds {
		if _, err := unix.Write(fd, []byte("x")); err != nil {
			t.Error(err)
		}
	}
}
