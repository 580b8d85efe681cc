package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/proxylib/conntrack"
	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/peercert"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/transparent"
)

// ConnInfo describes an accepted connection to its handler.
type ConnInfo struct {
	// ALPN is the TLS-negotiated protocol ("" without TLS).
	ALPN string
	// Local is the connection's destination: the original destination on
	// listeners with the original_dst filter, the accepted socket's local
	// address otherwise.
	Local netip.AddrPort
	// Remote is the downstream peer.
	Remote netip.AddrPort
	// Listener names the listener that accepted the connection.
	Listener string
	// SourceBind, when valid, is the client address upstream sockets bind
	// to (original_src), with SourceMark.
	SourceBind netip.Addr
	SourceMark uint32
	// TLS, when set, describes the connection's TLS session.
	TLS *TLSInfo
	// ServerName is the requested server name: the ClientHello's SNI as
	// the client sent it (the TLS inspector's, or the terminated
	// handshake's), "" without one.
	ServerName string
	// Identity is the source identity the datapath judged the connection
	// with, from its connection tracking (listeners with a Conntrack
	// map; 0 otherwise). IdentityOnly says the datapath took it from a
	// routing listener's mark, not from Remote's address: policies must
	// judge the peer by Identity, never by its address.
	Identity     uint32
	IdentityOnly bool
}

// TLSInfo is what the connection manager needs of a TLS session.
type TLSInfo struct {
	// PeerCertificates is the client's chain (leaf first), empty when the
	// client presented none; PeerValidated says it was verified against
	// the chain's trusted CAs.
	PeerCertificates []*x509.Certificate
	PeerValidated    bool
	// Local is the proxy's own certificate leaf (nil when unknown).
	Local *x509.Certificate
}

// Handler serves connections of one filter chain.
type Handler interface {
	// ServeConn serves c until it closes.
	ServeConn(c net.Conn, info ConnInfo)
	// Shutdown drains the handler's connections, returning when they are
	// gone or force-closing them when ctx ends.
	Shutdown(ctx context.Context)
}

// TLS is a chain's downstream TLS settings.
type TLS struct {
	SecretNames []string
	ALPN        []string
	// Validation verifies client certificates (nil: none are asked for);
	// RequireClientCert refuses clients without one.
	Validation        *resource.PeerValidation
	RequireClientCert bool
}

// Chain is a filter chain: its match, transport and handler.
type Chain struct {
	ServerNames []string
	// DestinationPort restricts the chain to connections to that port
	// (0: any).
	DestinationPort uint32
	// SourcePrefixes restrict the chain to clients whose address one of
	// them holds (none: any client).
	SourcePrefixes []netip.Prefix
	// TransportProtocol restricts the chain to connections the TLS
	// inspector found to be TLS ("tls") or not ("raw_buffer"); "" takes
	// either (filter_chain_match.transport_protocol).
	TransportProtocol string
	TLS               *TLS
	Handler           Handler

	tlsConfig *tls.Config
}

// Spec is the desired state of one listener.
type Spec struct {
	Name         string
	Address      string
	TLSInspector bool
	// Inspector is the TLS inspector's configuration; FiltersTimeout
	// bounds the inspection (0: none) and ContinueOnFiltersTimeout picks a
	// chain without SNI when it expires instead of closing.
	Inspector                resource.TLSInspector
	FiltersTimeout           time.Duration
	ContinueOnFiltersTimeout bool
	Chains                   []*Chain
	// Transparent binds IP_TRANSPARENT sockets that accept connections
	// for any destination; OriginalDst reports the original destination
	// as the connection's local address.
	Transparent bool
	OriginalDst bool
	// OriginalSrc binds upstream sockets to the client's address, marked
	// with OriginalSrcMark.
	OriginalSrc     bool
	OriginalSrcMark uint32
	// Conntrack, when set, is the datapath's connection tracking: each
	// accepted connection takes its source identity from the entry of
	// its flow, and one without a live entry is closed unread (the
	// datapath identity listener filter).
	Conntrack *conntrack.Map
}

// BindKey identifies the sockets a listener needs: its address and
// whether they are transparent.
func BindKey(addr string, transparent bool) string {
	if transparent {
		return addr + "|transparent"
	}
	return addr
}

func splitKey(k string) (string, bool) {
	a, ok := strings.CutSuffix(k, "|transparent")
	return a, ok
}

// Certs returns the certificate of an SDS secret, or nil.
type Certs func(secretName string) *tls.Certificate

// Validations returns the validation context of an SDS secret, or nil.
type Validations func(secretName string) *resource.ValidationContext

