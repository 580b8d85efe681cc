package udpproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Lookup gives the current clusters; called once per new session, from
// the socket's read goroutine.
type Lookup interface {
	Cluster(name string) *upstream.Cluster
}

// Spec is the desired state of one UDP listener.
type Spec struct {
	Name    string
	Address string // "ip:port"
	Config  *resource.UDPListener
}

// Manager owns the UDP listeners' sockets and their sessions.
type Manager struct {
	lookup Lookup
	logger *slog.Logger

	mu     sync.Mutex
	bound  map[string]*socket
	closed bool
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.logger = l } }

// New returns a manager without listeners.
func New(lookup Lookup, opts ...Option) *Manager {
	m := &Manager{lookup: lookup, logger: slog.Default(), bound: map[string]*socket{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Prepare binds every address of specs not bound yet and returns the
// function that makes the manager serve exactly specs, or an error (and
// nothing bound) when a bind fails. The caller calls commit or abort
// exactly once, so that a UDP and a TCP listener update apply together
// or not at all.
func (m *Manager) Prepare(specs []*Spec) (commit, abort func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, errors.New("UDP listener manager closed")
	}
	want := map[string]*Spec{}
	for _, s := range specs {
		want[s.Address] = s
	}
	var fresh []*socket
	for addr := range want {
		if m.bound[addr] != nil {
			continue
		}
		s, err := listen(addr, m)
		if err != nil {
			for _, f := range fresh {
				f.close()
			}
			return nil, nil, err
		}
		fresh = append(fresh, s)
	}
	commit = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, s := range fresh {
			m.bound[s.addr] = s
		}
		for addr, s := range m.bound {
			spec := want[addr]
			if spec == nil || m.closed {
				s.close()
				delete(m.bound, addr)
				continue
			}
			s.spec.Store(spec)
		}
		for _, s := range fresh {
			if s.spec.Load() != nil {
				go s.serve()
			}
		}
	}
	abort = func() {
		for _, s := range fresh {
			s.close()
		}
	}
	return commit, abort, nil
}

// Apply makes the manager serve exactly specs; it changes nothing when a
// bind fails.
func (m *Manager) Apply(specs []*Spec) error {
	commit, _, err := m.Prepare(specs)
	if err != nil {
		return err
	}
	commit()
	return nil
}

// Addresses returns listener name → bound address.
func (m *Manager) Addresses() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for addr, s := range m.bound {
		if sp := s.spec.Load(); sp != nil {
			out[sp.Name] = addr
		}
	}
	return out
}

// Sessions returns the number of open sessions of the listener at addr
// (tests and the admin endpoint).
func (m *Manager) Sessions(addr string) int {
	m.mu.Lock()
	s := m.bound[addr]
	m.mu.Unlock()
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close closes every socket and session.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for addr, s := range m.bound {
		s.close()
		delete(m.bound, addr)
	}
}

// socket is one bound UDP listener address and its sessions.
type socket struct {
	addr string
	m    *Manager
	conn *net.UDPConn
	spec atomic.Pointer[Spec]
	rnd  *rand.Rand // the read goroutine's

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session
	closed   bool
}

func listen(addr string, m *Manager) (*socket, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("binding UDP listener address %s: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("binding UDP listener address %s: %w", addr, err)
	}
	return &socket{addr: addr, m: m, conn: c, sessions: map[netip.AddrPort]*session{},
		rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}, nil
}

func (s *socket) close() {
	s.mu.Lock()
	s.closed = true
	sessions := s.sessions
	s.sessions = map[netip.AddrPort]*session{}
	s.mu.Unlock()
	s.conn.Close()
	for _, ss := range sessions {
		ss.up.Close()
	}
}

