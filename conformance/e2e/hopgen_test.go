package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// hopGen is BenchmarkPolicyHop's load generator: an open-loop, paced
// HTTP/1.1 keep-alive client that runs on one locked OS thread with its own
// epoll loop, so what it measures is the network and whatever sits on the
// path, not Go's scheduler.
//
// Why not goroutines and time.Sleep (the first version): the runtime waits
// for timers in epoll_wait with a millisecond timeout, and rounds any wait
// under 1 ms up to 1 ms, so a pacer sleeping until a slot 0.3 ms away wakes
// up to a millisecond late, and the request then also waits for a worker
// goroutine to be woken on the other P. At 1k req/s (a slot every 1 ms)
// that put about half a millisecond of the generator's own lateness into
// every latency counted from the slot: the direct path's p50 of ~600 µs.
//
// Here the thread waits on a timerfd (nanosecond expiry, timer slack set to
// 1 ns) armed spinAhead before the slot, then polls the sockets without
// blocking until the slot is due, and writes the request itself with one
// write system call on the longest idle connection of the slot's target. Responses
// are read in the same loop, so a response is timed when epoll reports it,
// without a goroutine wakeup in between.
//
// Not SCHED_FIFO: a real-time generator thread was tried, and on a loaded
// machine its writes came up to 0.95 s late (the kernel's real-time
// throttling period) instead of a few ms, most likely because a thread
// that polls before every slot keeps ordinary kernel work on its CPU, such
// as the softirq thread delivering its responses, from running. Its CPU's
// other tasks show in the generator's involuntary context switches
// (hopUsage), which the benchmark prints.
//
// The schedule is a series of rounds, one slot per target each, in a
// random order per round (seeded, so a run can be repeated): A B, B A,
// A B, ... Requests of one round are written within one slot period of each
// other, so whatever the machine does at that moment (a descheduled vCPU,
// an interrupt storm) hits every target of the round alike, and the
// samples of one round form a pair (see pairedQuantileDiffs). The random
// order keeps a target from always being the one written right after the
// generator wakes up, or right behind the other. Blocks of consecutive
// requests per target (the first version) compared different seconds of
// the machine's life, whose noise did not cancel. Each target has its own
// keep-alive connections; a slot whose target has no idle connection waits
// in a FIFO for the next one to free up and is sent from there.
//
// Every request is timed twice: from its scheduled slot (coordinated
// omission corrected: the wait for a connection and any lateness of the
// generator counts) and from its write (the path's own round trip). How
// late it was written is reported too, split into the generator's own
// lateness in reaching the slot (its pacing) and the number of requests
// that waited for a connection (the path queueing), so a run shows
// whether the generator held its schedule.
type hopGen struct {
	Targets []string      // host:port of each target, one slot each per round
	Conns   int           // keep-alive connections per target
	Rate    int           // requests per second per target (rounds per second)
	N       int           // timed rounds: timed requests per target
	Warmup  int           // untimed rounds before timing starts
	Seed    uint64        // order of the targets within each round
	Timeout time.Duration // bound on any single request
	// Timeline, when set, names a file the generator writes with one
	// line per timed request, "round target slot written answered", the
	// times in CLOCK_MONOTONIC nanoseconds: the clock of a scheduler
	// trace taken with trace_clock mono, so slow requests can be matched
	// with what their CPUs ran meanwhile (see doc.go).
	Timeline string
}

// spinAhead is how long before a slot the generator stops sleeping and
// polls: enough to cover a timer wakeup on a busy virtual machine, small
// next to the slot period (0.5 ms for two targets at 1k req/s each) so the
// spin costs at most a sixth of the generator's core, which is its own.
const spinAhead = 80 * time.Microsecond

// hopStats is one target's outcome; durations in nanoseconds, element i
// of each slice from timed round i (so the targets' slices pair up).
type hopStats struct {
	Target   string
	FromSlot []int64
	FromSend []int64
	Dispatch []int64 // write time minus slot
	Behind   []int64 // the generator's pacing error: slot handed out minus slot
	Late     int     // requests written more than 1 ms after their slot
	Queued   int     // requests that waited for a free connection
}

