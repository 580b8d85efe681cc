package proxylib_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h2Proxy runs a proxy whose only route forwards to a recording HTTP/1.1
// upstream. With tlsConf non-nil the listener terminates TLS (ALPN h2) and
// tlsConf is filled in for the client.
func h2Proxy(t *testing.T, h2 *corev3.Http2ProtocolOptions, tlsConf *tls.Config) (string, *rawUpstream) {
	t.Helper()
	up := startRawUpstream(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	mod := func(h *hcmv3.HttpConnectionManager) { h.Http2ProtocolOptions = h2 }
	res := []proto.Message{routeConfig("rc", vh("v", "*", prefixRoute("/", "up"))), edsCluster(t, "up", false, nil), cla("up", up.addr)}
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
	v := x.set(append([]proto.Message{l}, res...)...)
	startProxy(t, x.sock)
	x.waitACK("type.googleapis.com/envoy.config.listener.v3.Listener", v)
	if tlsConf == nil {
		waitServing(t, "http://"+addr+"/", "app.example")
	} else {
		for i := 0; ; i++ {
			c, err := tls.Dial("tcp", addr, tlsConf)
			if err == nil {
				c.Close()
				break
			}
			if i == 200 {
				t.Fatalf("TLS listener never served: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return addr, up
}

// malformedCases are requests that must never reach the upstream: each
// carries a marker that would appear in the upstream bytes if it did.
var malformedCases = []struct {
	name      string
	fields    []string
	endStream bool
	data      string
}{
	{"path with SP and a request line", reqFields("/m01 HTTP/1.1\r\nHost: x"), true, ""},
	{"path with SP", reqFields("/m02 HTTP/1.1"), true, ""},
	{"path with a control byte", reqFields("/m03\x01"), true, ""},
	{"path with a fragment", reqFields("/m04#f"), true, ""},
	{"path in absolute-form", reqFields("http://app.example/m05"), true, ""},
	{"asterisk for GET", reqFields("*", "x-m", "m06"), true, ""},
	{"value with CRLF", reqFields("/", "x-a", "m07\r\nx-smuggled: 1"), true, ""},
	{"value with leading SP", reqFields("/", "x-a", " m08"), true, ""},
	{"value with trailing HTAB", reqFields("/", "x-a", "m09\t"), true, ""},
	{"value with DEL", reqFields("/", "x-a", "m10\x7f"), true, ""},
	{"upper-case name", reqFields("/", "X-A", "m11"), true, ""},
	{"transfer-encoding", append(reqFields("/m12"), "transfer-encoding", "chunked"), false, "0\r\n\r\nGET /m12-smuggled HTTP/1.1\r\nhost: x\r\n\r\n"},
	{"connection", reqFields("/m13", "connection", "close"), true, ""},
	{"te gzip", reqFields("/m14", "te", "gzip"), true, ""},
	{"upgrade", reqFields("/m15", "upgrade", "websocket"), true, ""},
	{"keep-alive", reqFields("/m16", "keep-alive", "timeout=5"), true, ""},
	{"proxy-connection", reqFields("/m17", "proxy-connection", "keep-alive"), true, ""},
	{"method with SP", []string{":method", "GET /m18", ":scheme", "http", ":authority", "app.example", ":path", "/"}, true, ""},
	{"authority port out of range", []string{":method", "GET", ":scheme", "http", ":authority", "app.example:99999", ":path", "/m19"}, true, ""},
	{"authority with an open bracket", []string{":method", "GET", ":scheme", "http", ":authority", "[::1", ":path", "/m20"}, true, ""},
	{"authority with userinfo", []string{":method", "GET", ":scheme", "http", ":authority", "u@app.example", ":path", "/m21"}, true, ""},
	{"no authority and no host", []string{":method", "GET", ":scheme", "http", ":path", "/m22"}, true, ""},
	{"host differs from authority", reqFields("/m23", "host", "other.example"), true, ""},
	{"protocol pseudo-header", append([]string{":protocol", "websocket"}, reqFields("/m24")...), true, ""},
	{"content-length with END_STREAM on HEADERS", reqFields("/m25", "content-length", "5"), true, ""},
	{"content-length list", reqFields("/m26", "content-length", "5, 5"), false, "hello"},
	{"negative content-length", reqFields("/m27", "content-length", "-1"), false, "hello"},
	{"disagreeing content-lengths", reqFields("/m28", "content-length", "5", "content-length", "6"), false, "hello"},
	{"101 fields", func() []string {
		f := reqFields("/m29")
		for i := 0; i < 97; i++ {
			f = append(f, fmt.Sprintf("x-f%d", i), "v")
		}
		return f
	}(), true, ""},
}

// checkNotForwarded fails if any upstream connection received marker.
func checkNotForwarded(t *testing.T, up *rawUpstream, marker string) {
	t.Helper()
	for _, got := range up.received() {
		if strings.Contains(got, marker) {
			t.Errorf("the upstream received %q:\n%s", marker, got)
		}
	}
}

// checkForwarded sends a valid request and waits for it upstream, so that
// anything sent before it had its chance to arrive.
func checkForwarded(t *testing.T, h *h2client, stream uint32, up *rawUpstream, marker string) {
	t.Helper()
	h.headers(stream, true, reqFields("/"+marker)...)
	if r := h.await(stream); r.status != "200" {
		t.Fatalf("valid request %s: %v", marker, r)
	}
	for _, got := range up.received() {
		if strings.HasPrefix(got, "GET /"+marker+" HTTP/1.1\r\nhost: app.example\r\n") {
			return
		}
	}
	t.Fatalf("valid request %s never reached the upstream: %q", marker, up.received())
}

var markerRE = regexp.MustCompile(`m[0-9]{2}`)

func marker(fields []string) string {
	for _, f := range fields {
		if m := markerRE.FindString(f); m != "" {
			return m
		}
	}
	panic("case without a marker")
}

// By default (as in Envoy), a malformed request closes the connection with
// GOAWAY PROTOCOL_ERROR, and nothing of it reaches the upstream.
func TestH2MalformedRequestsNeverReachUpstream(t *testing.T) {
	addr, up := h2Proxy(t, nil, nil)
	for i, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			h := dialH2(t, addr, nil)
			h.headers(1, tc.endStream, tc.fields...)
			if tc.data != "" {
				h.data(1, true, tc.data)
			}
			r := h.await(1)
			if !r.goaway || r.code != http2.ErrCodeProtocol {
				t.Errorf("got %v, want GOAWAY PROTOCOL_ERROR", r)
			}
			checkForwarded(t, dialH2(t, addr, nil), 1, up, fmt.Sprintf("ok%02d", i))
			checkNotForwarded(t, up, marker(tc.fields))
		})
	}
}

// With override_stream_error_on_invalid_http_message, only the stream is
// reset (RST_STREAM PROTOCOL_ERROR) and the connection goes on serving; the
// same holds over TLS.
func TestH2MalformedRequestsStreamErrors(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			var tc *tls.Config
			if useTLS {
				tc = &tls.Config{}
			}
			addr, up := h2Proxy(t, &corev3.Http2ProtocolOptions{OverrideStreamErrorOnInvalidHttpMessage: wrapperspb.Bool(true)}, tc)
			h := dialH2(t, addr, tc)
			stream := uint32(1)
			for i, c := range malformedCases {
				h.headers(stream, c.endStream, c.fields...)
				if c.data != "" && !strings.HasPrefix(c.name, "content-length") {
					h.data(stream, true, c.data)
				}
				if r := h.await(stream); !r.reset || r.rst != http2.ErrCodeProtocol {
					t.Fatalf("%s: got %v, want RST_STREAM PROTOCOL_ERROR", c.name, r)
				}
				stream += 2
				checkForwarded(t, h, stream, up, fmt.Sprintf("ok%02d", i))
				stream += 2
				checkNotForwarded(t, up, marker(c.fields))
			}
		})
	}
}

