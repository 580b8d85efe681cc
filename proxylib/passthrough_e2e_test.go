package proxylib_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestTLSPassthroughBySNI: one port serves TLS passthrough chains
// (tcp_proxy, no transport socket) picked by the ClientHello's SNI —
// exact, then the most specific wildcard — next to a chain terminating TLS
// (HCM), with a default chain for connections without a matching name or
// without TLS at all. A passed-through client completes its handshake with
// the backend itself: it sees the backend's certificate.
func TestTLSPassthroughBySNI(t *testing.T) {
	backendCA, proxyCA := newCA(t, "backend CA"), newCA(t, "proxy CA")
	_, _, exactCert := backendCA.issue(t, leaf{cn: "exact backend", dns: []string{"pass.example"}})
	_, _, wildCert := backendCA.issue(t, leaf{cn: "wildcard backend", dns: []string{"*.wild.example", "a.b.wild.example"}})
	_, _, deepCert := backendCA.issue(t, leaf{cn: "deep wildcard backend", dns: []string{"*.deep.wild.example"}})
	proxyPEM, proxyKey, _ := proxyCA.issue(t, leaf{cn: "proxy", dns: []string{"term.example"}})
	exactAddr := lineBackend(t, "exact", &exactCert)
	wildAddr := lineBackend(t, "wild", &wildCert)
	deepAddr := lineBackend(t, "deep", &deepCert)
	_, _, defCert := backendCA.issue(t, leaf{cn: "default backend", dns: []string{"default.example"}})
	defAddr := lineBackend(t, "default", &defCert)
	web := startBackend(t, "web", nil)

	x := startXDS(t, "", nil)
	addr, strict := freeAddr(t), freeAddr(t)
	l := &listenerv3.Listener{Name: "mixed", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{
			tcpChain(t, tcpTo("default")), // no server_names: the default
			tcpChain(t, tcpTo("wild"), "*.wild.example"),
			tcpChain(t, tcpTo("exact"), "pass.example"),
			tcpChain(t, tcpTo("deep"), "*.deep.wild.example"),
			tlsChain(t, hcmFor(t, "rc", nil), "proxy-cert", []string{"http/1.1"}, "term.example"),
		}}
	// Without a default chain an unmatched or plain connection is closed.
	ls := &listenerv3.Listener{Name: "strict", Address: sockAddr(strict), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
		FilterChains: []*listenerv3.FilterChain{tcpChain(t, tcpTo("exact"), "pass.example")}}
	x.set(l, ls, routeConfig("rc", vh("v", "*", prefixRoute("/", "web"))),
		edsCluster(t, "exact", false, nil), cla("exact", exactAddr),
		edsCluster(t, "wild", false, nil), cla("wild", wildAddr),
		edsCluster(t, "deep", false, nil), cla("deep", deepAddr),
		edsCluster(t, "default", false, nil), cla("default", defAddr),
		edsCluster(t, "web", false, nil), cla("web", web.addr),
		secret("proxy-cert", proxyPEM, proxyKey))
	startProxy(t, x.sock)
	x.waitApplied()

	backendRoots := x509.NewCertPool()
	backendRoots.AddCert(backendCA.cert)
	dialTLS := func(t *testing.T, to, sni string, roots *x509.CertPool) (*tls.Conn, error) {
		t.Helper()
		cfg := &tls.Config{ServerName: sni, RootCAs: roots}
		if roots == nil {
			cfg.InsecureSkipVerify = true // the test checks the certificate's name itself
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", to, cfg)
		return c, err
	}

	for _, tc := range []struct {
		sni, backend, cn string
	}{
		{"pass.example", "exact", "exact backend"},
		{"PASS.example", "exact", "exact backend"}, // names match case-insensitively
		{"x.wild.example", "wild", "wildcard backend"},
		{"a.b.wild.example", "wild", "wildcard backend"}, // "*." covers deeper names
		{"x.deep.wild.example", "deep", "deep wildcard backend"},
	} {
		t.Run("passthrough "+tc.sni, func(t *testing.T) {
			c, err := dialTLS(t, addr, tc.sni, backendRoots)
			if err != nil {
				t.Fatalf("handshake through the proxy: %v", err)
			}
			defer c.Close()
			if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.cn {
				t.Fatalf("client saw certificate %q, want the backend's %q", cn, tc.cn)
			}
			if got := exchange(t, c, "ping"); got != tc.backend+": ping" {
				t.Fatalf("answer %q", got)
			}
			// A half-close crosses the proxy: the backend sees EOF and
			// still answers on the open direction.
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(c)
			if err != nil || string(rest) != tc.backend+": bye\n" {
				t.Fatalf("after half-close: %q, %v", rest, err)
			}
		})
	}

	t.Run("terminated by the proxy", func(t *testing.T) {
		roots := x509.NewCertPool()
		roots.AddCert(proxyCA.cert)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&tls.Dialer{Config: &tls.Config{ServerName: "term.example", RootCAs: roots}}).DialContext(ctx, "tcp", addr)
			}}}
		resp, err := c.Get("https://term.example/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if e := decodeEcho(t, string(body)); e.Backend != "web" || e.Path != "/hello" {
			t.Fatalf("terminated request reached %+v", e)
		}
		if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "proxy" {
			t.Fatalf("terminating chain presented %q", cn)
		}
	})

	for _, sni := range []string{"other.example", "wild.example", ""} {
		t.Run("default chain for SNI "+sni, func(t *testing.T) {
			// No chain names it (a ClientHello without SNI included): the
			// chain without server_names passes it through.
			c, err := dialTLS(t, addr, sni, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "default backend" {
				t.Fatalf("client saw %q", cn)
			}
			if got := exchange(t, c, "hi"); got != "default: hi" {
				t.Fatalf("answer %q", got)
			}
		})
	}

	t.Run("no default chain closes", func(t *testing.T) {
		if c, err := dialTLS(t, strict, "pass.example", backendRoots); err != nil {
			t.Fatalf("matching name: %v", err)
		} else {
			c.Close()
		}
		if _, err := dialTLS(t, strict, "nope.example", backendRoots); err == nil {
			t.Fatal("unmatched name was served")
		}
		if _, err := dialTLS(t, strict, "", backendRoots); err == nil {
			t.Fatal("ClientHello without SNI was served")
		}
		c, err := net.DialTimeout("tcp", strict, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "hello\n")
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("plain text without a default chain: read %d, %v", n, err)
		}
	})
}

