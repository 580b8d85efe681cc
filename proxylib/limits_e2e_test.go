package proxylib_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// readLocal reads one response from br within d and returns it with its
// body.
func readLocal(t *testing.T, c net.Conn, br *bufio.Reader, d time.Duration) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(b)
}

// expectRejected reads a local reply with status and body, sent with
// "connection: close", then the close.
func expectRejected(t *testing.T, c net.Conn, br *bufio.Reader, status int, body string) {
	t.Helper()
	resp, got := readLocal(t, c, br, 5*time.Second)
	if resp.StatusCode != status || got != body || !resp.Close {
		t.Fatalf("got %d %q (close %v), want %d %q and a close", resp.StatusCode, got, resp.Close, status, body)
	}
	expectClosed(t, c, br, "after the local reply")
}

// trickle writes s one byte per interval until it is all written or the
// connection fails; it returns when it is done.
func trickle(c net.Conn, s string, interval time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(s); i++ {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
	return done
}

// TestRequestHeadLimits checks max_request_headers_kb and
// common_http_protocol_options.max_headers_count on raw HTTP/1.1
// connections: Envoy's 431 and a close past either, Envoy's defaults
// (60 KiB, 100 fields) where they are not configured.
func TestRequestHeadLimits(t *testing.T) {
	be := startBackend(t, "echo", nil)
	x := startXDS(t, "", nil)
	small, dflt := freeAddr(t), freeAddr(t)
	x.set(httpListener(t, "small", small, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.MaxRequestHeadersKb = wrapperspb.UInt32(1)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(5)}
	}),
		httpListener(t, "default", dflt, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+small+"/", "h")
	waitServing(t, "http://"+dflt+"/", "h")

	// head returns a GET with fields header fields (Host first), padded
	// to size bytes when size is larger.
	head := func(fields, size int) string {
		var b strings.Builder
		b.WriteString("GET /limits HTTP/1.1\r\nHost: h\r\n")
		for i := 1; i < fields; i++ {
			fmt.Fprintf(&b, "X-F%d: v\r\n", i)
		}
		if pad := size - b.Len() - len("X-Pad: \r\n\r\n"); pad >= 0 {
			b.WriteString("X-Pad: " + strings.Repeat("p", pad) + "\r\n")
		}
		b.WriteString("\r\n")
		return b.String()
	}
	for _, tc := range []struct {
		name   string
		addr   string
		head   string
		status int
	}{
		{"five fields of five", small, head(5, 0), 200},
		{"six fields of five", small, head(6, 0), 431},
		{"head of exactly 1 KiB", small, head(2, 1024), 200},
		{"head one byte over 1 KiB", small, head(2, 1025), 431},
		{"default: 100 fields", dflt, head(100, 0), 200},
		{"default: 101 fields", dflt, head(101, 0), 431},
		{"default: 60 KiB head", dflt, head(2, 60<<10), 200},
		{"default: 60 KiB and one byte", dflt, head(2, 60<<10+1), 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dialRaw(t, tc.addr)
			send(t, c, tc.head)
			if tc.status == 200 {
				expectEchoes(t, br, "GET /limits ")
				return
			}
			expectRejected(t, c, br, 431, "Request Header Fields Too Large")
		})
	}
}

