package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// TestDetach: a detached connection's descriptor is the same TCP
// connection, non-blocking, out of the runtime's poller (the original
// descriptor is closed and no registration of the socket is left), served
// from an epoll set of its own; it keeps its slot and buffers until
// Discard releases the slot, once.
func TestDetach(t *testing.T) {
	s := tcpPeers(t, true)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, 4)
	c := getConn(t, p)
	orig := rawFD(t, c)
	ino := inode(t, orig)
	if !inRuntimePoller(t, ino) {
		t.Fatal("control: a dialed connection is not found in the runtime's poller")
	}
	local := c.LocalAddr().String()
	wantSlots(t, p, 1, "dialed")
	copy(c.Buf, "left")
	c.R, c.W = 1, 4
	buf, out := &c.Buf[0], &c.Out[:1][0]

	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if fdOpen(orig) {
		t.Errorf("the original descriptor %d is still open", orig)
	}
	if c.Conn != nil || c.raw != nil {
		t.Error("a detached connection keeps its net.Conn")
	}
	if c.FD() != fd || !c.Detached() || fd < 0 {
		t.Errorf("FD() = %d, Detached() = %v, Detach returned %d", c.FD(), c.Detached(), fd)
	}
	wantSlots(t, p, 1, "detached")
	if &c.Buf[0] != buf || &c.Out[:1][0] != out || c.R != 1 || c.W != 4 || string(c.Buf[c.R:c.W]) != "eft" {
		t.Error("a detached connection lost its buffers or their unread bytes")
	}
	if !nonblocking(t, fd) {
		t.Error("the detached descriptor is blocking")
	}
	if got := inode(t, fd); got != ino {
		t.Fatalf("the detached descriptor is socket %d, the connection was %d", got, ino)
	}
	if sa, err := unix.Getsockname(fd); err != nil || sockaddrString(sa) != local {
		t.Errorf("the detached socket is bound to %v (%v), the connection to %s", sa, err, local)
	}
	if inRuntimePoller(t, ino) {
		t.Fatal("the detached socket is still registered in the runtime's poller")
	}

	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Write(fd, []byte("ping")); n != 4 || err != nil {
		t.Fatalf("write on the detached descriptor: %d, %v", n, err)
	}
	evs := make([]unix.EpollEvent, 1)
	n, err := unix.EpollWait(ep, evs, 10_000)
	if n != 1 || err != nil || evs[0].Fd != int32(fd) || evs[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("epoll_wait on the loop's set = %d, %v, %+v", n, err, evs[0])
	}
	got := make([]byte, 8)
	if n, err := unix.Read(fd, got); err != nil || string(got[:n]) != "ping" {
		t.Fatalf("read on the detached descriptor: %q, %v", got[:n], err)
	}
	if inRuntimePoller(t, ino, ep) {
		t.Fatal("serving the detached socket registered it in the runtime's poller")
	}

	c.Discard()
	wantSlots(t, p, 0, "discarded")
	if fdOpen(fd) || c.FD() != -1 {
		t.Errorf("Discard left the detached descriptor %d open (FD() = %d)", fd, c.FD())
	}
	c.Discard()
	wantSlots(t, p, 0, "discarded twice")
}

// TestDetachNonblocking: the detached descriptor is non-blocking even
// when something cleared O_NONBLOCK on the socket (the flag belongs to
// the open file both descriptors share).
func TestDetachNonblocking(t *testing.T) {
	s := tcpPeers(t, true)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, 4)
	c := getConn(t, p)
	if err := unix.SetNonblock(rawFD(t, c), false); err != nil {
		t.Fatal(err)
	}
	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Discard()
	if !nonblocking(t, fd) {
		t.Fatal("the detached descriptor is blocking")
	}
	// A read with nothing to read returns at once.
	if _, err := unix.Read(fd, make([]byte, 1)); err != unix.EAGAIN {
		t.Fatalf("read on an idle detached descriptor: %v, want EAGAIN", err)
	}
}

// TestAttach: an attached connection (TCP, or a Unix stream socket of a
// pipe endpoint) is a pooled connection again, read and written through
// sockio from the runtime's poller, with a deadline armed afresh; it is
// pooled and reused, and Discard releases its slot once.
func TestAttach(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) { testAttach(t, network) })
	}
}

