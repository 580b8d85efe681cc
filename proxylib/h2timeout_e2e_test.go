package proxylib_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stallHandler is stallingBackend over h2c: "/silent" never answers,
// "/stall" sends its head and 10 of 100 body bytes, "/big" a bigResponse
// body as fast as it can be written (aborted is closed when a write of it
// fails); anything else reads the request body and answers "ok".
func stallHandler(aborted chan struct{}) http.Handler {
	var once sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/silent":
			<-r.Context().Done()
		case "/stall":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "0123456789")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(bigResponse))
			chunk := make([]byte, 1<<20)
			for i := 0; i < bigResponse/len(chunk); i++ {
				if _, err := w.Write(chunk); err != nil {
					once.Do(func() { close(aborted) })
					return
				}
			}
		default:
			_, _ = io.WriteString(w, "ok")
		}
	})
}

// stallProxy runs a proxy whose connection manager has mod applied. The
// virtual host h1.example routes to stallingBackend (HTTP/1.1), h2.example
// to stallHandler (h2c); their abort channels are returned by host.
// h1-retry.example and h2-retry.example route to the same backends with a
// retry policy (the router's other request path). With
// tlsConf non-nil the listener terminates TLS (ALPN h2) and tlsConf is
// filled in for the client.
func stallProxy(t *testing.T, mod func(*hcmv3.HttpConnectionManager), tlsConf *tls.Config) (string, map[string]<-chan struct{}) {
	t.Helper()
	h1, h1Aborted := stallingBackend(t)
	h2Aborted := make(chan struct{})
	h2 := startBackend(t, "h2", h2c.NewHandler(stallHandler(h2Aborted), &http2.Server{}))
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	retry := func(cluster string) *routev3.Route {
		return &routev3.Route{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,reset", NumRetries: wrapperspb.UInt32(2)}}}}
	}
	res := []proto.Message{
		routeConfig("rc", vh("h1", "h1.example", prefixRoute("/", "h1")), vh("h2", "h2.example", prefixRoute("/", "h2")),
			vh("h1r", "h1-retry.example", retry("h1")), vh("h2r", "h2-retry.example", retry("h2"))),
		edsCluster(t, "h1", false, nil), cla("h1", h1), edsCluster(t, "h2", true, nil), cla("h2", h2.addr)}
	var l *listenerv3.Listener
	if tlsConf != nil {
		certPEM, keyPEM, cert := selfSigned(t, "app.example")
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		*tlsConf = tls.Config{ServerName: "app.example", RootCAs: pool, NextProtos: []string{"h2"}}
		l = &listenerv3.Listener{Name: "l", Address: sockAddr(addr), ListenerFilters: []*listenerv3.ListenerFilter{tlsInspector(t)},
			FilterChains: []*listenerv3.FilterChain{tlsChain(t, hcmFor(t, "rc", mod), "cert", []string{"h2"})}}
		res = append(res, secret("cert", certPEM, keyPEM))
	} else {
		l = httpListener(t, "l", addr, "rc", mod)
	}
	x.set(append([]proto.Message{l}, res...)...)
	startProxy(t, x.sock)
	x.waitApplied()
	for i := 0; ; i++ {
		var c net.Conn
		var err error
		if tlsConf != nil {
			c, err = tls.Dial("tcp", addr, tlsConf)
		} else {
			c, err = net.Dial("tcp", addr)
		}
		if err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatalf("listener never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, map[string]<-chan struct{}{"h1.example": h1Aborted, "h2.example": h2Aborted}
}

// hostFields is a request with method to path on authority, plus extra
// fields.
func hostFields(method, authority, path string, extra ...string) []string {
	return append([]string{":method", method, ":scheme", "http", ":authority", authority, ":path", path}, extra...)
}

// awaitAll reads frames until every stream in streams ended or was reset,
// or the connection went away; it answers PINGs meanwhile.
func (h *h2client) awaitAll(streams ...uint32) map[uint32]h2result {
	h.t.Helper()
	res := map[uint32]h2result{}
	open := map[uint32]bool{}
	for _, s := range streams {
		open[s] = true
	}
	end := func(id uint32, r h2result) {
		res[id] = r
		delete(open, id)
	}
	for len(open) > 0 {
		f, err := h.fr.ReadFrame()
		if err != nil {
			for id := range open {
				r := res[id]
				r.closed = true
				end(id, r)
			}
			if !isClosedErr(err) {
				h.t.Fatalf("reading: %v", err)
			}
			return res
		}
		id := f.Header().StreamID
		r := res[id]
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" {
				r.status = s
			}
			res[id] = r
			if f.StreamEnded() && open[id] {
				end(id, r)
			}
		case *http2.DataFrame:
			r.body += string(f.Data())
			res[id] = r
			if f.StreamEnded() && open[id] {
				end(id, r)
			}
		case *http2.RSTStreamFrame:
			r.reset, r.rst = true, f.ErrCode
			if open[id] {
				end(id, r)
			}
		case *http2.GoAwayFrame:
			for id := range open {
				if id > f.LastStreamID || f.ErrCode != http2.ErrCodeNo {
					r := res[id]
					r.goaway, r.code = true, f.ErrCode
					end(id, r)
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		}
	}
	return res
}

func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer")
}

// awaitClose reads frames until the connection ends. It fails on a
// response to any stream, a GOAWAY other than NO_ERROR, or when the
// connection is still open after d.
func (h *h2client) awaitClose(d time.Duration) {
	h.t.Helper()
	_ = h.c.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			if isClosedErr(err) {
				return
			}
			h.t.Fatalf("connection not closed: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame, *http2.DataFrame:
			h.t.Fatalf("unexpected %v", f.Header())
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeNo {
				h.t.Fatalf("GOAWAY %v", f.ErrCode)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		}
	}
}

// pauseWithin is a client's pause that must not count as a timeout: short
// next to every timeout these tests set, so a slow machine cannot stretch
// it into one; loops of such pauses outlast the timeout they test.
const pauseWithin = 100 * time.Millisecond

// tookAbout fails unless the time since start is d, within scheduling
// slack.
func tookAbout(t *testing.T, what string, start time.Time, d time.Duration) {
	t.Helper()
	if took := time.Since(start); took < d-50*time.Millisecond || took > d+2*time.Second {
		t.Fatalf("%s after %v, want about %v", what, took.Round(time.Millisecond), d)
	}
}

// TestH2StreamIdleTimeout checks stream_idle_timeout per HTTP/2 stream, on
// a route without a timeout, to HTTP/1.1 and h2c upstreams: a request that
// never ends, or whose body stops, gets 408 "stream timeout"; a complete
// request whose upstream stays silent 504 "stream timeout"; a response that
// stops, or that the client grants no window for, is reset (and the
// upstream sees its exchange aborted). A stream busy in either direction
// outlives the timeout.
func TestH2StreamIdleTimeout(t *testing.T) {
	const idle = 800 * time.Millisecond
	addr, aborted := stallProxy(t, func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(idle)
	}, nil)

	for _, host := range []string{"h1.example", "h2.example", "h1-retry.example", "h2-retry.example"} {
		t.Run(host, func(t *testing.T) {
			t.Run("request never ends", func(t *testing.T) {
				h := dialH2(t, addr, nil)
				start := time.Now()
				h.headers(1, false, hostFields("POST", host, "/ok")...)
				r := h.await(1)
				if r.status != "408" || r.body != "stream timeout" {
					t.Fatalf("got %v, want 408 stream timeout", r)
				}
				tookAbout(t, "answered", start, idle)
			})
			t.Run("body stops", func(t *testing.T) {
				h := dialH2(t, addr, nil)
				h.headers(1, false, hostFields("POST", host, "/ok", "content-length", "100")...)
				h.data(1, false, "0123456789")
				start := time.Now()
				r := h.await(1)
				if r.status != "408" || r.body != "stream timeout" {
					t.Fatalf("got %v, want 408 stream timeout", r)
				}
				tookAbout(t, "answered", start, idle)
			})
			t.Run("upstream silent", func(t *testing.T) {
				h := dialH2(t, addr, nil)
				start := time.Now()
				h.headers(1, true, hostFields("GET", host, "/silent")...)
				r := h.await(1)
				if r.status != "504" || r.body != "stream timeout" {
					t.Fatalf("got %v, want 504 stream timeout", r)
				}
				tookAbout(t, "answered", start, idle)
			})
			t.Run("upstream stops in its body", func(t *testing.T) {
				h := dialH2(t, addr, nil)
				start := time.Now()
				h.headers(1, true, hostFields("GET", host, "/stall")...)
				r := h.await(1)
				if r.status != "200" || r.body != "0123456789" || !r.reset {
					t.Fatalf("got %v (status %s, body %q), want the first 10 bytes, then RST_STREAM", r, r.status, r.body)
				}
				tookAbout(t, "reset", start, idle)
			})
			t.Run("busy stream outlives the timeout", func(t *testing.T) {
				// A body trickled over more than an idle period, each piece well
				// within one.
				h := dialH2(t, addr, nil)
				_ = h.c.SetDeadline(time.Now().Add(20 * time.Second))
				h.headers(1, false, hostFields("POST", host, "/ok")...)
				for i := 0; i < 12; i++ {
					time.Sleep(pauseWithin)
					h.data(1, false, "x")
				}
				h.data(1, true, "")
				if r := h.await(1); r.status != "200" || r.body != "ok" {
					t.Fatalf("got %v, want 200 ok", r)
				}
			})
		})
	}
	// A backend reports only its first abort: one host is enough here.
	t.Run("client grants no window", func(t *testing.T) {
		h := dialH2(t, addr, nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		start := time.Now()
		h.headers(1, true, hostFields("GET", "h1.example", "/big")...)
		r := h.await(1)
		if r.status != "200" || r.body != "" || !r.reset {
			t.Fatalf("got %v (status %s, %d body bytes), want the head, then RST_STREAM", r, r.status, len(r.body))
		}
		tookAbout(t, "reset", start, idle)
		select {
		case <-aborted["h1.example"]:
		case <-time.After(5 * time.Second):
			t.Fatal("the upstream response kept going")
		}
	})
}

// TestH2ClientStopsReading checks that a client that reads nothing of its
// connection while the proxy has a response for it is disconnected after
// stream_idle_timeout, and the upstream exchange is aborted. The socket
// buffers fill within milliseconds, then the proxy's writes wait; the
// timeout is long enough that a backend slowed down by a loaded machine
// does not end the stream (leaving the connection open) first.
func TestH2ClientStopsReading(t *testing.T) {
	const idle = 2 * time.Second
	addr, aborted := stallProxy(t, func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(idle)
	}, nil)
	for _, host := range []string{"h1.example", "h2.example"} {
		t.Run(host, func(t *testing.T) {
			h := dialH2(t, addr, nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
			if err := h.fr.WriteWindowUpdate(0, 1<<31-1-65535); err != nil {
				t.Fatal(err)
			}
			h.headers(1, true, hostFields("GET", host, "/big")...)
			select {
			case <-aborted[host]:
			case <-time.After(idle + 5*time.Second):
				t.Fatal("the upstream response kept going to a client that does not read")
			}
			// The stream's timer and the connection's write deadline end
			// at about the same time. Then a frame to a closed socket is
			// answered with a reset, which the read sees right after the
			// bytes already received (draining the proxy's send buffer
			// instead would depend on TCP's zero-window probing).
			time.Sleep(500 * time.Millisecond)
			_ = h.fr.WritePing(false, [8]byte{})
			_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := io.Copy(io.Discard, h.c)
			if n >= bigResponse || (err != nil && !isClosedErr(err)) {
				t.Fatalf("read %d of %d bytes (%v) after the abort, want the connection closed", n, bigResponse, err)
			}
		})
	}
}

// TestH2RequestTimeout checks request_timeout per HTTP/2 stream: DATA
// trickled one byte at a time, each well within the stream idle timeout,
// is cut off with 408 "request timeout" once the stream is that old; each
// stream of a connection has its own time.
func TestH2RequestTimeout(t *testing.T) {
	const timeout = 600 * time.Millisecond
	addr, _ := stallProxy(t, func(h *hcmv3.HttpConnectionManager) {
		h.RequestTimeout = durationpb.New(timeout)
		h.StreamIdleTimeout = durationpb.New(5 * time.Second)
	}, nil)
	for _, host := range []string{"h1.example", "h2.example", "h1-retry.example", "h2-retry.example"} {
		t.Run(host+": trickled body cut off", func(t *testing.T) {
			h := dialH2(t, addr, nil)
			start := time.Now()
			h.headers(1, false, hostFields("POST", host, "/ok", "content-length", "40")...)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < 40; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					if h.fr.WriteData(1, i == 39, []byte{'b'}) != nil {
						return
					}
				}
			}()
			r := h.await(1)
			close(stop)
			<-done
			if r.status != "408" || r.body != "request timeout" {
				t.Fatalf("got %v, want 408 request timeout", r)
			}
			tookAbout(t, "answered", start, timeout)
		})
		t.Run(host+": each stream has its own time", func(t *testing.T) {
			h := dialH2(t, addr, nil)
			h.headers(1, true, hostFields("GET", host, "/ok")...)
			if r := h.await(1); r.status != "200" {
				t.Fatalf("stream 1: %v", r)
			}
			time.Sleep(timeout + 100*time.Millisecond)
			h.headers(3, false, hostFields("POST", host, "/ok")...)
			time.Sleep(pauseWithin)
			h.data(3, true, "late")
			if r := h.await(3); r.status != "200" || r.body != "ok" {
				t.Fatalf("stream 3: %v", r)
			}
		})
	}
}

