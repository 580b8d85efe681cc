package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

// ProxyConfig configures a pass-through proxy in the node namespace.
type ProxyConfig struct {
	// Port is the transparent listener port.
	Port int
	// Listeners is the size of the SO_REUSEPORT group (default: one per
	// CPU).
	Listeners int
	// Identity returns the source identity for a client address; it goes
	// into the upstream socket mark. Nil marks upstreams with identity 0.
	Identity func(client netip.Addr) uint32
	// OriginalSource binds upstream connections to the client's address.
	OriginalSource bool
	// Parked lists listeners of the group that accept nothing:
	// connections the kernel hands them wait in their accept queue (for
	// tests of what becomes of a queue when its listener closes).
	Parked []int
}

// Proxied records one connection the proxy handled.
type Proxied struct {
	Client         netip.AddrPort
	OriginalDst    netip.AddrPort
	UpstreamLocal  netip.AddrPort
	Listener       int
	UpstreamDialed bool
}

// Proxy is a transparent pass-through TCP proxy: it accepts redirected
// connections, recovers their original destination, connects there with
// the proxy mark, and copies bytes both ways. It stands in for the node
// proxy in tests and benchmarks.
type Proxy struct {
	cfg       ProxyConfig
	node      *Namespace
	listeners []*net.TCPListener
	accepted  atomic.Int64
	wg        sync.WaitGroup

	mu    sync.Mutex
	seen  []Proxied
	conns map[net.Conn]struct{}
}

// StartProxy opens the proxy's listeners inside the node namespace.
func (b *Bed) StartProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Listeners <= 0 {
		cfg.Listeners = runtime.NumCPU()
	}
	p := &Proxy{cfg: cfg, node: b.Node, conns: map[net.Conn]struct{}{}}
	err := b.Node.Do(func() error {
		var err error
		p.listeners, err = transparent.ListenGroup(context.Background(), "tcp", fmt.Sprintf("[::]:%d", cfg.Port), cfg.Listeners)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, l := range p.listeners {
		if slices.Contains(cfg.Parked, i) {
			continue
		}
		p.wg.Add(1)
		go p.acceptLoop(i, l)
	}
	return p, nil
}

func (p *Proxy) acceptLoop(idx int, l *net.TCPListener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.handle(idx, c)
	}
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) handle(idx int, c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	p.track(c, true)
	defer p.track(c, false)
	client := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	rec := Proxied{Client: client, Listener: idx}
	dst, err := transparent.OriginalDestination(c)
	rec.OriginalDst = dst
	if err != nil {
		p.record(rec)
		return
	}
	var id uint32
	if p.cfg.Identity != nil {
		id = p.cfg.Identity(client.Addr())
	}
	mark, err := transparent.UpstreamMark(id)
	if err != nil {
		p.record(rec)
		return
	}
	opts := transparent.DialOptions{Mark: mark}
	if p.cfg.OriginalSource {
		opts.Source = client.Addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	up, err := p.node.DialWith(ctx, transparent.Dialer(opts), "tcp", dst.String())
	cancel()
	if err != nil {
		p.record(rec)
		return
	}
	defer up.Close()
	p.track(up, true)
	defer p.track(up, false)
	rec.UpstreamDialed = true
	la := up.LocalAddr().(*net.TCPAddr).AddrPort()
	rec.UpstreamLocal = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
	p.record(rec)

	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

func (p *Proxy) record(r Proxied) {
	p.mu.Lock()
	p.seen = append(p.seen, r)
	p.mu.Unlock()
}

// Accepted is the number of connections the proxy accepted.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Seen returns a copy of the connections handled so far.
func (p *Proxy) Seen() []Proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Proxied(nil), p.seen...)
}

// CloseListener closes listener i of the group; the others keep
// accepting.
func (p *Proxy) CloseListener(i int) error {
	return p.listeners[i].Close()
}

// Queued is the length of listener i's accept queue: connections the
// kernel completed for it that it has not accepted yet.
func (p *Proxy) Queued(i int) (int, error) {
	rc, err := p.listeners[i].SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// On a listening socket tcpi_unacked is the accept queue's length.
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("reading TCP_INFO of listener %d: %w", i, serr)
	}
	return int(info.Unacked), nil
}

// Close stops accepting, closes every open connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	var errs []error
	for _, l := range p.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return errors.Join(errs...)
}