func testAttach(t *testing.T, network string) {
	var p *Pool
	if network == "unix" {
		path := t.TempDir() + "/upstream.sock"
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		listenPeers(t, ln, true)
		p = testPool(t, "unix:"+path, dialOptions{}, 4)
	} else {
		p = testPool(t, tcpPeers(t, true).ln.Addr().String(), dialOptions{}, 4)
	}
	c := getConn(t, p)
	echo(t, c, "before")
	ino := inode(t, rawFD(t, c))
	now := time.Now()
	at, ok := c.Deadline(now, time.Minute)
	if !ok {
		t.Fatal("control: the first deadline of a connection is not armed")
	}
	if err := c.SetReadDeadline(at); err != nil {
		t.Fatal(err)
	}

	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte("during")); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, fd)
	if n, err := unix.Read(fd, c.Buf); err != nil || string(c.Buf[:n]) != "during" {
		t.Fatalf("read on the detached descriptor: %q, %v", c.Buf[:n], err)
	}
	if err := c.Attach(); err != nil {
		t.Fatal(err)
	}
	if fdOpen(fd) {
		t.Errorf("Attach left the loop's descriptor %d open", fd)
	}
	if c.FD() != -1 || c.Detached() || c.raw == nil {
		t.Fatalf("attached: FD() = %d, Detached() = %v, raw %v", c.FD(), c.Detached(), c.raw != nil)
	}
	if _, ok := c.Conn.(*sockio.Conn); !ok {
		t.Fatalf("an attached connection is a %T, not wrapped as a dialed one", c.Conn)
	}
	wantSlots(t, p, 1, "attached")
	nfd := rawFD(t, c)
	if inode(t, nfd) != ino || !nonblocking(t, nfd) {
		t.Fatal("the attached descriptor is another socket, or blocking")
	}
	if !inRuntimePoller(t, ino) {
		t.Fatal("the attached socket is not in the runtime's poller")
	}
	if _, ok := c.Deadline(now, time.Minute); !ok {
		t.Error("the attached socket has no deadline, yet the one armed before Detach is taken as armed")
	}
	echo(t, c, "after")

	p.PutAt(c, time.Now())
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 1 {
		t.Fatalf("%d idle connections after PutAt, want 1", idle)
	}
	if c2 := p.GetIdle(time.Now()); c2 != c {
		t.Fatal("the attached connection was not reused")
	}
	echo(t, c, "reused")
	c.Discard()
	wantSlots(t, p, 0, "discarded")
	c.Discard()
	wantSlots(t, p, 0, "discarded twice")
}

// TestDetachedAbort: Abort ends a detached socket (the peer sees the end
// of stream) without closing it or freeing its slot; Discard does that,
// once, and Abort after it touches no descriptor.
func TestDetachedAbort(t *testing.T) {
	s := tcpPeers(t, false)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, 4)
	c := getConn(t, p)
	srv := s.next(t)
	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	c.Abort()
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := srv.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the peer read %d, %v after Abort, want the end of stream", n, err)
	}
	if !fdOpen(fd) || c.FD() != fd {
		t.Fatal("Abort closed the detached descriptor")
	}
	wantSlots(t, p, 1, "aborted")
	c.Discard()
	wantSlots(t, p, 0, "discarded")
	c.Discard()
	wantSlots(t, p, 0, "discarded twice")

	// The number of the closed descriptor now names another socket, which
	// a late Abort must leave alone.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	if sp[0] != fd && sp[1] != fd {
		if err := unix.Dup3(sp[0], fd, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
	}
	c.Abort()
	if _, err := unix.Write(fd, []byte("x")); err != nil {
		t.Fatalf("Abort after Discard shut down the descriptor that took the number: %v", err)
	}
}