// TestMalformedHeads checks heads that must be refused at once with 400
// and a close: bare LF line ends (which the proxy used to wait on until
// the stream idle timeout, 5 minutes by default) and invalid Host fields
// (RFC 9112 §3.2).
func TestMalformedHeads(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil),
		routeConfig("rc", vh("a", "a.example", prefixRoute("/", "a")), vh("any", "*", prefixRoute("/", "b"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "h")

	for _, tc := range []struct{ name, head string }{
		{"lf-only head", "GET / HTTP/1.1\nHost: h\n\n"},
		{"lf-only request line", "GET / HTTP/1.1\nHo"},
		{"lf ending the head", "GET / HTTP/1.1\r\nHost: h\n\n"},
		{"bare cr", "GET / HTTP/1.1\rHost: h\r\n"},
		{"host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"host with a control byte", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n"},
		{"host with an open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"},
		{"host with a bad port", "GET / HTTP/1.1\r\nHost: a:notaport\r\n\r\n"},
		{"host with userinfo", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n"},
		// RFC 9112 §3.2 has an empty Host for targets without an authority,
		// which an http(s) target never is (RFC 9110 §4.2.1).
		{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
		{"empty port", "GET / HTTP/1.1\r\nHost: a.example:\r\n\r\n"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n"},
		{"no host", "GET / HTTP/1.1\r\nX: 1\r\n\r\n"},
		{"absolute form without host", "GET http://a.example/ HTTP/1.1\r\n\r\n"},
		{"absolute form with an invalid host", "GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"absolute form with a bad authority", "GET http://a.example:x/ HTTP/1.1\r\nHost: a.example\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dialRaw(t, addr)
			send(t, c, tc.head)
			expectRejected(t, c, br, 400, "Bad Request")
		})
	}

	t.Run("absolute form authority wins", func(t *testing.T) {
		// RFC 9112 §3.2.2: the target's authority replaces the Host field.
		c, br := dialRaw(t, addr)
		send(t, c, "GET http://a.example/abs HTTP/1.1\r\nHost: other.example\r\n\r\n")
		resp, body := readLocal(t, c, br, 5*time.Second)
		if e := decodeEcho(t, body); resp.StatusCode != 200 || e.Backend != "a" || e.Host != "a.example" || e.Path != "/abs" {
			t.Fatalf("%d from %q with host %q path %q", resp.StatusCode, e.Backend, e.Host, e.Path)
		}
	})
}

// TestRequestHeadersTimeout checks request_headers_timeout against a
// client trickling its head byte by byte (slowloris): every byte comes
// well within the stream idle timeout, yet the head must be cut off with
// Envoy's 408 "request header timeout" and a close once the header
// deadline, counted from the head's first byte, passes. Plain sockets and
// TLS take different read paths; both are checked.
func TestRequestHeadersTimeout(t *testing.T) {
	be := startBackend(t, "echo", nil)
	certPEM, keyPEM, cert := selfSigned(t, "tls.example")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	x := startXDS(t, "", nil)
	plain, secure := freeAddr(t), freeAddr(t)
	const headerTimeout = 600 * time.Millisecond
	mod := func(h *hcmv3.HttpConnectionManager) {
		h.RequestHeadersTimeout = durationpb.New(headerTimeout)
		h.StreamIdleTimeout = durationpb.New(5 * time.Second)
	}
	x.set(httpListener(t, "plain", plain, "rc", mod),
		&listenerv3.Listener{Name: "tls", Address: sockAddr(secure), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
			FilterChains: []*listenerv3.FilterChain{tlsChain(t, hcmFor(t, "rc", mod), "cert", []string{"http/1.1"})}},
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr), secret("cert", certPEM, keyPEM))
	startProxy(t, x.sock)
	waitServing(t, "http://"+plain+"/", "h")

	dial := map[string]func(t *testing.T) (net.Conn, *bufio.Reader){
		"plain": func(t *testing.T) (net.Conn, *bufio.Reader) { return dialRaw(t, plain) },
		"tls": func(t *testing.T) (net.Conn, *bufio.Reader) {
			var c *tls.Conn
			var err error
			for i := 0; i < 100; i++ {
				if c, err = tls.Dial("tcp", secure, &tls.Config{ServerName: "tls.example", RootCAs: roots}); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c, bufio.NewReader(c)
		},
	}
	slow := "GET /slow HTTP/1.1\r\nHost: h\r\nX-Slow: " + strings.Repeat("s", 200) + "\r\n\r\n"
	for _, name := range []string{"plain", "tls"} {
		t.Run(name+": trickled head cut off", func(t *testing.T) {
			c, br := dial[name](t)
			start := time.Now()
			done := trickle(c, slow, 20*time.Millisecond)
			expectRejected(t, c, br, 408, "request header timeout")
			if took := time.Since(start); took < headerTimeout-50*time.Millisecond || took > headerTimeout+2*time.Second {
				t.Fatalf("cut off after %v, want about %v", took, headerTimeout)
			}
			c.Close()
			<-done
		})
		t.Run(name+": the timer starts with each head", func(t *testing.T) {
			c, br := dial[name](t)
			send(t, c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
			expectEchoes(t, br, "GET /first ")
			// Idle longer than the header timeout, then a head in parts:
			// the connection's age does not count. The pauses are short
			// next to the timeout so a slow machine cannot stretch them
			// into a real one.
			time.Sleep(headerTimeout + 100*time.Millisecond)
			second := "GET /second HTTP/1.1\r\nHost: h\r\n\r\n"
			for _, part := range []string{second[:5], second[5:20], second[20:]} {
				send(t, c, part)
				time.Sleep(50 * time.Millisecond)
			}
			expectEchoes(t, br, "GET /second ")
		})
	}
	t.Run("trickled HTTP/2 preface cut off", func(t *testing.T) {
		// The prior-knowledge preface is sniffed before the HTTP/1.1 codec
		// runs; its bytes are a head under way too.
		c, br := dialRaw(t, plain)
		start := time.Now()
		done := trickle(c, http2.ClientPreface, 50*time.Millisecond)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.ReadAll(br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("connection still open")
		}
		if took := time.Since(start); took < headerTimeout-50*time.Millisecond || took > headerTimeout+2*time.Second {
			t.Fatalf("closed after %v, want about %v", took, headerTimeout)
		}
		c.Close()
		<-done
	})
}

// TestStreamIdleTimeout checks stream_idle_timeout on every wait of an
// HTTP/1.1 request: the client's head and body, the upstream's response
// head and body (on a route without a timeout, where nothing else bounds
// them), and a client that stops reading its response.
func TestStreamIdleTimeout(t *testing.T) {
	// Longer than the 1 s within which the proxy re-checks a pooled
	// upstream connection (h1_exchange.go), so that check cannot pass for
	// the stream idle timeout.
	const idle = 1500 * time.Millisecond
	be, bigAborted := stallingBackend(t)
	x := startXDS(t, "", nil)
	addr, dflt := freeAddr(t), freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(idle)
	}),
		httpListener(t, "default", dflt, "rc", nil),
		routeConfig("rc", vh("v", "*",
			&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/timed/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "s"},
					Timeout: durationpb.New(10 * time.Second)}}},
			&routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "s"},
					Timeout: durationpb.New(0)}}})),
		edsCluster(t, "s", false, nil), cla("s", be))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/ok", "h")
	waitServing(t, "http://"+dflt+"/ok", "h")

	within := func(t *testing.T, start time.Time) {
		t.Helper()
		if took := time.Since(start); took < idle-50*time.Millisecond || took > idle+2*time.Second {
			t.Fatalf("took %v, want about %v", took, idle)
		}
	}
	t.Run("client stops in its head", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		start := time.Now()
		send(t, c, "GET /ok HTTP/1.1\r\nHo")
		expectRejected(t, c, br, 408, "stream timeout")
		within(t, start)
	})
	t.Run("client stops in its body", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		start := time.Now()
		send(t, c, "POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
		expectRejected(t, c, br, 408, "stream timeout")
		within(t, start)
	})
	t.Run("upstream silent", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		start := time.Now()
		send(t, c, "GET /silent HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := readLocal(t, c, br, 5*time.Second)
		if resp.StatusCode != 504 || body != "stream timeout" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		within(t, start)
	})
	t.Run("upstream stops in its body", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "GET /stall HTTP/1.1\r\nHost: h\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		start := time.Now()
		got, err := io.ReadAll(resp.Body)
		if errors.Is(err, os.ErrDeadlineExceeded) || string(got) != "0123456789" {
			t.Fatalf("body %q, %v: want the first 10 bytes, then the close", got, err)
		}
		within(t, start)
	})
	t.Run("client stops reading", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
		// Socket buffers fill and the proxy's write to the client waits:
		// after the stream idle timeout it gives up and drops the upstream
		// connection, which the backend's writes see.
		select {
		case <-bigAborted:
		case <-time.After(idle + 3*time.Second):
			t.Fatal("the upstream response kept going to a client that does not read")
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, br)
		if errors.Is(err, os.ErrDeadlineExceeded) || n >= bigResponse {
			t.Fatalf("read %d of %d bytes (%v) after the abort", n, bigResponse, err)
		}
	})
	t.Run("body slower than the close check", func(t *testing.T) {
		// The default stream idle timeout (5 min) and a 10 s route: a body
		// that starts 1.5 s after its head still arrives whole.
		c, br := dialRaw(t, dflt)
		send(t, c, "GET /timed/late-body HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := readLocal(t, c, br, 10*time.Second)
		if resp.StatusCode != 200 || body != "late body" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

// bigResponse is the body size of stallingBackend's "/big": more than loopback
// socket buffers hold.
const bigResponse = 64 << 20

// stallingBackend serves HTTP/1.1 on raw sockets, one behaviour per path:
// "/silent" never answers, "/stall" sends a head and 10 of 100 body bytes,
// "/big" a bigResponse body as fast as it can be written (bigAborted is
// closed when a write of it fails), "/timed/late-body" its head at once and
// its body 1.5 s later; anything else "ok".
func stallingBackend(t *testing.T) (addr string, bigAborted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	aborted := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					switch req.URL.Path {
					case "/silent":
						_, _ = io.Copy(io.Discard, br)
						return
					case "/stall":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
						_, _ = io.Copy(io.Discard, br)
						return
					case "/big":
						_, _ = fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", bigResponse)
						chunk := make([]byte, 1<<20)
						for i := 0; i < bigResponse/len(chunk); i++ {
							if _, err := c.Write(chunk); err != nil {
								once.Do(func() { close(aborted) })
								return
							}
						}
					case "/timed/late-body":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
						time.Sleep(1500 * time.Millisecond)
						_, _ = io.WriteString(c, "late body")
					default:
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), aborted
}

// TestRequestTimeout checks request_timeout: a request whose body trickles
// in, each byte well within the stream idle timeout, is cut off with
// Envoy's 408 "request timeout" once the whole request took longer than
// the timeout, counted from its head's first byte.
func TestRequestTimeout(t *testing.T) {
	be := startBackend(t, "echo", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	// The pauses inside a request are short next to the timeout, so a slow
	// machine does not turn them into real timeouts; the pause between
	// requests is longer than the timeout.
	const timeout, pause = 1200 * time.Millisecond, 50 * time.Millisecond
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.RequestTimeout = durationpb.New(timeout)
		h.StreamIdleTimeout = durationpb.New(5 * time.Second)
	}),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "h")

	t.Run("quick request", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "POST /quick HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok")
		expectEchoes(t, br, "POST /quick ok")
	})
	t.Run("each request has its own time", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n")
		time.Sleep(pause)
		send(t, c, "1")
		expectEchoes(t, br, "POST /one 1")
		time.Sleep(timeout + 100*time.Millisecond)
		two := "POST /two HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n2"
		send(t, c, two[:10])
		time.Sleep(pause)
		send(t, c, two[10:])
		expectEchoes(t, br, "POST /two 2")
	})
	t.Run("trickled body cut off", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		body := strings.Repeat("b", 40)
		start := time.Now()
		send(t, c, fmt.Sprintf("POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", len(body)))
		done := trickle(c, body, 50*time.Millisecond)
		expectRejected(t, c, br, 408, "request timeout")
		if took := time.Since(start); took < timeout-50*time.Millisecond || took > timeout+1500*time.Millisecond {
			t.Fatalf("cut off after %v, want about %v", took, timeout)
		}
		c.Close()
		<-done
	})
}