// hopUsage is what the generator's thread cost and where it ran, to show
// that the generator kept up and was not what was measured.
type hopUsage struct {
	CPUs       string        // the generator process's CPU affinity
	Wall       time.Duration // from the first slot to the last response
	User, Sys  time.Duration // the generator thread's CPU time
	Vol, Invol int64         // its voluntary and involuntary context switches
}

// hopResult is the generator's output: one hopStats per target.
type hopResult struct {
	Stats []hopStats
	Usage hopUsage
}

// hopSlot is one position of the schedule.
type hopSlot struct {
	target int
	round  int // timed round, or -1 in the warm-up
}

// schedule returns the generator's slots in order: Warmup untimed rounds,
// then N timed ones, each round every target once in a random order drawn
// from Seed. The warm-up makes every connection carry requests, and the
// proxy hold upstream connections, before anything is timed.
func (g hopGen) schedule() []hopSlot {
	rng := rand.New(rand.NewPCG(g.Seed, 1))
	slots := make([]hopSlot, 0, (g.Warmup+g.N)*len(g.Targets))
	for r := range g.Warmup + g.N {
		round := r - g.Warmup
		if round < 0 {
			round = -1
		}
		for _, t := range rng.Perm(len(g.Targets)) {
			slots = append(slots, hopSlot{target: t, round: round})
		}
	}
	return slots
}

// hopConn is one keep-alive connection of the generator.
type hopConn struct {
	fd     int
	target int
	busy   bool
	slot   int64 // schedule time of the request in flight (ns since start)
	sent   int64
	round  int // its timed round, or -1
	buf    []byte
	n      int
}

var hopRequestBytes = []byte("GET /bench HTTP/1.1\r\nHost: web\r\nUser-Agent: hop\r\n\r\n")