// TestProbeDetached: the reuse probe of a detached connection passes an
// idle socket only: a byte or a close from the server fails it.
func TestProbeDetached(t *testing.T) {
	s := tcpPeers(t, false)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, 4)

	c := getConn(t, p)
	srv := s.next(t)
	if c.ProbeDetached() {
		t.Error("an attached connection passes ProbeDetached")
	}
	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if !c.ProbeDetached() || c.PeerClosed() {
		t.Fatal("an idle detached connection fails the probe")
	}
	if a := testing.AllocsPerRun(100, func() { c.ProbeDetached() }); a != 0 {
		t.Errorf("ProbeDetached allocates %v times", a)
	}
	if _, err := srv.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitReadable(t, fd)
	if c.ProbeDetached() {
		t.Error("a detached connection with a byte to read passes the probe")
	}
	if c.PeerClosed() {
		t.Error("a byte to read is taken for the server's close")
	}
	c.Discard()
	if c.ProbeDetached() {
		t.Error("a discarded connection passes the probe")
	}

	c = getConn(t, p)
	srv = s.next(t)
	fd, err = c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	waitReadable(t, fd)
	if c.ProbeDetached() {
		t.Error("a detached connection the server closed passes the probe")
	}
	if !c.PeerClosed() {
		t.Error("PeerClosed misses the server's close of a detached connection")
	}
	c.Discard()
	wantSlots(t, p, 0, "discarded")
}

// TestPutAtClosesDetached: a detached connection returned without Attach
// is closed, never pooled.
func TestPutAtClosesDetached(t *testing.T) {
	_, p, c, fd := detached(t, 4)
	p.PutAt(c, time.Now())
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 0 {
		t.Fatal("a detached connection was pooled")
	}
	if fdOpen(fd) {
		t.Error("PutAt left the detached descriptor open")
	}
	wantSlots(t, p, 0, "put back detached")
	c.Discard()
	wantSlots(t, p, 0, "put back and discarded")
}

// TestAttachFailure: a descriptor that is no longer a socket fails
// Attach, which closes the connection and frees its slot.
func TestAttachFailure(t *testing.T) {
	_, p, c, fd := detached(t, 4)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	if err := unix.Dup3(pipe[0], fd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(); err == nil {
		t.Fatal("a pipe was attached as an upstream connection")
	}
	if fdOpen(fd) {
		t.Error("a failed Attach left the descriptor open")
	}
	if c.Conn != nil || c.Detached() || c.FD() != -1 {
		t.Error("a failed Attach left a usable-looking connection")
	}
	wantSlots(t, p, 0, "failed attach")
	c.Discard()
	wantSlots(t, p, 0, "failed attach, discarded")
	if err := c.Attach(); !errors.Is(err, ErrNotDetached) {
		t.Errorf("Attach of a closed connection: %v", err)
	}
}

// TestDetachDupFailure: when the descriptor cannot be duplicated (the
// process is at its descriptor limit) the connection stays attached and
// usable.
func TestDetachDupFailure(t *testing.T) {
	s := tcpPeers(t, true)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, 4)
	c := getConn(t, p)
	orig := rawFD(t, c)

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	free, err := unix.FcntlInt(uintptr(orig), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(free)
	low := lim
	low.Cur = uint64(free) // every descriptor below the limit is taken
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skipf("lowering RLIMIT_NOFILE: %v", err)
	}
	fd, derr := c.Detach()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if derr == nil || !errors.Is(derr, unix.EMFILE) || fd != -1 {
		t.Fatalf("Detach at the descriptor limit = %d, %v, want EMFILE", fd, derr)
	}
	if c.Detached() || c.FD() != -1 || c.raw == nil || rawFD(t, c) != orig {
		t.Fatal("a failed Detach changed the connection")
	}
	wantSlots(t, p, 1, "failed detach")
	echo(t, c, "still")
	c.Discard()
	wantSlots(t, p, 0, "discarded")
}

// TestDetachRefused: TLS connections and connections without a raw
// socket are not detached and stay usable; nor is a connection detached
// twice, a closed one detached, or an attached one attached.
func TestDetachRefused(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	if err != nil {
		t.Fatal(err)
	}
	s := listenPeers(t, ln, true)
	p := testPool(t, s.ln.Addr().String(), dialOptions{tls: &clientTLS{cfg: &resource.UpstreamTLS{}}}, 4)
	c := getConn(t, p)
	if c.tls == nil {
		t.Fatal("control: the connection is not TLS")
	}
	if fd, err := c.Detach(); !errors.Is(err, ErrNotDetachable) || fd != -1 {
		t.Fatalf("Detach of a TLS connection = %d, %v", fd, err)
	}
	if c.Detached() || c.FD() != -1 || c.Conn != c.tls {
		t.Fatal("a refused Detach changed the TLS connection")
	}
	wantSlots(t, p, 1, "refused")
	echo(t, c, "tls")
	if err := c.Attach(); !errors.Is(err, ErrNotDetached) {
		t.Errorf("Attach of an attached connection: %v", err)
	}
	c.Discard()
	if _, err := c.Detach(); err == nil {
		t.Error("a closed connection was detached")
	}
	wantSlots(t, p, 0, "discarded")

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pc := &Conn{Conn: a, pool: p}
	if _, err := pc.Detach(); !errors.Is(err, ErrNotDetachable) || pc.Conn != a {
		t.Errorf("Detach of a connection without a socket: %v", err)
	}

	_, _, c, fd := detached(t, 4)
	if fd2, err := c.Detach(); err == nil || fd2 != -1 || c.FD() != fd {
		t.Errorf("a second Detach = %d, %v", fd2, err)
	}
	c.Discard()
}

