package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/internal/counter"
)

// Defaults (see doc.go).
const (
	DefaultPort          = 4250
	DefaultTimeout       = 5 * time.Second
	DefaultMaxConcurrent = 128
	DefaultMaxPerPeer    = 8
)

// okByte is what the server sends once it has verified the client: in TLS
// 1.3 the client's handshake completes before the server has judged the
// client certificate, so the client waits for this byte to know the
// authentication was mutual.
const okByte = 0x01

// Locals says which identities have endpoints on this node. The server
// proves only those: asked for any other, it refuses instead of minting a
// certificate for an identity it does not host. Called from handshake
// goroutines concurrently; must not block.
type Locals interface {
	IsLocal(auth.Identity) bool
}

// Server answers mutual-authentication handshakes from other nodes' agents.
type Server struct {
	src        auth.Source
	locals     Locals
	log        *slog.Logger
	timeout    time.Duration
	maxConc    int
	maxPerPeer int
	stats      *counter.Set

	mu      sync.Mutex
	active  int
	perPeer map[netip.Addr]int
	ls      []net.Listener
	closed  bool
	wg      sync.WaitGroup
}

// Option configures a Server or a Client.
type Option func(*options)

type options struct {
	log        *slog.Logger
	timeout    time.Duration
	maxConc    int
	maxPerPeer int
	dialer     *net.Dialer
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTimeout bounds a whole handshake, from accept (or dial) to the
// confirmation byte (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxConcurrent bounds the server's handshakes in progress (default
// DefaultMaxConcurrent); a connection beyond it is closed at once.
func WithMaxConcurrent(n int) Option { return func(o *options) { o.maxConc = n } }

// WithMaxPerPeer bounds the server's handshakes in progress from one source
// address (default DefaultMaxPerPeer).
func WithMaxPerPeer(n int) Option { return func(o *options) { o.maxPerPeer = n } }

// WithDialer sets the client's dialer (for example to bind a source
// address).
func WithDialer(d *net.Dialer) Option { return func(o *options) { o.dialer = d } }

func buildOptions(opts []Option) options {
	o := options{log: slog.Default(), timeout: DefaultTimeout, maxConc: DefaultMaxConcurrent,
		maxPerPeer: DefaultMaxPerPeer, dialer: &net.Dialer{}}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// NewServer returns a handshake server proving the identities locals names
// with SVIDs from src.
func NewServer(src auth.Source, locals Locals, opts ...Option) *Server {
	o := buildOptions(opts)
	return &Server{src: src, locals: locals, log: o.log, timeout: o.timeout, maxConc: o.maxConc,
		maxPerPeer: o.maxPerPeer, stats: counter.New(reasons...), perPeer: map[netip.Addr]int{}}
}

// Stats returns the server's handshake counters by reason.
func (s *Server) Stats() map[string]uint64 { return s.stats.Snapshot() }

// Serve accepts handshakes on l (a TCP listener on the handshake port)
// until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.ls = append(s.ls, l)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off
			// instead of spinning.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Error("accepting handshake connection", "error", err, "retryIn", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		peer := remoteAddr(c)
		if reason := s.admit(peer); reason != "" {
			s.stats.Inc(reason)
			s.log.Warn("refusing handshake connection", "peer", peer, "reason", reason)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c, peer)
		}()
	}
}

// Close stops accepting and waits for handshakes in progress (each is
// bounded by the timeout).
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	ls := s.ls
	s.ls = nil
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	s.wg.Wait()
	return nil
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

func (s *Server) admit(peer netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active >= s.maxConc {
		return ReasonOverload
	}
	if s.perPeer[peer] >= s.maxPerPeer {
		return ReasonPeerLimit
	}
	s.active++
	s.perPeer[peer]++
	return ""
}

func (s *Server) release(peer netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.perPeer[peer]--; s.perPeer[peer] <= 0 {
		delete(s.perPeer, peer)
	}
}

// handle runs one handshake. The counter is bumped before the connection
// closes, so a peer that sees the close also sees the count.
func (s *Server) handle(c net.Conn, peer netip.Addr) {
	released := false
	release := func() {
		if !released {
			released = true
			s.release(peer)
		}
	}
	defer release()
	defer c.Close()
	deadline := time.Now().Add(s.timeout)
	_ = c.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	var local, remote auth.Identity
	td := s.src.TrustDomain()
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Requested, not required, so that a missing certificate
		// reaches VerifyConnection and gets its own reason.
		ClientAuth:             tls.RequestClientCert,
		SessionTicketsDisabled: true,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			// Runs before version negotiation: name the two
			// refusals that happen before any certificate.
			if !slices.Contains(hello.SupportedVersions, tls.VersionTLS13) {
				return nil, fail(ReasonTLSVersion, "client offers %s, not TLS 1.3", versionNames(hello.SupportedVersions))
			}
			id, err := auth.IdentityOfServerName(td, hello.ServerName)
			if err != nil {
				return nil, &Error{Reason: ReasonServerName, Err: err}
			}
			if !s.locals.IsLocal(id) {
				return nil, fail(ReasonServerName, "identity %d (server name %q) has no endpoint on this node", id, hello.ServerName)
			}
			local = id
			return nil, nil
		},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			svid, err := s.src.SVID(ctx, local)
			if err != nil {
				return nil, &Error{Reason: ReasonNoSVID, Err: err}
			}
			return tlsCertificate(svid), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			b, err := s.src.Bundle()
			if err != nil {
				return &Error{Reason: ReasonUntrusted, Err: err}
			}
			id, _, err := verifyPeer(cs.PeerCertificates, b, td, time.Now())
			if err != nil {
				return err
			}
			remote = id
			return nil
		},
	}
	tc := tls.Server(c, cfg)
	// The connection deadline bounds the handshake; Handshake rather
	// than HandshakeContext, whose expiry would close the connection
	// before the failure is counted.
	if err := tc.Handshake(); err != nil {
		he := classify(err)
		s.stats.Inc(he.Reason)
		s.log.Warn("mutual-auth handshake refused", "peer", peer, "localIdentity", local, "reason", he.Reason, "error", he.Err)
		return
	}
	// Counted and its slot freed before the client can see the
	// confirmation: a client that waits for it before its next
	// handshake never finds its own finished one still counted.
	s.stats.Inc(ReasonOK)
	s.log.Debug("mutual-auth handshake answered", "peer", peer, "localIdentity", local, "remoteIdentity", remote)
	release()
	if _, err := tc.Write([]byte{okByte}); err != nil {
		s.log.Debug("sending handshake confirmation", "peer", peer, "error", err)
		return
	}
	_ = tc.Close()
}

func tlsCertificate(svid *x509svid.SVID) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, x := range svid.Certificates {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

func versionNames(vs []uint16) []string {
	var out []string
	for _, v := range vs {
		out = append(out, tls.VersionName(v))
	}
	return out
}