// Manager reconciles listening sockets with the desired listeners.
type Manager struct {
	certs        Certs
	validations  Validations
	logger       *slog.Logger
	drainTimeout time.Duration
	sockets      int
	wrap         func(net.Listener) net.Listener

	mu     sync.Mutex
	bound  map[string]*bound
	active map[Handler]bool
	closed bool
}

type bound struct {
	addr    string
	lns     []net.Listener
	spec    atomic.Pointer[Spec]
	started bool
	wg      sync.WaitGroup
}

// Option configures a Manager.
type Option func(*Manager)

// WithDrainTimeout bounds how long removed listeners and chains drain.
func WithDrainTimeout(d time.Duration) Option { return func(m *Manager) { m.drainTimeout = d } }

// WithSockets sets the number of SO_REUSEPORT sockets per address
// (default GOMAXPROCS).
func WithSockets(n int) Option { return func(m *Manager) { m.sockets = n } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.logger = l } }

// WithValidations sets where client certificate validation contexts
// delivered by SDS are looked up (at every handshake).
func WithValidations(v Validations) Option { return func(m *Manager) { m.validations = v } }

// New returns a manager that looks certificates up with certs.
func New(certs Certs, opts ...Option) *Manager {
	m := &Manager{certs: certs, validations: func(string) *resource.ValidationContext { return nil },
		logger: slog.Default(), drainTimeout: 600 * time.Second,
		sockets: runtime.GOMAXPROCS(0), bound: map[string]*bound{}, active: map[Handler]bool{}}
	for _, o := range opts {
		o(m)
	}
	if m.sockets < 1 {
		m.sockets = 1
	}
	return m
}

// Addresses returns the bound listener addresses (host:port as bound).
func (m *Manager) Addresses() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for addr, b := range m.bound {
		if s := b.spec.Load(); s != nil {
			a, _ := splitKey(addr)
			out[s.Name] = a
		}
	}
	return out
}

// Apply makes the manager serve active and keep bind (BindKeys of warming
// listeners) bound without accepting. It binds every new address first and
// changes nothing when a bind fails.
func (m *Manager) Apply(bind []string, active []*Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("listener manager closed")
	}
	want := map[string]*Spec{}
	keep := map[string]bool{}
	for _, a := range bind {
		keep[a] = true
	}
	for _, s := range active {
		k := BindKey(s.Address, s.Transparent)
		want[k] = s
		keep[k] = true
	}
	var fresh []*bound
	for addr := range keep {
		if m.bound[addr] != nil {
			continue
		}
		b, err := m.listen(addr)
		if err != nil {
			for _, f := range fresh {
				f.close()
				delete(m.bound, f.addr)
			}
			return err
		}
		m.bound[addr] = b
		fresh = append(fresh, b)
	}
	for _, s := range active {
		for _, c := range s.Chains {
			if c.TLS != nil {
				c.tlsConfig = m.tlsConfig(c)
			}
		}
	}
	live := map[Handler]bool{}
	for _, s := range active {
		for _, c := range s.Chains {
			live[c.Handler] = true
		}
	}
	for addr, b := range m.bound {
		if !keep[addr] {
			b.close()
			delete(m.bound, addr)
			continue
		}
		if s := want[addr]; s != nil {
			b.spec.Store(s)
			if !b.started {
				b.started = true
				m.startAccept(b)
			}
		}
	}
	for h := range m.active {
		if !live[h] {
			go m.drain(h)
		}
	}
	m.active = live
	return nil
}

func (m *Manager) drain(h Handler) {
	ctx, cancel := context.WithTimeout(context.Background(), m.drainTimeout)
	defer cancel()
	h.Shutdown(ctx)
}

// Close stops accepting everywhere and drains every handler within ctx.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	for addr, b := range m.bound {
		b.close()
		delete(m.bound, addr)
	}
	handlers := m.active
	m.active = map[Handler]bool{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for h := range handlers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

func (m *Manager) listen(key string) (*bound, error) {
	addr, transp := splitKey(key)
	b := &bound{addr: key}
	if transp {
		// Transparent listeners form one SO_REUSEPORT group per address so
		// each core accepts on its own socket even under eBPF TPROXY.
		lns, err := transparent.ListenGroup(context.Background(), "tcp", addr, m.sockets)
		if err != nil {
			return nil, fmt.Errorf("binding transparent listener address %s: %w", addr, err)
		}
		for _, ln := range lns {
			var l net.Listener = ln
			if m.wrap != nil {
				l = m.wrap(l)
			}
			b.lns = append(b.lns, l)
		}
		return b, nil
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for i := 0; i < m.sockets; i++ {
		ln, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("binding listener address %s: %w", addr, err)
		}
		if m.wrap != nil {
			ln = m.wrap(ln)
		}
		b.lns = append(b.lns, ln)
	}
	return b, nil
}

func (b *bound) close() {
	for _, ln := range b.lns {
		ln.Close()
	}
}

func (m *Manager) startAccept(b *bound) {
	for _, ln := range b.lns {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			m.accept(b, ln)
		}()
	}
}