// run generates the load on the calling goroutine, which it locks to its
// OS thread for the duration.
func (g hopGen) run() (*hopResult, error) {
	if len(g.Targets) == 0 || g.Conns < 1 || g.Rate < 1 || g.N < 1 || g.Warmup < 0 {
		return nil, fmt.Errorf("hop generator: bad settings %+v", g)
	}
	if g.Timeout <= 0 {
		g.Timeout = 5 * time.Second
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The timerfd's expiry is otherwise deferred by up to the thread's
	// timer slack (50 µs by default).
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating epoll: %w", err)
	}
	defer unix.Close(ep)
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating timerfd: %w", err)
	}
	defer unix.Close(tfd)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(-1)}); err != nil {
		return nil, fmt.Errorf("watching timerfd: %w", err)
	}

	var conns []*hopConn
	defer func() {
		for _, c := range conns {
			unix.Close(c.fd)
		}
	}()
	idle := make([][]*hopConn, len(g.Targets))
	for ti, addr := range g.Targets {
		for range g.Conns {
			fd, err := hopDial(addr, g.Timeout)
			if err != nil {
				return nil, err
			}
			c := &hopConn{fd: fd, target: ti, buf: make([]byte, 4096)}
			conns = append(conns, c)
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(len(conns) - 1)}); err != nil {
				return nil, fmt.Errorf("watching a connection: %w", err)
			}
			idle[ti] = append(idle[ti], c)
		}
	}

	stats := make([]hopStats, len(g.Targets))
	for i := range stats {
		stats[i] = hopStats{Target: g.Targets[i], FromSlot: make([]int64, g.N), FromSend: make([]int64, g.N), Dispatch: make([]int64, g.N), Behind: make([]int64, g.N)}
	}
	type waiting struct {
		slot  int64
		round int
	}
	backlog := make([][]waiting, len(g.Targets)) // FIFO per target

	sched := g.schedule()
	remaining := len(sched)
	timed := 0 // timed responses received
	// Slots come Rate·len(Targets) times a second, evenly spaced, so each
	// target gets Rate requests a second.
	period := int64(time.Second) / int64(g.Rate*len(g.Targets))

	var ru0 unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru0); err != nil {
		return nil, fmt.Errorf("reading the thread's usage: %w", err)
	}
	base := time.Now()
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return nil, fmt.Errorf("reading the clock: %w", err)
	}
	now := func() int64 { return int64(time.Since(base)) }
	var timeline []byte

	send := func(c *hopConn, w waiting, t int64) error {
		c.busy, c.slot, c.round, c.sent, c.n = true, w.slot, w.round, t, 0
		n, err := unix.Write(c.fd, hopRequestBytes)
		if err != nil || n != len(hopRequestBytes) {
			return fmt.Errorf("writing a request to %s: %d bytes, %v", g.Targets[c.target], n, err)
		}
		if w.round >= 0 {
			st := &stats[c.target]
			st.Dispatch[w.round] = t - w.slot
			if t-w.slot > int64(time.Millisecond) {
				st.Late++
			}
		}
		return nil
	}
	dispatch := func(target int, w waiting) error {
		if l := idle[target]; len(l) > 0 {
			// The longest idle first: every connection keeps being used,
			// so none sits unused long enough for a server's header
			// timeout to close it (Go's net/http closes a new connection
			// whose first request does not come within ReadHeaderTimeout).
			c := l[0]
			idle[target] = l[1:]
			return send(c, w, now())
		}
		if w.round >= 0 {
			stats[target].Queued++
		}
		backlog[target] = append(backlog[target], w)
		return nil
	}
	complete := func(c *hopConn, t int64) error {
		c.busy = false
		if c.round >= 0 {
			st := &stats[c.target]
			st.FromSlot[c.round] = t - c.slot
			st.FromSend[c.round] = t - c.sent
			if g.Timeline != "" {
				m := mono.Nano()
				timeline = fmt.Appendf(timeline, "%d %d %d %d %d\n", c.round, c.target, m+c.slot, m+c.sent, m+t)
			}
			timed++
		}
		remaining--
		if b := backlog[c.target]; len(b) > 0 {
			backlog[c.target] = b[1:]
			return send(c, b[0], t)
		}
		idle[c.target] = append(idle[c.target], c)
		return nil
	}

	events := make([]unix.EpollEvent, len(conns)+1)
	k := 0         // schedule position; -1 once every slot is handed out
	var next int64 // slot time of position k
	for remaining > 0 {
		t := now()
		for k >= 0 && next <= t {
			s := sched[k]
			if s.round >= 0 {
				stats[s.target].Behind[s.round] = t - next
			}
			if err := dispatch(s.target, waiting{slot: next, round: s.round}); err != nil {
				return nil, err
			}
			k++
			next = int64(k) * period
			if k == len(sched) {
				k = -1
			}
		}
		for _, c := range conns {
			if c.busy && t-c.sent > int64(g.Timeout) {
				return nil, fmt.Errorf("request to %s: no response within %v", g.Targets[c.target], g.Timeout)
			}
		}
		wait := 100 // draining: re-check the timeouts every 100 ms
		if k >= 0 {
			wait = 0 // the slot is close: poll
			if next-t > int64(spinAhead) {
				wait = -1 // sleep until a response or the timer
				if err := armTimer(tfd, base, next-int64(spinAhead)); err != nil {
					return nil, err
				}
			}
		}
		n, err := unix.EpollWait(ep, events, wait)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("waiting for events: %w", err)
		}
		t = now()
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd < 0 {
				var b [8]byte
				unix.Read(tfd, b[:])
				continue
			}
			c := conns[ev.Fd]
			if !c.busy {
				return nil, fmt.Errorf("%s sent bytes or closed without a request", g.Targets[c.target])
			}
			ok, err := c.read()
			if err != nil {
				return nil, fmt.Errorf("reading from %s: %w", g.Targets[c.target], err)
			}
			if ok {
				if err := complete(c, t); err != nil {
					return nil, err
				}
			}
		}
	}
	wall := time.Since(base)
	if g.Timeline != "" {
		if err := os.WriteFile(g.Timeline, timeline, 0o644); err != nil {
			return nil, fmt.Errorf("writing the timeline: %w", err)
		}
	}
	var ru1 unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru1); err != nil {
		return nil, fmt.Errorf("reading the thread's usage: %w", err)
	}
	if timed != g.N*len(g.Targets) {
		return nil, fmt.Errorf("hop generator: %d timed responses, want %d", timed, g.N*len(g.Targets))
	}
	tv := func(v unix.Timeval) time.Duration { return time.Duration(v.Nano()) }
	return &hopResult{Stats: stats, Usage: hopUsage{
		CPUs:  affinity(),
		Wall:  wall,
		User:  tv(ru1.Utime) - tv(ru0.Utime),
		Sys:   tv(ru1.Stime) - tv(ru0.Stime),
		Vol:   ru1.Nvcsw - ru0.Nvcsw,
		Invol: ru1.Nivcsw - ru0.Nivcsw,
	}}, nil
}

