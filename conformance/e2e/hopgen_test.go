package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
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
// Targets are served in alternating blocks (A, B, A, B, ...) of block
// requests on one schedule, so drift in the machine's load hits every
// target alike. Each target has its own keep-alive connections; a slot
// whose target has no idle connection waits in a FIFO for the next one to
// free up and is sent from there.
//
// Every request is timed twice: from its scheduled slot (coordinated
// omission corrected: the wait for a connection and any lateness of the
// generator counts) and from its write (the path's own round trip). The
// dispatch lateness (write minus slot) is reported too, so a run shows
// whether the generator held its schedule.
type hopGen struct {
	Targets []string      // host:port of each target, alternated in blocks
	Conns   int           // keep-alive connections per target
	Rate    int           // requests per second over all targets
	Block   int           // consecutive requests per target before switching
	N       int           // timed requests per target
	Warmup  int           // untimed requests per target before timing starts
	Timeout time.Duration // bound on any single request
}

// spinAhead is how long before a slot the generator stops sleeping and
// polls: enough to cover a timer wakeup on a busy virtual machine, small
// next to the 1 ms slot so the spin costs a few percent of one core.
const spinAhead = 80 * time.Microsecond

// hopStats is one target's outcome; durations in nanoseconds.
type hopStats struct {
	Target   string
	FromSlot []int64 // sorted
	FromSend []int64 // sorted
	Dispatch []int64 // sorted: write time minus slot
	Late     int     // requests written more than 1 ms after their slot
}

func (s hopStats) q(v []int64, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	return time.Duration(v[min(int(p*float64(len(v))), len(v)-1)])
}

// slotTarget says which target schedule position k goes to and whether
// it is timed. Warm-up slots come first, in the same alternation (blocks
// of at most Warmup), so every connection has carried requests, and the
// proxy holds upstream connections, before anything is timed.
func (g hopGen) slotTarget(k int) (target int, timed bool) {
	w := g.Warmup * len(g.Targets)
	if k < w {
		return (k / min(g.Block, g.Warmup)) % len(g.Targets), false
	}
	return ((k - w) / g.Block) % len(g.Targets), true
}

// hopConn is one keep-alive connection of the generator.
type hopConn struct {
	fd     int
	target int
	busy   bool
	slot   int64 // schedule time of the request in flight (ns since start)
	sent   int64
	timed  bool
	buf    []byte
	n      int
}

var hopRequestBytes = []byte("GET /bench HTTP/1.1\r\nHost: web\r\nUser-Agent: hop\r\n\r\n")

// run generates the load on the calling goroutine, which it locks to its
// OS thread for the duration.
func (g hopGen) run() ([]hopStats, error) {
	if len(g.Targets) == 0 || g.Conns < 1 || g.Rate < 1 || g.Block < 1 || g.N < 1 {
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
		stats[i] = hopStats{Target: g.Targets[i], FromSlot: make([]int64, 0, g.N), FromSend: make([]int64, 0, g.N), Dispatch: make([]int64, 0, g.N)}
	}
	backlog := make([][]int64, len(g.Targets)) // waiting slots (ns), FIFO
	timedBacklog := make([][]bool, len(g.Targets))

	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	period := int64(time.Second) / int64(g.Rate)
	perTarget := g.Warmup + g.N
	total := perTarget * len(g.Targets)
	// Blocks of block requests alternate over the targets; every target
	// gets N timed requests when N is a multiple of block, otherwise the
	// last round is cut short: the schedule runs until every target has N.
	done := make([]int, len(g.Targets))
	remaining := total

	send := func(c *hopConn, slot int64, timed bool, t int64) error {
		c.busy, c.slot, c.timed, c.sent, c.n = true, slot, timed, t, 0
		n, err := unix.Write(c.fd, hopRequestBytes)
		if err != nil || n != len(hopRequestBytes) {
			return fmt.Errorf("writing a request to %s: %d bytes, %v", g.Targets[c.target], n, err)
		}
		if timed {
			st := &stats[c.target]
			st.Dispatch = append(st.Dispatch, t-slot)
			if t-slot > int64(time.Millisecond) {
				st.Late++
			}
		}
		return nil
	}
	dispatch := func(target int, slot int64, timed bool) error {
		if l := idle[target]; len(l) > 0 {
			// The longest idle first: every connection keeps being used,
			// so none sits unused long enough for a server's header
			// timeout to close it (Go's net/http closes a new connection
			// whose first request does not come within ReadHeaderTimeout).
			c := l[0]
			idle[target] = l[1:]
			return send(c, slot, timed, now())
		}
		backlog[target] = append(backlog[target], slot)
		timedBacklog[target] = append(timedBacklog[target], timed)
		return nil
	}
	complete := func(c *hopConn, t int64) error {
		c.busy = false
		if c.timed {
			st := &stats[c.target]
			st.FromSlot = append(st.FromSlot, t-c.slot)
			st.FromSend = append(st.FromSend, t-c.sent)
		}
		remaining--
		if b := backlog[c.target]; len(b) > 0 {
			slot, timed := b[0], timedBacklog[c.target][0]
			backlog[c.target], timedBacklog[c.target] = b[1:], timedBacklog[c.target][1:]
			return send(c, slot, timed, t)
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
			target, timed := g.slotTarget(k)
			if done[target] < perTarget {
				done[target]++
				if err := dispatch(target, next, timed); err != nil {
					return nil, err
				}
			}
			k++
			next = int64(k) * period
			if slices.Min(done) == perTarget {
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
	for i := range stats {
		slices.Sort(stats[i].FromSlot)
		slices.Sort(stats[i].FromSend)
		slices.Sort(stats[i].Dispatch)
	}
	return stats, nil
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