// TestH2HeaderBlockTimeout checks that a header block trickled in
// CONTINUATION frames (or a HEADERS frame trickled byte by byte), each
// piece well within the stream idle timeout, ends the connection once
// request_headers_timeout passed since the block began: nothing else can
// move on the connection while a block is open. The timer starts with each
// block, never with the connection, on plain (protocol-sniffed) and TLS
// connections.
func TestH2HeaderBlockTimeout(t *testing.T) {
	const timeout = 600 * time.Millisecond
	mod := func(h *hcmv3.HttpConnectionManager) {
		h.RequestHeadersTimeout = durationpb.New(timeout)
		h.StreamIdleTimeout = durationpb.New(5 * time.Second)
	}
	plain, _ := stallProxy(t, mod, nil)
	var tc tls.Config
	secure, _ := stallProxy(t, mod, &tc)
	dial := map[string]func(t *testing.T) *h2client{
		"plain": func(t *testing.T) *h2client { return dialH2(t, plain, nil) },
		"tls":   func(t *testing.T) *h2client { return dialH2(t, secure, &tc) },
	}
	for _, name := range []string{"plain", "tls"} {
		t.Run(name+": CONTINUATION trickle", func(t *testing.T) {
			h := dial[name](t)
			blk := h.block(hostFields("GET", "h1.example", "/ok", "x-slow", strings.Repeat("s", 200))...)
			start := time.Now()
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:10], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 10; i < len(blk); i++ {
					time.Sleep(50 * time.Millisecond)
					if h.fr.WriteContinuation(1, i == len(blk)-1, blk[i:i+1]) != nil {
						return
					}
				}
			}()
			h.awaitClose(5 * time.Second)
			tookAbout(t, "closed", start, timeout)
			h.c.Close()
			<-done
		})
		t.Run(name+": HEADERS frame trickle", func(t *testing.T) {
			h := dial[name](t)
			blk := h.block(hostFields("GET", "h1.example", "/ok", "x-slow", strings.Repeat("s", 200))...)
			frame := []byte{byte(len(blk) >> 16), byte(len(blk) >> 8), byte(len(blk)), 0x1, 0x5, 0, 0, 0, 1}
			frame = append(frame, blk...)
			start := time.Now()
			if _, err := h.c.Write(frame[:12]); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 12; i < len(frame); i++ {
					time.Sleep(50 * time.Millisecond)
					if _, err := h.c.Write(frame[i : i+1]); err != nil {
						return
					}
				}
			}()
			h.awaitClose(5 * time.Second)
			tookAbout(t, "closed", start, timeout)
			h.c.Close()
			<-done
		})
		t.Run(name+": the timer starts with each block", func(t *testing.T) {
			h := dial[name](t)
			h.headers(1, true, hostFields("GET", "h1.example", "/ok")...)
			if r := h.await(1); r.status != "200" {
				t.Fatalf("stream 1: %v", r)
			}
			// Longer than the timeout after the connection's (and the first
			// block's) first byte, then a block in pieces that takes most of
			// it.
			time.Sleep(timeout + 200*time.Millisecond)
			blk := h.block(hostFields("GET", "h1.example", "/ok", "x-second", "block")...)
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: blk[:2], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(pauseWithin)
			if err := h.fr.WriteContinuation(3, true, blk[2:]); err != nil {
				t.Fatal(err)
			}
			if r := h.await(3); r.status != "200" {
				t.Fatalf("stream 3: %v", r)
			}
		})
	}
}

