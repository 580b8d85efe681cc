package proxylib_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// countedLineBackend is lineBackend that counts the connections it
// accepted. The accept loop counts before serving, in the kernel's accept
// order: once a later connection was answered, every earlier one the
// proxy opened has been counted.
func countedLineBackend(t testing.TB, name string, cert *tls.Certificate) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			if cert != nil {
				c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{*cert}})
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = io.WriteString(c, name+": "+line)
				}
			}()
		}
	}()
	return ln.Addr().String(), &n
}

// netRBACChain is tcpChain with network RBAC filters before tcp_proxy.
func netRBACChain(t testing.TB, tp *tcpproxyv3.TcpProxy, rules []*rbacv3.RBAC, serverNames ...string) *listenerv3.FilterChain {
	fc := tcpChain(t, tp, serverNames...)
	var filters []*listenerv3.Filter
	for _, r := range rules {
		filters = append(filters, &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{
			TypedConfig: anyOf(t, &netrbacv3.RBAC{StatPrefix: "ingress", Rules: r})}})
	}
	fc.Filters = append(filters, fc.Filters...)
	return fc
}

func peerIs(prefix string) *rbacv3.Principal {
	p := netip.MustParsePrefix(prefix)
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: &corev3.CidrRange{
		AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}}}
}

// dialAs opens a TCP connection to addr from the loopback address src.
func dialAs(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialling %s from %s: %v", addr, src, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// expectRefused: the proxy closes c without a byte, whatever the client
// sends.
func expectRefused(t *testing.T, c net.Conn) {
	t.Helper()
	_, _ = io.WriteString(c, "hi\n")
	n, err := c.Read(make([]byte, 64))
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("denied connection: read %d bytes, %v; want it closed", n, err)
	}
}

