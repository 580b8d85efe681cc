package upstream

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// peers is a loopback server whose accepted connections the test drives
// (accepted) or that echo what they read (echo).
type peers struct {
	ln       net.Listener
	accepted chan net.Conn
	mu       sync.Mutex
	conns    []net.Conn
}

func listenPeers(t *testing.T, ln net.Listener, echo bool) *peers {
	t.Helper()
	s := &peers{ln: ln, accepted: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			if echo {
				go io.Copy(c, c)
			} else {
				s.accepted <- c
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func tcpPeers(t *testing.T, echo bool) *peers {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return listenPeers(t, ln, echo)
}

// next is the server side of the connection the pool dialed last.
func (s *peers) next(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.accepted:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func testPool(t *testing.T, addr string, opts dialOptions, maxConns uint32) *Pool {
	t.Helper()
	p := newPool(addr, false, opts, newBreaker(resource.Thresholds{MaxConnections: maxConns, MaxPendingRequests: 8, MaxRequests: 8}), 0)
	p.configure(&resource.Cluster{ConnectTimeout: 10 * time.Second})
	t.Cleanup(p.close)
	return p
}

func getConn(t *testing.T, p *Pool) *Conn {
	t.Helper()
	c, _, err := p.Get(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// slots returns the connection counts Detach must keep and close must
// release: the breaker's and the pool's.
func slots(p *Pool) [2]int64 { return [2]int64{p.b.conns.Load(), p.open.Load()} }

func wantSlots(t *testing.T, p *Pool, n int64, when string) {
	t.Helper()
	if got := slots(p); got != [2]int64{n, n} {
		t.Fatalf("%s: breaker connections %d, pool open %d, want %d", when, got[0], got[1], n)
	}
}

// rawFD is the descriptor of an attached plain connection.
func rawFD(t *testing.T, c *Conn) int {
	t.Helper()
	fd := -1
	if err := c.raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func fdOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

func nonblocking(t *testing.T, fd int) bool {
	t.Helper()
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl&unix.O_NONBLOCK != 0
}

func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// inRuntimePoller reports whether the socket with inode ino is registered
// in an epoll set of this process other than the ones listed (the
// runtime's network poller is the only other one): the kernel lists each
// registration of an epoll descriptor, with its target's inode, in the
// descriptor's fdinfo.
func inRuntimePoller(t *testing.T, ino uint64, except ...int) bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	want := "ino:" + strconv.FormatUint(ino, 16)
	polls := 0
next:
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, x := range except {
			if n == x {
				continue next
			}
		}
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l != "anon_inode:[eventpoll]" {
			continue
		}
		polls++
		f, err := os.Open("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "tfd:") {
				continue
			}
			for _, w := range strings.Fields(line) {
				if w == want {
					f.Close()
					return true
				}
			}
		}
		f.Close()
	}
	if polls == 0 {
		t.Fatal("no epoll set in the process: the runtime's poller is not where it was looked for")
	}
	return false
}

// waitReadable waits, on an epoll set of its own, until fd is readable.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		t.Fatal(err)
	}
	evs := make([]unix.EpollEvent, 1)
	for {
		n, err := unix.EpollWait(ep, evs, 10_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n != 1 || evs[0].Fd != int32(fd) {
			t.Fatalf("epoll_wait = %d, %v: the socket never became readable", n, err)
		}
		return
	}
}

// echo writes msg through c's net.Conn and reads it back.
func echo(t *testing.T, c *Conn, msg string) {
	t.Helper()
	if err := c.Conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c.Conn, got); err != nil || string(got) != msg {
		t.Fatalf("echo read %q, %v, want %q", got, err, msg)
	}
	if err := c.Conn.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	c.rdl.Forget()
}

func sockaddrString(sa unix.Sockaddr) string {
	if in, ok := sa.(*unix.SockaddrInet4); ok {
		return net.JoinHostPort(net.IP(in.Addr[:]).String(), strconv.Itoa(in.Port))
	}
	return ""
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "upstream"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