// TestH2IdleStreamsBounded checks what a client opening streams it never
// ends can hold: at most max_concurrent_streams of them (more are
// refused), each for the stream idle timeout (408 "stream timeout"); the
// connection then serves new streams, and with none left goes away after
// common_http_protocol_options.idle_timeout (GOAWAY NO_ERROR and a close).
func TestH2IdleStreamsBounded(t *testing.T) {
	const idle, connIdle = 800 * time.Millisecond, 1500 * time.Millisecond
	addr, _ := stallProxy(t, func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(idle)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(connIdle)}
		h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(4)}
	}, nil)
	h := dialH2(t, addr, nil)
	_ = h.c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	streams := []uint32{1, 3, 5, 7}
	for i, id := range streams {
		host := "h1.example"
		if i%2 == 1 {
			host = "h2.example"
		}
		h.headers(id, false, hostFields("POST", host, "/ok")...)
	}
	h.headers(9, false, hostFields("POST", "h1.example", "/ok")...)
	res := h.awaitAll(append(streams, 9)...)
	if r := res[9]; !r.reset {
		t.Fatalf("fifth concurrent stream: %v, want it refused", r)
	}
	for _, id := range streams {
		if r := res[id]; r.status != "408" || r.body != "stream timeout" {
			t.Fatalf("stream %d: %v, want 408 stream timeout", id, r)
		}
	}
	tookAbout(t, "all streams answered", start, idle)
	// The server starts the idle timer when it closes the last stream,
	// which may be before the client reads that stream's end: time it
	// from before the stream opens.
	start = time.Now()
	h.headers(11, true, hostFields("GET", "h1.example", "/ok")...)
	if r := h.await(11); r.status != "200" || r.body != "ok" {
		t.Fatalf("stream 11: %v", r)
	}
	h.awaitClose(connIdle + 3*time.Second)
	tookAbout(t, "idle connection closed", start, connIdle)
}