func (m *Manager) accept(b *bound, ln net.Listener) {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. EMFILE): back off like net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			m.logger.Warn("accepting connection", "address", b.addr, "error", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go m.serve(b.spec.Load(), c)
	}
}

// handshakeTimeout bounds a downstream TLS handshake.
const handshakeTimeout = 15 * time.Second

func (m *Manager) serve(spec *Spec, c net.Conn) {
	// Served on this goroutine until it returns (an event loop that
	// adopts the connection lets it return at once).
	evloop.ServingOffLoop(1)
	defer evloop.ServingOffLoop(-1)
	if spec == nil {
		c.Close()
		return
	}
	info := ConnInfo{Listener: spec.Name}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		info.Remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if spec.OriginalDst {
		if od, err := transparent.OriginalDestination(c); err == nil {
			info.Local = od
		}
	}
	if spec.OriginalSrc {
		info.SourceBind, info.SourceMark = info.Remote.Addr(), spec.OriginalSrcMark
	}
	if !info.Local.IsValid() {
		if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			info.Local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if spec.Conntrack != nil {
		e, err := spec.Conntrack.Lookup(info.Remote, info.Local)
		if err != nil {
			// Not redirected by the datapath (or its entry is gone):
			// nothing says who the peer is, so it is refused.
			m.logger.Debug("no datapath identity; closing", "listener", spec.Name, "src", info.Remote, "dst", info.Local, "error", err)
			c.Close()
			return
		}
		info.Identity, info.IdentityOnly = e.Identity, e.MarkIdentity()
	}
	// The listener filter phase: with the TLS inspector, the ClientHello
	// is peeked (not consumed) for its SNI, so the chain picked by it
	// either terminates TLS or passes the bytes through untouched.
	outcome, sni := inspectPlain, ""
	if spec.TLSInspector {
		outcome, sni = inspect(c, spec.Inspector, spec.FiltersTimeout, spec.ContinueOnFiltersTimeout)
		if outcome == inspectClose {
			c.Close()
			return
		}
	}
	info.ServerName = sni
	transport := TransportRawBuffer
	if outcome == inspectTLS {
		transport = TransportTLS
	}
	chain := selectChain(spec.Chains, info.Local.Port(), strings.ToLower(sni), transport, info.Remote.Addr())
	if chain == nil {
		c.Close() // no chain matches: Envoy closes the connection
		return
	}
	if chain.TLS == nil {
		chain.Handler.ServeConn(c, info)
		return
	}
	if spec.TLSInspector && outcome == inspectPlain {
		c.Close() // plain text on a chain that terminates TLS
		return
	}
	var session TLSInfo
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if chain.tlsConfig == nil {
				return nil, fmt.Errorf("no TLS configuration for server name %q", hello.ServerName)
			}
			if chain.TLS.Validation != nil {
				return m.verifyingConfig(chain, &session)
			}
			return chain.tlsConfig, nil
		},
	}
	// The TLS layer reads and writes the socket with raw system calls
	// (package sockio), as plain HTTP connections do.
	tc := tls.Server(sockio.Wrap(c), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		m.logger.Debug("TLS handshake", "listener", spec.Name, "error", err)
		c.Close()
		return
	}
	cs := tc.ConnectionState()
	info.ALPN = cs.NegotiatedProtocol
	info.ServerName = cs.ServerName
	session.PeerCertificates = cs.PeerCertificates
	info.TLS = &session
	chain.Handler.ServeConn(tc, info)
}

func (m *Manager) tlsConfig(c *Chain) *tls.Config {
	names := c.TLS.SecretNames
	certs := m.certs
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: c.TLS.ALPN,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			var first *tls.Certificate
			for _, n := range names {
				cert := certs(n)
				if cert == nil {
					continue
				}
				if first == nil {
					first = cert
				}
				if len(names) == 1 || hello.SupportsCertificate(cert) == nil {
					return cert, nil
				}
			}
			if first == nil {
				return nil, fmt.Errorf("no certificate available for secrets %v", names)
			}
			return first, nil
		},
	}
}