// TestIdleTimeout checks common_http_protocol_options.idle_timeout on
// both read paths (plain sockets, TLS): a keep-alive connection between
// requests, and one that never sent a byte, are closed silently after it.
func TestIdleTimeout(t *testing.T) {
	be := startBackend(t, "echo", nil)
	certPEM, keyPEM, cert := selfSigned(t, "tls.example")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	x := startXDS(t, "", nil)
	plain, secure := freeAddr(t), freeAddr(t)
	const idle = 300 * time.Millisecond
	mod := func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)}
	}
	x.set(httpListener(t, "plain", plain, "rc", mod),
		&listenerv3.Listener{Name: "tls", Address: sockAddr(secure), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
			FilterChains: []*listenerv3.FilterChain{tlsChain(t, hcmFor(t, "rc", mod), "cert", []string{"http/1.1"})}},
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr), secret("cert", certPEM, keyPEM))
	startProxy(t, x.sock)
	waitServing(t, "http://"+plain+"/", "h")

	dial := map[string]func(t *testing.T) (net.Conn, *bufio.Reader){
		"plain": func(t *testing.T) (net.Conn, *bufio.Reader) { return dialRaw(t, plain) },
		"tls": func(t *testing.T) (net.Conn, *bufio.Reader) {
			var c *tls.Conn
			var err error
			for i := 0; i < 100; i++ {
				if c, err = tls.Dial("tcp", secure, &tls.Config{ServerName: "tls.example", RootCAs: roots}); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c, bufio.NewReader(c)
		},
	}
	closedAfter := func(t *testing.T, c net.Conn, br *bufio.Reader, start time.Time) {
		t.Helper()
		expectClosed(t, c, br, "by the idle timeout")
		if took := time.Since(start); took < idle-50*time.Millisecond || took > idle+2*time.Second {
			t.Fatalf("closed after %v, want about %v", took, idle)
		}
	}
	for _, name := range []string{"plain", "tls"} {
		t.Run(name+": between requests", func(t *testing.T) {
			c, br := dial[name](t)
			send(t, c, "GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
			expectEchoes(t, br, "GET /one ")
			closedAfter(t, c, br, time.Now())
		})
		t.Run(name+": before any request", func(t *testing.T) {
			start := time.Now()
			c, br := dial[name](t)
			closedAfter(t, c, br, start)
		})
	}
}
