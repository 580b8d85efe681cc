package evloop

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// withProcs runs the test with at least n Ps.
func withProcs(t *testing.T, n int) {
	if old := runtime.GOMAXPROCS(0); old < n {
		runtime.GOMAXPROCS(n)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	}
}

// eachMode runs f with a loop in each mode: keeping its P (a spare P
// beside it) and shared (GOMAXPROCS=1). Loops f starts must not outlive
// it.
func eachMode(t *testing.T, f func(t *testing.T)) {
	t.Run("own-P", func(t *testing.T) {
		withProcs(t, 3)
		f(t)
	})
	t.Run("shared", func(t *testing.T) {
		old := runtime.GOMAXPROCS(1)
		t.Cleanup(func() { runtime.GOMAXPROCS(old) })
		f(t)
	})
}

// start runs l on a goroutine; the cleanup closes it and waits for Run.
func start(t *testing.T, l *Loop) <-chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- l.Run() }()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-l.Done():
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
	})
	return errc
}

func newLoop(t *testing.T) *Loop {
	t.Helper()
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// onLoop runs fn on l's thread and waits for it.
func onLoop(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := l.Post(func() { fn(); close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posted function did not run")
	}
}

type recorder struct {
	mu   sync.Mutex
	name int
	log  *[]int
	fd   int
	got  chan struct{}
}

func (r *recorder) Ready(ev uint32) {
	var buf [64]byte
	for {
		if _, err := Read(r.fd, buf[:]); err != nil {
			break
		}
	}
	*r.log = append(*r.log, r.name)
	select {
	case r.got <- struct{}{}:
	default: // a level-triggered Out fires every round
	}
}

func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// The loop calls handlers in the order the descriptors became ready (the
// order an event loop serves them in), not in descriptor order.
func TestReadyInKernelOrder(t *testing.T) { eachMode(t, testReadyInKernelOrder) }

func testReadyInKernelOrder(t *testing.T) {
	l := newLoop(t)
	var log []int
	got := make(chan struct{}, 16)
	peers := make([]int, 6)
	for i := range peers {
		a, b := socketpair(t)
		peers[i] = b
		if err := l.Add(a, In, &recorder{name: i, log: &log, fd: a, got: got}); err != nil {
			t.Fatal(err)
		}
	}
	order := []int{3, 1, 5, 0, 4, 2}
	for _, i := range order {
		if _, err := unix.Write(peers[i], []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	start(t, l)
	for range order {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("handler not called")
		}
	}
	var seen []int
	onLoop(t, l, func() { seen = append(seen, log...) })
	if len(seen) != len(order) {
		t.Fatalf("calls %v, want %v", seen, order)
	}
	for i := range order {
		if seen[i] != order[i] {
			t.Fatalf("calls %v, want %v", seen, order)
		}
	}
}

// Posted functions run in order, on the loop's one thread, from many
// goroutines at once.
func TestPostRunsInOrderOnLoopThread(t *testing.T) { eachMode(t, testPostRunsInOrderOnLoopThread) }

func testPostRunsInOrderOnLoopThread(t *testing.T) {
	l := newLoop(t)
	start(t, l)
	var tid int
	onLoop(t, l, func() { tid = unix.Gettid() })
	const senders, each = 4, 500
	last := make([]int, senders)
	var bad []string
	var inside atomic.Int32 // posted functions running
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= each; i++ {
				err := l.Post(func() {
					if l.park == nil && unix.Gettid() != tid {
						bad = append(bad, "ran off the loop thread")
					}
					if inside.Add(1) != 1 {
						bad = append(bad, "ran beside another posted function")
					}
					defer inside.Add(-1)
					if last[s] != i-1 {
						bad = append(bad, "out of order")
					}
					last[s] = i
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	onLoop(t, l, func() {})
	onLoop(t, l, func() {
		for s := range senders {
			if last[s] != each {
				bad = append(bad, "missing functions")
			}
		}
	})
	if len(bad) > 0 {
		t.Fatal(bad[0])
	}
}

// A waiting loop must not hold up a stop-the-world, whether it waits raw
// (busy: here a timer every 2 ms keeps it so, and ends each wait before
// the runtime's preemption signal would) or releasing its P (idle: the
// runtime takes the P without it).
func TestGCCompletesWhileLoopWaits(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "idle", true: "busy"}[busy], func(t *testing.T) {
			withProcs(t, 2)
			l := newLoop(t)
			start(t, l)
			var base uint64 // releasing waits before the tick started
			if busy {
				var tick Timer
				tick.F = func() { l.Arm(&tick, l.Now()+int64(2*time.Millisecond)) }
				onLoop(t, l, func() { base = l.released; tick.F() })
			}
			time.Sleep(50 * time.Millisecond)
			var released uint64
			onLoop(t, l, func() { released = l.released - base })
			if busy != (released == 0) {
				t.Fatalf("busy %v, yet %d waits released the P", busy, released)
			}
			done := make(chan struct{})
			go func() {
				for range 5 {
					runtime.GC()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
				}
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("garbage collection did not complete while the loop waited")
			}
		})
	}
}

// On GOMAXPROCS=1 one loop runs shared: its goroutine parks in the
// runtime's poller and is not locked to a thread. A second loop is refused
// while it runs.
func TestRunSharesTheOnlyP(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	a := newLoop(t)
	start(t, a)
	var shared bool
	onLoop(t, a, func() { shared = a.park != nil })
	if !shared {
		t.Fatal("the loop on GOMAXPROCS=1 did not run shared")
	}
	b := newLoop(t)
	if err := b.Run(); err == nil {
		t.Fatal("a second loop ran on GOMAXPROCS=1")
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("refused loop kept its descriptors")
	}
	if err := b.Post(func() {}); err != ErrClosed {
		t.Fatalf("Post after a refused Run: %v, want ErrClosed", err)
	}
}

// A shared loop that always has work (a level-triggered descriptor its
// handler never reads) does not starve the goroutines it shares the P
// with, nor a garbage collection: the runtime preempts it.
func TestSharedBusyLoopLetsOthersRun(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	l := newLoop(t)
	a, peer := socketpair(t)
	if _, err := unix.Write(peer, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	if err := l.Add(a, In, funcHandler(func(uint32) { calls.Add(1) })); err != nil {
		t.Fatal(err)
	}
	start(t, l)
	done := make(chan struct{})
	go func() {
		for range 20 {
			time.Sleep(time.Millisecond)
		}
		runtime.GC()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a goroutine sharing the P with a busy loop did not finish")
	}
	if n := calls.Load(); n < 100 {
		t.Fatalf("the busy loop called its handler %d times", n)
	}
	onLoop(t, l, func() {})
}

// An idle shared loop waits raw before it parks only while no
// connection is served off the loops (ServingOffLoop).
func TestSharedLoopHoldsOnlyWithNothingOffLoop(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	l := newLoop(t)
	start(t, l)
	idleSpells := func() uint64 {
		var before, after uint64
		onLoop(t, l, func() { before = l.holds })
		for range 20 {
			onLoop(t, l, func() {})
			time.Sleep(time.Millisecond) // past the hold: the loop parks
		}
		onLoop(t, l, func() { after = l.holds })
		return after - before
	}
	n := idleSpells()
	var refused bool
	onLoop(t, l, func() { refused = l.noHold })
	if refused {
		t.Skip("epoll_pwait2 refused here (a kernel before 5.11, or seccomp): the loop parks at once")
	}
	if n < 10 {
		t.Fatalf("%d raw waits in 20 idle spells with nothing served off the loops, want most of them", n)
	}
	ServingOffLoop(1)
	defer ServingOffLoop(-1)
	if n := idleSpells(); n != 0 {
		t.Fatalf("%d raw waits while a connection was served off the loops, want none", n)
	}
}

// An idle shared loop parks: nothing wakes it, and a timer wakes it at
// its time, not before.
func TestSharedLoopParks(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	l := newLoop(t)
	start(t, l)
	var before, after uint64
	onLoop(t, l, func() { before = l.Round() })
	time.Sleep(300 * time.Millisecond)
	onLoop(t, l, func() { after = l.Round() })
	if rounds := after - before; rounds > 3 {
		t.Fatalf("an idle shared loop ran %d rounds in 300ms, want at most 3", rounds)
	}
	fired := make(chan int64, 1)
	var tm Timer
	var at int64
	tm.F = func() { fired <- l.Now() }
	onLoop(t, l, func() {
		at = l.Now() + int64(50*time.Millisecond)
		l.Arm(&tm, at)
		before = l.Round()
	})
	when := waitFor(t, fired)
	if when < at {
		t.Fatalf("timer fired %v early", time.Duration(at-when))
	}
	onLoop(t, l, func() { after = l.Round() })
	if rounds := after - before; rounds > 3 {
		t.Fatalf("a shared loop ran %d rounds for one timer, want at most 3", rounds)
	}
}

// With one spare P, a second loop is refused while the first runs.
func TestRunCountsRunningLoops(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	a := newLoop(t)
	start(t, a)
	onLoop(t, a, func() {})
	b := newLoop(t)
	if err := b.Run(); err == nil {
		t.Fatal("two loops ran on GOMAXPROCS=2")
	}
}

func TestCloseBeforeRunClosesDescriptors(t *testing.T) {
	l := newLoop(t)
	l.Close()
	select {
	case <-l.Done():
	default:
		t.Fatal("Close before Run left the descriptors open")
	}
	if err := l.Run(); err != ErrClosed {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.wake, &unix.EpollEvent{Events: In}); err == nil {
		t.Fatal("epoll descriptor still open")
	}
}

func TestCloseEndsRunAndDropsPosted(t *testing.T) { eachMode(t, testCloseEndsRunAndDropsPosted) }

func testCloseEndsRunAndDropsPosted(t *testing.T) {
	l := newLoop(t)
	errc := start(t, l)
	onLoop(t, l, func() {})
	l.Close()
	select {
	case err := <-errc:
		if err != ErrClosed {
			t.Fatalf("Run returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := l.Post(func() { t.Error("ran after Close") }); err != ErrClosed {
		t.Fatalf("Post after Close: %v, want ErrClosed", err)
	}
}

func TestAddDelMod(t *testing.T) { eachMode(t, testAddDelMod) }

func testAddDelMod(t *testing.T) {
	l := newLoop(t)
	a, b := socketpair(t)
	var log []int
	got := make(chan struct{}, 4)
	r := &recorder{name: 1, log: &log, fd: a, got: got}
	if err := l.Add(a, In, r); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(a, In, r); err == nil {
		t.Fatal("a descriptor registered twice")
	}
	if err := l.Mod(b, In); err == nil {
		t.Fatal("Mod of an unregistered descriptor")
	}
	start(t, l)
	onLoop(t, l, func() {
		if err := l.Del(a); err != nil {
			t.Error(err)
		}
	})
	if _, err := unix.Write(b, []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A round trip through the loop after the write: had a stayed
	// registered, its event would have been delivered in that round.
	time.Sleep(20 * time.Millisecond)
	onLoop(t, l, func() {})
	select {
	case <-got:
		t.Fatal("handler called after Del")
	default:
	}
	onLoop(t, l, func() {
		if err := l.Add(a, Out, r); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-got: // writable at once
	case <-time.After(10 * time.Second):
		t.Fatal("no Out event after re-adding")
	}
}

// Without signal preemption every garbage collection pause would wait
// for each loop's raw wait to run out: Run refuses.
func TestRunRefusesWithoutAsyncPreemption(t *testing.T) {
	withProcs(t, 2)
	t.Setenv("GODEBUG", "asyncpreemptoff=1")
	l := newLoop(t)
	if err := l.Run(); err == nil {
		t.Fatal("Run started with asyncpreemptoff=1")
	}
	t.Setenv("GODEBUG", "asyncpreemptoff=1,asyncpreemptoff=0")
	l = newLoop(t)
	errc := start(t, l)
	onLoop(t, l, func() {})
	select {
	case err := <-errc:
		t.Fatalf("Run with preemption back on: %v", err)
	default:
	}
}

// A shared loop's only raw wait is bounded (200 µs before it parks): it
// runs without signal preemption.
func TestSharedLoopRunsWithoutAsyncPreemption(t *testing.T) {
	t.Setenv("GODEBUG", "asyncpreemptoff=1")
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	l := newLoop(t)
	errc := start(t, l)
	onLoop(t, l, func() {})
	select {
	case err := <-errc:
		t.Fatalf("shared Run with asyncpreemptoff=1: %v", err)
	default:
	}
}

// A descriptor unregistered and closed during a round, whose number is
// registered again in the same round, does not pass the old descriptor's
// pending event to the new handler.
func TestDelDropsTheRoundsLaterEvents(t *testing.T) { eachMode(t, testDelDropsTheRoundsLaterEvents) }

func testDelDropsTheRoundsLaterEvents(t *testing.T) {
	l := newLoop(t)
	a, peerA := socketpair(t)
	// b is closed by the handler (no cleanup: its number gets reused).
	bfds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, peerB := bfds[0], bfds[1]
	t.Cleanup(func() { unix.Close(peerB) })
	got := make(chan string, 4)
	var stale *recorderFn
	var once bool
	first := &recorderFn{fn: func() {
		if once {
			return // level-triggered: a stays readable
		}
		once = true
		// b's event is already collected in this round.
		if err := l.Del(b); err != nil {
			t.Error(err)
		}
		unix.Close(b)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
		if fds[0] != b {
			got <- "skip"
			return
		}
		stale = &recorderFn{fn: func() {
			select {
			case got <- "stale event reached the new descriptor":
			default:
			}
		}}
		if err := l.Add(fds[0], In, stale); err != nil {
			t.Error(err)
		}
		got <- "first"
	}}
	if err := l.Add(a, In, first); err != nil {
		t.Fatal(err)
	}
	if err := l.Add(b, In, &recorderFn{fn: func() {
		select {
		case got <- "old b's handler after Del":
		default:
		}
	}}); err != nil {
		t.Fatal(err)
	}
	unix.Write(peerA, []byte("x"))
	unix.Write(peerB, []byte("x"))
	start(t, l)
	switch r := <-got; r {
	case "skip":
		t.Skip("the descriptor number was not reused")
	case "first":
	default:
		t.Fatal(r)
	}
	onLoop(t, l, func() {})
	select {
	case r := <-got:
		t.Fatal(r)
	default:
	}
}

type recorderFn struct{ fn func() }

func (r *recorderFn) Ready(uint32) { r.fn() }

// An idle loop is not woken to be preempted: after a round with nothing
// it waits as a blocking system call, so the runtime's 10 ms fairness
// preemption, which would end a raw wait with EINTR about every 10–20 ms,
// leaves it alone.
func TestIdleLoopIsNotWokenByPreemption(t *testing.T) {
	withProcs(t, 2)
	l := newLoop(t)
	start(t, l)
	var before, after uint64
	onLoop(t, l, func() { before = l.Round() })
	time.Sleep(500 * time.Millisecond)
	onLoop(t, l, func() { after = l.Round() })
	// The posted function's own wake-up, the idle timeout that follows
	// it and one more wait: at most a handful of rounds.
	if rounds := after - before; rounds > 10 {
		t.Fatalf("an idle loop ran %d rounds in 500ms, want at most 10", rounds)
	}
}

// A round that follows a releasing wait may start late (its thread took
// a P back), so nothing is Quiet in it; the next raw wait's round is
// complete again.
func TestQuietNotAfterAReleasingWait(t *testing.T) {
	withProcs(t, 2)
	l := newLoop(t)
	a, _ := socketpair(t)
	start(t, l)
	var since uint64
	onLoop(t, l, func() {
		if err := l.Add(a, In|RdHup|ET, funcHandler(func(uint32) {})); err != nil {
			t.Error(err)
		}
		since = l.Round()
	})
	time.Sleep(50 * time.Millisecond) // idle: the loop waits releasing its P
	var before uint64
	onLoop(t, l, func() {
		before = l.released
		if l.Quiet(a, since) {
			t.Errorf("Quiet in round %d, after a releasing wait", l.Round())
		}
	})
	if before == 0 {
		t.Fatal("the idle loop never waited releasing its P")
	}
	// Posted right after, the loop most likely still waits raw (a raw
	// wait lasts up to 5 ms); a round after a releasing wait is retried.
	for try := 0; ; try++ {
		var raw, quiet bool
		var round uint64
		onLoop(t, l, func() {
			raw, quiet, round = l.released == before, l.Quiet(a, since), l.Round()
			before = l.released
		})
		if raw {
			if !quiet {
				t.Errorf("not Quiet in round %d, after a raw wait", round)
			}
			return
		}
		if try == 100 {
			t.Fatal("no round followed a raw wait")
		}
	}
}

// GODEBUG is read as the runtime reads it: the last setting of a key
// wins, any non-zero integer turns asyncpreemptoff on, gccheckmark implies
// it, and what the runtime would ignore is ignored.
func TestAsyncPreemptOff(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                                    false,
		"asyncpreemptoff=1":                   true,
		"asyncpreemptoff=2":                   true,
		"asyncpreemptoff=+1":                  true,
		"asyncpreemptoff=01":                  true,
		"asyncpreemptoff=0":                   false,
		"asyncpreemptoff=1,asyncpreemptoff=0": false,
		"asyncpreemptoff=0,asyncpreemptoff=1": true,
		"gctrace=1,asyncpreemptoff=1":         true,
		" asyncpreemptoff=1":                  false, // not the key
		"asyncpreemptoff=yes":                 false, // not a number
		"asyncpreemptoff":                     false,
		"gccheckmark=1":                       true,
		"gccheckmark=1,asyncpreemptoff=0":     true,
		"gccheckmark=0":                       false,
	} {
		if got := asyncPreemptOff(godebug); got != want {
			t.Errorf("GODEBUG=%q: off %v, want %v", godebug, got, want)
		}
	}
}