// verifyingConfig returns the handshake settings of a chain that verifies
// client certificates, with the validation context in force now (a
// rotated SDS Secret applies to the next handshake). It records the
// outcome in session.
func (m *Manager) verifyingConfig(c *Chain, session *TLSInfo) (*tls.Config, error) {
	pv := c.TLS.Validation
	var secret *resource.ValidationContext
	if pv.Secret != "" {
		if secret = m.validations(pv.Secret); secret == nil {
			return nil, fmt.Errorf("validation context Secret %q not available", pv.Secret)
		}
	}
	v := pv.Resolve(secret)
	if len(v.SANs) > 0 && v.Roots == nil {
		return nil, fmt.Errorf("SAN matchers without trusted_ca: refusing to verify clients by name only")
	}
	cfg := c.tlsConfig.Clone()
	switch {
	case c.TLS.RequireClientCert:
		cfg.ClientAuth = tls.RequireAnyClientCert
	case v.Roots != nil || len(v.SANs) > 0:
		cfg.ClientAuth = tls.RequestClientCert
	}
	// The trusted CAs are advertised in the CertificateRequest, as Envoy
	// does; verification itself is VerifyConnection's.
	cfg.ClientCAs = v.Roots
	get := cfg.GetCertificate
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(hello)
		if cert != nil {
			session.Local = cert.Leaf
		}
		return cert, err
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return nil // no certificate: required ones were refused already
		}
		ok, err := peercert.Verify(cs.PeerCertificates, v, true, time.Now())
		session.PeerValidated = ok
		return err
	}
	return cfg, nil
}

// Transport protocols as the TLS inspector detects them.
const (
	TransportTLS       = resource.TransportTLS
	TransportRawBuffer = resource.TransportRawBuffer
)

// selectChain picks the chain for a connection from remote to port with
// server name sni ("" when unknown) and detected transport protocol
// transport, as Envoy prunes filter chains: first by destination_port (the
// chains naming port if any, else those naming none), then by
// server_names (the chains naming sni exactly, else those naming its most
// specific "*." wildcard, else those naming none), then by
// transport_protocol (the chains naming transport, else those naming
// none), then by source_prefix_ranges (the chain with the longest prefix
// holding remote, else the one naming no prefix). A stage never falls
// back to a less specific group of an earlier one: nil when the group it
// picked has no chain for remote, or when nothing matches.
func selectChain(chains []*Chain, port uint16, sni, transport string, remote netip.Addr) *Chain {
	want := uint32(0)
	for _, c := range chains {
		if c.DestinationPort != 0 && c.DestinationPort == uint32(port) {
			want = c.DestinationPort
			break
		}
	}
	remote = remote.Unmap()
	if sni != "" {
		if c, found := byTransport(chains, want, sni, transport, remote); found {
			return c
		}
		for rest := sni; ; {
			i := strings.IndexByte(rest, '.')
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			if c, found := byTransport(chains, want, "*."+rest, transport, remote); found {
				return c
			}
		}
	}
	c, _ := byTransport(chains, want, "", transport, remote)
	return c
}

// byTransport picks among the chains for port want that name server name
// sn (that name none, for ""): those naming transport if any, else those
// naming no transport protocol, then by source. found reports whether
// any chain names sn, so the caller stops there even without a pick.
func byTransport(chains []*Chain, want uint32, sn, transport string, remote netip.Addr) (pick *Chain, found bool) {
	var group []*Chain
	named := false
	for _, c := range chains {
		if c.DestinationPort != want {
			continue
		}
		if sn == "" {
			if len(c.ServerNames) > 0 {
				continue
			}
		} else if !slices.Contains(c.ServerNames, sn) {
			continue
		}
		found = true
		if c.TransportProtocol == transport {
			named = true
		}
		group = append(group, c)
	}
	if !found {
		return nil, false
	}
	proto := ""
	if named {
		proto = transport
	}
	group = slices.DeleteFunc(group, func(c *Chain) bool { return c.TransportProtocol != proto })
	return bySource(group, remote), true
}

// bySource picks, among chains, the one whose longest source prefix holds
// remote, else the one without source prefixes.
func bySource(chains []*Chain, remote netip.Addr) *Chain {
	var anySource, pick *Chain
	best := -1
	for _, c := range chains {
		if len(c.SourcePrefixes) == 0 {
			if anySource == nil {
				anySource = c
			}
			continue
		}
		for _, p := range c.SourcePrefixes {
			if p.Bits() > best && p.Contains(remote) {
				pick, best = c, p.Bits()
			}
		}
	}
	if pick == nil {
		pick = anySource
	}
	return pick
}