// TestNetworkRBAC: the network RBAC filter before tcp_proxy judges each
// connection once, by the client's direct address (and, on a TLS
// passthrough chain, the SNI the TLS inspector read), before anything is
// dialled: a denied client's connection is closed and the backend never
// sees it, while allowed clients are relayed. ALLOW and DENY actions,
// both the passthrough chain (TLSRoute) and a plain one (TCPRoute). A
// denial's access-log entry carries Envoy's termination details.
func TestNetworkRBAC(t *testing.T) {
	backendCA := newCA(t, "backend CA")
	_, _, cert := backendCA.issue(t, leaf{cn: "tls backend", dns: []string{"a.allowed.example"}})
	tlsAddr, tlsSeen := countedLineBackend(t, "tls", &cert)
	plainAddr, plainSeen := countedLineBackend(t, "plain", nil)

	sniSuffix := &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: &matcherv3.StringMatcher{
		MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".allowed.example"}}}}
	anyPerm := &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	// Passthrough: only 127.0.0.2, and only for names under allowed.example.
	allowPeerAndName := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"ingress-policy/allow": {Permissions: []*rbacv3.Permission{sniSuffix}, Principals: []*rbacv3.Principal{peerIs("127.0.0.2/32")}}}}
	// Plain TCP: an open ALLOW filter for the loopback range, then a DENY
	// filter for 127.0.0.1: both filters are applied, in order.
	allowLoopback := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"loopback": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{peerIs("127.0.0.0/8")}}}}
	denyOne := &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"deny-127.0.0.1": {Permissions: []*rbacv3.Permission{anyPerm}, Principals: []*rbacv3.Principal{peerIs("127.0.0.1/32")}}}}

	passAddr, tcpAddr := freeAddr(t), freeAddr(t)
	als := startALS(t)
	passTP, plainTP := tcpTo("tls"), tcpTo("plain")
	passTP.AccessLog, plainTP.AccessLog = alsLog(t, true, "passthrough"), alsLog(t, true, "tcp")
	x := startXDS(t, "", nil)
	x.set(
		&listenerv3.Listener{Name: "passthrough", Address: sockAddr(passAddr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
			FilterChains: []*listenerv3.FilterChain{netRBACChain(t, passTP, []*rbacv3.RBAC{allowPeerAndName})}},
		&listenerv3.Listener{Name: "tcp", Address: sockAddr(tcpAddr),
			FilterChains: []*listenerv3.FilterChain{netRBACChain(t, plainTP, []*rbacv3.RBAC{allowLoopback, denyOne})}},
		edsCluster(t, "tls", false, nil), cla("tls", tlsAddr),
		edsCluster(t, "plain", false, nil), cla("plain", plainAddr), alsCluster(t, als.sock))
	startProxy(t, x.sock)
	x.waitApplied()

	roots := x509.NewCertPool()
	roots.AddCert(backendCA.cert)
	handshake := func(t *testing.T, src, sni string) (*tls.Conn, error) {
		t.Helper()
		c := tls.Client(dialAs(t, src, passAddr), &tls.Config{ServerName: sni, RootCAs: roots})
		return c, c.Handshake()
	}

	t.Run("passthrough", func(t *testing.T) {
		for _, tc := range []struct{ src, sni string }{
			{"127.0.0.1", "a.allowed.example"}, // the address is not admitted
			{"127.0.0.2", "b.other.example"},   // the name is not
		} {
			if _, err := handshake(t, tc.src, tc.sni); err == nil {
				t.Fatalf("client %s with SNI %q completed a handshake through the proxy", tc.src, tc.sni)
			}
		}
		c, err := handshake(t, "127.0.0.2", "a.allowed.example")
		if err != nil {
			t.Fatalf("allowed client: %v", err)
		}
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "tls backend" {
			t.Fatalf("allowed client saw %q", cn)
		}
		if got := exchange(t, c, "ping"); got != "tls: ping" {
			t.Fatalf("answer %q", got)
		}
		// The allowed connection was answered, so every connection the
		// proxy opened before it has been counted: only this one.
		if n := tlsSeen.Load(); n != 1 {
			t.Fatalf("the backend accepted %d connections, want 1 (denied clients must never reach it)", n)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		expectRefused(t, dialAs(t, "127.0.0.1", tcpAddr))
		if got := exchange(t, dialAs(t, "127.0.0.2", tcpAddr), "ping"); got != "plain: ping" {
			t.Fatalf("answer %q", got)
		}
		expectRefused(t, dialAs(t, "127.0.0.1", tcpAddr))
		if got := exchange(t, dialAs(t, "127.0.0.3", tcpAddr), "pong"); got != "plain: pong" {
			t.Fatalf("answer %q", got)
		}
		if n := plainSeen.Load(); n != 2 {
			t.Fatalf("the backend accepted %d connections, want 2 (denied clients must never reach it)", n)
		}
	})

	t.Run("access log", func(t *testing.T) {
		denied := func(src, details string) func(*datav3.TCPAccessLogEntry) bool {
			return func(e *datav3.TCPAccessLogEntry) bool {
				c := e.GetCommonProperties()
				return c.GetConnectionTerminationDetails() == details &&
					c.GetDownstreamRemoteAddress().GetSocketAddress().GetAddress() == src && c.GetUpstreamCluster() == ""
			}
		}
		// The ALLOW filter of the passthrough chain matched no policy;
		// the plain chain's DENY filter matched its policy.
		als.waitTCP(t, "for the refused passthrough client", denied("127.0.0.1", "rbac_access_denied_matched_policy[none]"))
		als.waitTCP(t, "for the refused TCP client", denied("127.0.0.1", "rbac_access_denied_matched_policy[deny-127.0.0.1]"))
	})
}

// TestNetworkRBACTerminatedTLS: on a chain terminating TLS before
// tcp_proxy the network RBAC filter also sees the handshake: an
// authenticated principal matches the client certificate's SANs, and
// requested_server_name the SNI the client sent in the handshake.
func TestNetworkRBACTerminatedTLS(t *testing.T) {
	ca := newCA(t, "mesh CA")
	serverPEM, serverKey, _ := ca.issue(t, leaf{cn: "gateway", dns: []string{"term.example", "other.example"}})
	_, _, goodClient := ca.issue(t, leaf{cn: "client", client: true, uris: []string{"spiffe://td/client"}})
	_, _, otherClient := ca.issue(t, leaf{cn: "intruder", client: true, uris: []string{"spiffe://td/intruder"}})
	backend, seen := countedLineBackend(t, "plain", nil)

	rules := &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"client-on-term": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "term.example"}}}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
				PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://td/client"}}}}}},
		}}}
	fc := netRBACChain(t, tcpTo("plain"), []*rbacv3.RBAC{rules})
	// Client certificates are asked for and verified, not required: the
	// filter, not the handshake, refuses a client without one.
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsRef("server-cert")},
		ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation(ca.pem)}}}
	fc.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, ctx)}}
	addr := freeAddr(t)
	x := startXDS(t, "", nil)
	x.set(&listenerv3.Listener{Name: "tls", Address: sockAddr(addr), FilterChains: []*listenerv3.FilterChain{fc}},
		edsCluster(t, "plain", false, nil), cla("plain", backend), secret("server-cert", serverPEM, serverKey))
	startProxy(t, x.sock)
	x.waitApplied()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	connect := func(t *testing.T, sni string, cert *tls.Certificate) *tls.Conn {
		t.Helper()
		cfg := &tls.Config{ServerName: sni, RootCAs: roots}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := tls.Client(dialAs(t, "127.0.0.1", addr), cfg)
		if err := c.Handshake(); err != nil {
			t.Fatalf("handshake (SNI %q): %v", sni, err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		sni  string
		cert *tls.Certificate
	}{
		{"no client certificate", "term.example", nil},
		{"another principal", "term.example", &otherClient},
		{"another server name", "other.example", &goodClient},
	} {
		t.Run(tc.name, func(t *testing.T) { expectRefused(t, connect(t, tc.sni, tc.cert)) })
	}
	t.Run("allowed", func(t *testing.T) {
		if got := exchange(t, connect(t, "term.example", &goodClient), "ping"); got != "plain: ping" {
			t.Fatalf("answer %q", got)
		}
		if n := seen.Load(); n != 1 {
			t.Fatalf("the backend accepted %d connections, want 1 (refused clients must never reach it)", n)
		}
	})
}