// affinity lists the CPUs this process may run on ("0,1"), or why not.
func affinity() string {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return "unknown: " + err.Error()
	}
	var cpus []string
	for c := range len(set) * 64 {
		if set.IsSet(c) {
			cpus = append(cpus, strconv.Itoa(c))
		}
	}
	return strings.Join(cpus, ",")
}

// armTimer sets the timerfd to expire at base+at (absolute, monotonic).
// time.Time carries no monotonic reading in nanoseconds one could hand
// the kernel, so the expiry is computed from CLOCK_MONOTONIC now.
func armTimer(tfd int, base time.Time, at int64) error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("reading the clock: %w", err)
	}
	d := at - int64(time.Since(base))
	if d < 1 {
		d = 1
	}
	exp := unix.NsecToTimespec(ts.Nano() + d)
	its := unix.ItimerSpec{Value: exp}
	if err := unix.TimerfdSettime(tfd, unix.TFD_TIMER_ABSTIME, &its, nil); err != nil {
		return fmt.Errorf("arming the timer: %w", err)
	}
	return nil
}

// read reads what the connection has and reports whether the response to
// its request is complete. Only one request is ever in flight, so bytes
// beyond its response are an error.
func (c *hopConn) read() (bool, error) {
	for {
		if c.n == len(c.buf) {
			return false, fmt.Errorf("response longer than %d bytes", len(c.buf))
		}
		n, err := unix.Read(c.fd, c.buf[c.n:])
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, fmt.Errorf("connection closed after %d response bytes", c.n)
		}
		c.n += n
	}
	head := bytes.Index(c.buf[:c.n], []byte("\r\n\r\n"))
	if head < 0 {
		return false, nil
	}
	if !bytes.HasPrefix(c.buf, []byte("HTTP/1.1 200 ")) {
		line, _, _ := bytes.Cut(c.buf[:c.n], []byte("\r\n"))
		return false, fmt.Errorf("status line %q", line)
	}
	cl := -1
	for _, line := range bytes.Split(c.buf[:head], []byte("\r\n"))[1:] {
		const name = "content-length:"
		if len(line) > len(name) && bytes.EqualFold(line[:len(name)], []byte(name)) {
			v, err := strconv.Atoi(string(bytes.TrimSpace(line[len(name):])))
			if err != nil || v < 0 {
				return false, fmt.Errorf("content-length %q", line)
			}
			cl = v
		}
	}
	if cl < 0 {
		return false, fmt.Errorf("response without content-length")
	}
	switch end := head + 4 + cl; {
	case c.n < end:
		return false, nil
	case c.n > end:
		return false, fmt.Errorf("%d bytes after the response", c.n-end)
	}
	return true, nil
}

// hopDial connects to addr and returns a non-blocking socket the caller
// owns, detached from Go's poller.
func hopDial(addr string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return -1, fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("duplicating the socket: %w", derr)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