// TestTLSInspectorLimits: the ClientHello peek is bounded in size
// (max_client_hello_size: a larger hello closes the connection) and in
// time (listener_filters_timeout closes a connection whose hello does not
// complete, or with continue_on_listener_filters_timeout serves it on the
// chain matching no name).
func TestTLSInspectorLimits(t *testing.T) {
	ca := newCA(t, "backend CA")
	_, _, cert := ca.issue(t, leaf{cn: "backend", dns: []string{"pass.example"}})
	tlsAddr := lineBackend(t, "tls", &cert)
	plainAddr := lineBackend(t, "plain", nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)

	inspector := func(ti *tlsinspectorv3.TlsInspector) *listenerv3.ListenerFilter {
		f := tlsInspector(t)
		f.ConfigType = &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, ti)}
		return f
	}
	chains := func() []*listenerv3.FilterChain {
		return []*listenerv3.FilterChain{tcpChain(t, tcpTo("tls"), "pass.example"), tcpChain(t, tcpTo("plain"))}
	}
	small, closing, cont := freeAddr(t), freeAddr(t), freeAddr(t)
	x := startXDS(t, "", nil)
	x.set(
		&listenerv3.Listener{Name: "small", Address: sockAddr(small), FilterChains: chains(),
			ListenerFilters: []*listenerv3.ListenerFilter{inspector(&tlsinspectorv3.TlsInspector{
				MaxClientHelloSize: wrapperspb.UInt32(300), InitialReadBufferSize: wrapperspb.UInt32(256)})}},
		&listenerv3.Listener{Name: "closing", Address: sockAddr(closing), FilterChains: chains(),
			ListenerFiltersTimeout: durationpb.New(300 * time.Millisecond),
			ListenerFilters: []*listenerv3.ListenerFilter{inspector(&tlsinspectorv3.TlsInspector{
				CloseConnectionOnClientHelloParsingErrors: true})}},
		&listenerv3.Listener{Name: "continue", Address: sockAddr(cont), FilterChains: chains(),
			ListenerFiltersTimeout: durationpb.New(300 * time.Millisecond), ContinueOnListenerFiltersTimeout: true,
			ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)}},
		edsCluster(t, "tls", false, nil), cla("tls", tlsAddr), edsCluster(t, "plain", false, nil), cla("plain", plainAddr))
	startProxy(t, x.sock)
	x.waitApplied()

	handshake := func(to string) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", to, &tls.Config{ServerName: "pass.example", RootCAs: roots})
		if err == nil {
			c.Close()
		}
		return err
	}
	closedWithin := func(t *testing.T, c net.Conn, d time.Duration) {
		t.Helper()
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 64))
		if n != 0 || err == nil || isTimeout(err) {
			t.Fatalf("connection not closed: read %d, %v", n, err)
		}
		if el := time.Since(start); el > d {
			t.Fatalf("closed after %v, want within %v", el, d)
		}
	}

	t.Run("hello larger than max_client_hello_size", func(t *testing.T) {
		// A Go ClientHello (with its post-quantum key share) is far
		// larger than 300 bytes.
		if err := handshake(small); err == nil {
			t.Fatal("a ClientHello over max_client_hello_size was served")
		}
		if err := handshake(closing); err != nil {
			t.Fatalf("the same hello under the default size: %v", err)
		}
	})
	t.Run("incomplete hello times out", func(t *testing.T) {
		c, err := net.Dial("tcp", closing)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte{0x16, 3, 1, 0x02, 0x00, 1}) // a hello that never completes
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("silent client times out", func(t *testing.T) {
		c, err := net.Dial("tcp", closing)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedWithin(t, c, 3*time.Second)
	})
	t.Run("parse error closes with close_connection_on_client_hello_parsing_errors", func(t *testing.T) {
		c, err := net.Dial("tcp", closing)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "hello\n")
		closedWithin(t, c, 3*time.Second)
		// Without it, plain text is served by the default chain.
		p, err := net.Dial("tcp", cont)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if got := exchange(t, p, "hello"); got != "plain: hello" {
			t.Fatalf("plain text answer %q", got)
		}
	})
	t.Run("continue_on_listener_filters_timeout", func(t *testing.T) {
		c, err := net.Dial("tcp", cont)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Two bytes that could begin a ClientHello: the inspector waits,
		// gives up after 300 ms and the chain without server_names gets
		// the connection with those bytes unread.
		_, _ = c.Write([]byte{0x16, 3})
		time.Sleep(500 * time.Millisecond)
		got := exchange(t, c, "x")
		if got != "plain: \x16\x03x" {
			t.Fatalf("after the filter timeout: %q", got)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