func TestH2ContentLengthMismatch(t *testing.T) {
	addr, up := h2Proxy(t, nil, nil)
	t.Run("more DATA than declared", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		h.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "app.example", ":path", "/more", "content-length", "5")
		h.data(1, true, "0123456789")
		if r := h.await(1); !r.reset || r.rst != http2.ErrCodeProtocol {
			t.Fatalf("got %v, want RST_STREAM PROTOCOL_ERROR", r)
		}
		checkForwarded(t, h, 3, up, "ok-more")
		checkNotForwarded(t, up, "01234")
	})
	t.Run("more DATA than declared, in two frames", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		h.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "app.example", ":path", "/split", "content-length", "5")
		h.data(1, false, "abcde")
		h.data(1, true, "VWXYZ")
		if r := h.await(1); !r.reset || r.rst != http2.ErrCodeProtocol {
			t.Fatalf("got %v, want RST_STREAM PROTOCOL_ERROR", r)
		}
		checkForwarded(t, h, 3, up, "ok-split")
		checkNotForwarded(t, up, "VWXYZ")
	})
	t.Run("less DATA than declared", func(t *testing.T) {
		h := dialH2(t, addr, nil)
		h.headers(1, false, ":method", "POST", ":scheme", "http", ":authority", "app.example", ":path", "/less", "content-length", "10")
		h.data(1, true, "01234")
		if r := h.await(1); r.status != "400" {
			t.Fatalf("got %v, want status 400", r)
		}
		checkForwarded(t, h, 3, up, "ok-less")
		// The upstream saw the head and five bytes, then the connection
		// closed: never a complete request.
		for _, got := range up.received() {
			if head, body, ok := strings.Cut(got, "\r\n\r\n"); ok && strings.HasPrefix(head, "POST /less ") && len(body) >= 10 {
				t.Fatalf("the upstream received a complete body: %q", got)
			}
		}
	})
}