// serve reads client datagrams until the socket closes.
func (s *socket) serve() {
	var buf []byte
	for {
		spec := s.spec.Load()
		max := int(spec.Config.MaxRxDatagramSize)
		if cap(buf) < max+1 {
			buf = make([]byte, max+1)
		}
		// One byte more than allowed tells an oversized datagram even
		// where the kernel would not flag its truncation.
		n, _, flags, from, err := s.conn.ReadMsgUDPAddrPort(buf[:max+1], nil)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.m.logger.Debug("udp_proxy: reading", "listener", spec.Name, "error", err)
			continue
		}
		if n > max || flags&syscall.MSG_TRUNC != 0 {
			s.m.logger.Debug("udp_proxy: dropping an oversized datagram", "listener", spec.Name, "from", from)
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		for try := 0; try < 2; try++ {
			ss := s.session(spec, from)
			if ss == nil {
				break
			}
			ss.touch()
			_, err := ss.up.Write(buf[:n])
			if err == nil {
				break
			}
			// The session ended (idle) between the lookup and the write:
			// the datagram opens a new one instead of being lost.
			if !errors.Is(err, net.ErrClosed) {
				s.m.logger.Debug("udp_proxy: writing upstream", "listener", spec.Name, "host", ss.host, "error", err)
				break
			}
		}
	}
}

// session returns the session of client from, opening one when there is
// none; nil drops the datagram.
func (s *socket) session(spec *Spec, from netip.AddrPort) *session {
	s.mu.Lock()
	ss := s.sessions[from]
	s.mu.Unlock()
	if ss != nil {
		return ss
	}
	cfg := spec.Config.Proxy
	cl := s.m.lookup.Cluster(cfg.Cluster)
	if cl == nil {
		s.m.logger.Debug("udp_proxy: no cluster", "listener", spec.Name, "cluster", cfg.Cluster)
		return nil
	}
	h := cl.Pick(s.rnd)
	if h == nil {
		s.m.logger.Debug("udp_proxy: no healthy upstream", "listener", spec.Name, "cluster", cfg.Cluster)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cl.Config.ConnectTimeout)
	up, err := cl.DialUDP(ctx, h)
	cancel()
	if err != nil {
		s.m.logger.Debug("udp_proxy: opening a session", "listener", spec.Name, "host", h.Addr, "error", err)
		return nil
	}
	ss = &session{s: s, client: from, up: up, host: h.Addr, idle: cfg.IdleTimeout, maxRx: int(cfg.MaxRxDatagramSize)}
	ss.touch()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		up.Close()
		return nil
	}
	s.sessions[from] = ss
	s.mu.Unlock()
	// A session's relay is served off the event loops: a shared loop
	// does not hold the P from it (evloop.ServingOffLoop).
	evloop.ServingOffLoop(1)
	go func() {
		defer evloop.ServingOffLoop(-1)
		ss.relay()
	}()
	return ss
}

// session is one client's flow to one upstream endpoint.
type session struct {
	s      *socket
	client netip.AddrPort
	up     *upstream.UDPConn
	host   string
	idle   time.Duration
	maxRx  int
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
}

func (ss *session) touch() { ss.last.Store(time.Now().UnixNano()) }

// relay forwards the endpoint's datagrams to the client until the
// session is idle for its timeout or its socket closes, then removes it.
func (ss *session) relay() {
	defer ss.end()
	// An ended session leaves the map before its socket closes, so a
	// datagram that still finds it fails to write and opens a new one.
	buf := make([]byte, ss.maxRx+1)
	for {
		deadline := time.Unix(0, ss.last.Load()).Add(ss.idle)
		if !time.Now().Before(deadline) {
			return // idle
		}
		_ = ss.up.SetReadDeadline(deadline)
		n, _, flags, _, err := ss.up.ReadMsgUDPAddrPort(buf, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // re-checks the last activity
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED from an ICMP unreachable: Envoy counts it and
			// keeps the session until it is idle.
			continue
		}
		if n > ss.maxRx || flags&syscall.MSG_TRUNC != 0 {
			continue
		}
		ss.touch()
		if _, err := ss.s.conn.WriteToUDPAddrPort(buf[:n], ss.client); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

func (ss *session) end() {
	s := ss.s
	s.mu.Lock()
	if s.sessions[ss.client] == ss {
		delete(s.sessions, ss.client)
	}
	s.mu.Unlock()
	ss.up.Close()
}