// TestLoopHandsBack: the pool tells a loop when to give idle connections
// back (requests queue at max_connections; the pool left the
// configuration), and Attach plus PutAt hands the connection to the
// queued request.
func TestLoopHandsBack(t *testing.T) {
	_, p, c, _ := detached(t, 1)
	if p.Queued() || p.Closed() {
		t.Fatal("an idle pool reports queued requests, or closed")
	}
	got := make(chan *Conn, 1)
	go func() {
		c2, _, err := p.Get(context.Background(), 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- c2
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Queued() {
		if time.Now().After(deadline) {
			t.Fatal("the request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.Attach(); err != nil {
		t.Fatal(err)
	}
	p.PutAt(c, time.Now())
	c2 := <-got
	if c2 != c {
		t.Fatal("the queued request was not handed the attached connection")
	}
	if p.Queued() {
		t.Error("Queued after the request got its connection")
	}
	echo(t, c2, "handed")
	wantSlots(t, p, 1, "handed")

	if _, err := c2.Detach(); err != nil {
		t.Fatal(err)
	}
	p.close()
	if !p.Closed() {
		t.Fatal("a closed pool is not Closed")
	}
	if err := c2.Attach(); err != nil {
		t.Fatal(err)
	}
	p.PutAt(c2, time.Now())
	wantSlots(t, p, 0, "returned to a closed pool")
}

// TestOnQueueReclaims: a request queueing for the pool's only connection,
// which a loop holds detached, calls the loop's OnQueue function (once per
// queueing, whatever the number of registrations under one key), and gets
// the connection the function gives back.
func TestOnQueueReclaims(t *testing.T) {
	_, p, c, _ := detached(t, 1)
	var calls atomic.Int32
	give := func() {
		if calls.Add(1) > 1 {
			return // the pool's close at cleanup calls back too
		}
		if err := c.Attach(); err != nil {
			t.Error(err)
			return
		}
		p.PutAt(c, time.Now())
	}
	type loopKey struct{}
	for range 3 {
		p.OnQueue(loopKey{}, func() { go give() })
	}
	c2, _, err := p.Get(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c2 != c {
		t.Fatal("the queued request did not get the connection the loop gave back")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnQueue function called %d times, want 1", n)
	}
	echo(t, c2, "reclaimed")
	wantSlots(t, p, 1, "reclaimed")
}

// TestCloseCallsOnQueue: a pool leaving the configuration calls the loops
// back, so that they close the idle connections they hold of it (their
// slots count in a breaker the cluster's next pool shares).
func TestCloseCallsOnQueue(t *testing.T) {
	_, p, c, _ := detached(t, 4)
	called := make(chan bool, 1)
	p.OnQueue(t, func() { called <- p.Closed() })
	p.close()
	select {
	case closed := <-called:
		if !closed {
			t.Fatal("called back before the pool was closed")
		}
	default:
		t.Fatal("closing the pool did not call the loops back")
	}
	c.Discard()
	wantSlots(t, p, 0, "discarded after close")
}

// detached dials a connection of a fresh pool (maxConns connections) to a
// fresh loopback peer and detaches it.
func detached(t *testing.T, maxConns uint32) (*peers, *Pool, *Conn, int) {
	t.Helper()
	s := tcpPeers(t, true)
	p := testPool(t, s.ln.Addr().String(), dialOptions{}, maxConns)
	c := getConn(t, p)
	fd, err := c.Detach()
	if err != nil {
		t.Fatal(err)
	}
	return s, p, c, fd
}