// TestH2ConnectionIdleTimeout checks common_http_protocol_options.idle_timeout
// on HTTP/2 connections: it counts only while no stream is open, so a busy
// connection (one request after another, or one long stream) outlives it
// also when it was recognised by its prior-knowledge
// preface (the protocol sniffer's read deadline used to stay on it); a
// connection without streams gets GOAWAY (NO_ERROR) and is closed.
func TestH2ConnectionIdleTimeout(t *testing.T) {
	const connIdle = time.Second
	addr, _ := stallProxy(t, func(h *hcmv3.HttpConnectionManager) {
		h.StreamIdleTimeout = durationpb.New(5 * time.Second)
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(connIdle)}
	}, nil)
	t.Run("one request after another", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		for id := uint32(1); id < 30; id += 2 {
			time.Sleep(pauseWithin)
			h.headers(id, true, hostFields("GET", "h1.example", "/ok")...)
			if r := h.await(id); r.status != "200" || r.body != "ok" {
				t.Fatalf("stream %d: %v", id, r)
			}
		}
	})
	t.Run("one long stream", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		h.headers(1, false, hostFields("POST", "h2.example", "/ok")...)
		for i := 0; i < 12; i++ {
			time.Sleep(pauseWithin)
			h.data(1, false, "x")
		}
		h.data(1, true, "")
		if r := h.await(1); r.status != "200" || r.body != "ok" {
			t.Fatalf("stream 1: %v", r)
		}
	})
	t.Run("idle connection goes away", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		// The idle timer starts when the server closes the stream, which
		// may be before the client reads its end: time it from before
		// the stream opens.
		start := time.Now()
		h.headers(1, true, hostFields("GET", "h1.example", "/ok")...)
		if r := h.await(1); r.status != "200" {
			t.Fatalf("stream 1: %v", r)
		}
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				t.Fatalf("before GOAWAY: %v", err)
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
					t.Fatalf("GOAWAY %v, last stream %d", g.ErrCode, g.LastStreamID)
				}
				break
			}
		}
		tookAbout(t, "GOAWAY", start, connIdle)
		h.awaitClose(3 * time.Second)
	})
}