// The connection manager's HTTP/2 settings are advertised and enforced.
func TestH2SettingsAndMaxConcurrentStreams(t *testing.T) {
	addr, _ := h2Proxy(t, &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:        wrapperspb.UInt32(2),
		InitialStreamWindowSize:     wrapperspb.UInt32(128 << 10),
		InitialConnectionWindowSize: wrapperspb.UInt32(4 << 20),
	}, nil)
	h := dialH2(t, addr, nil)
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 2,
		http2.SettingInitialWindowSize:    128 << 10,
		http2.SettingMaxFrameSize:         16 << 10,
		http2.SettingMaxHeaderListSize:    60 << 10,
	}
	for id, v := range want {
		if h.settings[id] != v {
			t.Errorf("%v = %d, want %d (all: %v)", id, h.settings[id], v, h.settings)
		}
	}
	h.sync()
	if h.connWin != 4<<20-65535 {
		t.Errorf("connection window update %d, want %d", h.connWin, 4<<20-65535)
	}
	post := func(stream uint32) {
		h.headers(stream, false, ":method", "POST", ":scheme", "http", ":authority", "app.example", ":path", "/slow", "content-length", "2")
	}
	post(1)
	post(3)
	post(5) // a third concurrent stream
	if r := h.await(5); !r.reset || (r.rst != http2.ErrCodeRefusedStream && r.rst != http2.ErrCodeProtocol) {
		t.Fatalf("third concurrent stream: %v, want it refused", r)
	}
	h.data(1, true, "ok")
	if r := h.await(1); r.status != "200" {
		t.Fatalf("stream 1: %v", r)
	}
	post(7)
	h.data(7, true, "ok")
	if r := h.await(7); r.status != "200" {
		t.Fatalf("stream 7, with a stream slot free again: %v", r)
	}
}

// A SETTINGS frame that repeats a parameter is processed in order (RFC 9113
// §6.5.3) instead of ending the connection.
func TestH2RepeatedSettingsParameter(t *testing.T) {
	addr, _ := h2Proxy(t, nil, nil)
	h := dialH2(t, addr, nil, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	h.headers(1, true, reqFields("/window")...)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			if len(f.Data()) != 1 {
				t.Fatalf("first DATA frame of %d bytes with a window of 1", len(f.Data()))
			}
			return
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		case *http2.RSTStreamFrame:
			t.Fatalf("RST_STREAM %v", f.ErrCode)
		}
	}
}

// A frame over SETTINGS_MAX_FRAME_SIZE (16 KiB, also the protocol's
// default) is a connection error of type FRAME_SIZE_ERROR.
func TestH2FrameSizeLimit(t *testing.T) {
	addr, up := h2Proxy(t, nil, nil)
	h := dialH2(t, addr, nil)
	h.headers(1, true, reqFields("/m90", "x-big", strings.Repeat("~", 17<<10))...) // "~" has no shorter Huffman code
	if r := h.await(1); !r.goaway || r.code != http2.ErrCodeFrameSize {
		t.Fatalf("got %v, want GOAWAY FRAME_SIZE_ERROR", r)
	}
	checkForwarded(t, dialH2(t, addr, nil), 1, up, "ok90")
	checkNotForwarded(t, up, "m90")
}

// A header list over SETTINGS_MAX_HEADER_LIST_SIZE (the request head
// limit, 60 KiB by default) gets 431, as an HTTP/1.1 head over the limit.
func TestH2HeaderListSizeLimit(t *testing.T) {
	addr, up := h2Proxy(t, nil, nil)
	h := dialH2(t, addr, nil)
	// Sixteen fields of 4 KiB: the sixteenth crosses 60 KiB (each field
	// counts its name, its value and 32 bytes), in the block's last frame.
	f := reqFields("/m91")
	for i := 0; i < 16; i++ {
		f = append(f, fmt.Sprintf("x-big%02d", i), strings.Repeat("~", 4000))
	}
	h.headersSplit(1, true, f...)
	if r := h.await(1); r.status != "431" {
		t.Fatalf("got %v, want status 431", r)
	}
	checkForwarded(t, h, 3, up, "ok91")
	checkNotForwarded(t, up, "m91")
	// Fifteen pass.
	h.headersSplit(5, true, append(reqFields("/ok92"), f[8:8+30]...)...)
	if r := h.await(5); r.status != "200" {
		t.Fatalf("fifteen 4 KiB fields: %v", r)
	}
}

// CONNECT is well-formed HTTP/2 but tunnels are not enabled: 403, as for
// an HTTP/1.1 upgrade that is not configured.
func TestH2ConnectRefused(t *testing.T) {
	addr, _ := h2Proxy(t, nil, nil)
	h := dialH2(t, addr, nil)
	h.headers(1, true, ":method", "CONNECT", ":authority", "app.example:443")
	if r := h.await(1); r.status != "403" {
		t.Fatalf("got %v, want status 403", r)
	}
}
