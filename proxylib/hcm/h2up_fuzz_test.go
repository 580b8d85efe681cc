package hcm

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// h2Backend is an HTTP/2 (h2c) upstream on loopback that answers the
// first request of every connection with whatever frames answer holds
// then: it reads the client preface, sends its own SETTINGS, acknowledges
// the client's, waits for the request's HEADERS, writes the frames, and
// closes its sending side, reading on until the client closes (at most
// 10 s).
type h2Backend struct {
	ln     net.Listener
	answer atomic.Pointer[[]byte]
	wg     sync.WaitGroup
}

func startH2Backend(tb testing.TB) *h2Backend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &h2Backend{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go b.serve(c)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *h2Backend) serve(c net.Conn) {
	defer b.wg.Done()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	if fr.WriteSettings() != nil {
		return
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			if fr.WriteSettingsAck() != nil {
				return
			}
		}
		if h, ok := f.(*http2.HeadersFrame); ok && h.HeadersEnded() {
			break
		}
	}
	if a := b.answer.Load(); a != nil {
		if _, err := c.Write(*a); err != nil {
			return
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c)
}

// h2Answers are backend frames (on stream 1, after the handshake) for
// FuzzH2Upstream.
func h2Answers() [][]byte {
	var out [][]byte
	frames := func(write func(fr *http2.Framer, enc func(...string) []byte)) []byte {
		var b, hb bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		e := hpack.NewEncoder(&hb)
		enc := func(kv ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				_ = e.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return append([]byte(nil), hb.Bytes()...)
		}
		write(fr, enc)
		return b.Bytes()
	}
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":status", "200", "content-length", "2"), EndHeaders: true})
		_ = fr.WriteData(1, true, []byte("ok"))
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		blk := enc(":status", "200", "x-a", "b", "set-cookie", "a=1", "set-cookie", "b=2")
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:4], PadLength: 3})
		_ = fr.WriteContinuation(1, true, blk[4:])
		_ = fr.WriteData(1, false, []byte("chunk"))
		_ = fr.WriteDataPadded(1, false, []byte("ed"), []byte{0, 0, 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc("grpc-status", "0"), EndStream: true, EndHeaders: true})
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":status", "100"), EndHeaders: true})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1<<20)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":status", "503", "connection", "close"), EndStream: true, EndHeaders: true})
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":status", "204"), EndHeaders: true})
		_ = fr.WriteRSTStream(1, http2.ErrCodeInternal)
		_ = fr.WriteGoAway(1, http2.ErrCodeProtocol, []byte("bye"))
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: enc(":method", "GET", ":path", "/p"), EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(":status", "200"), EndStream: true, EndHeaders: true})
	}))
	return out
}

// badStatusAnswer is a response whose :status is "000": x/net takes any
// integer as :status, and the proxy must not relay it as status 0.
func badStatusAnswer() []byte {
	var out, blk bytes.Buffer
	_ = hpack.NewEncoder(&blk).WriteField(hpack.HeaderField{Name: ":status", Value: "000"})
	_ = http2.NewFramer(&out, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk.Bytes(), EndStream: true, EndHeaders: true})
	return out.Bytes()
}

// h2UpstreamRuntime is recorderRuntime's twin for an HTTP/2 upstream:
// route config "rc" sends every request to cluster "c", which speaks h2c
// to b.
func h2UpstreamRuntime(b *h2Backend) (*upstream.Manager, *Runtime, *panicLog) {
	mgr := upstream.NewManager(nil)
	cl := mgr.Build(&resource.Cluster{Name: "c", ConnectTimeout: time.Second, HTTP2: true, Limits: resource.DefaultThresholds},
		&resource.Endpoints{ClusterName: "c", Endpoints: []resource.Endpoint{{Address: b.ln.Addr().String(), Weight: 1}}})
	rt, plog := routedRuntime(cl)
	return mgr, rt, plog
}

// maxDownstreamHead bounds the response head a client may receive:
// an upstream head within the bound HTTP/2 upstreams are held to (the
// HTTP/1.1 one, http1.MaxHeadBytes), plus room for the status line and
// the few headers the proxy adds.
const maxDownstreamHead = http1.MaxHeadBytes + 4<<10

// h2UpstreamExchange sends one HTTP/1.1 request through a real
// connection manager to the backend and returns what the client read
// until the connection closed. It fails the test when the proxy panics
// or the exchange does not end within 20 s.
func h2UpstreamExchange(t *testing.T, rt *Runtime, plog *panicLog) []byte {
	t.Helper()
	cfg := &resource.HCM{RouteConfigName: "rc", ServerName: "envoy", IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, Codec: resource.CodecAuto}
	h := NewHandler(rt, cfg, false)
	client, server := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeConn(server, listener.ConnInfo{})
	}()
	defer client.Close()
	_ = client.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { _, _ = client.Write([]byte("GET /x HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n")) }()
	var got bytes.Buffer
	_, err := io.Copy(&got, client)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	if err != nil {
		t.Fatalf("the client's exchange did not end: %v; read %d bytes", err, got.Len())
	}
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection manager did not end after its client's connection closed")
	}
	if m := plog.msg.Load(); m != nil {
		t.Fatalf("handler panic: %s", *m)
	}
	return got.Bytes()
}

// h2UpstreamExchangeH2 is h2UpstreamExchange for an HTTP/2 client (h2c
// prior knowledge, x/net's client): it returns the response's status and
// the size of its header list, or 0 when the request failed (a reset or
// a closed connection).
func h2UpstreamExchangeH2(t *testing.T, rt *Runtime, plog *panicLog) (status, headerBytes int) {
	t.Helper()
	cfg := &resource.HCM{RouteConfigName: "rc", ServerName: "envoy", IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, Codec: resource.CodecAuto}
	h := NewHandler(rt, cfg, false)
	client, server := net.Pipe()
	served := make(chan struct{})
	go func() {
		defer close(served)
		h.ServeConn(server, listener.ConnInfo{ALPN: "h2"})
	}()
	_ = client.SetDeadline(time.Now().Add(20 * time.Second))
	tr := &http2.Transport{AllowHTTP: true}
	cc, err := tr.NewClientConn(client)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://a.example/x", nil)
	resp, err := cc.RoundTrip(req)
	if err == nil {
		status = resp.StatusCode
		for k, vs := range resp.Header {
			for _, v := range vs {
				headerBytes += len(k) + len(v) + 32
			}
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil && isTimeout(err) {
			t.Fatalf("the response body did not end: %v", err)
		}
	} else if isTimeout(err) {
		t.Fatalf("the exchange did not end: %v", err)
	}
	cc.Close()
	client.Close()
	select {
	case <-served:
	case <-time.After(20 * time.Second):
		t.Fatal("the connection manager did not end after its client's connection closed")
	}
	if m := plog.msg.Load(); m != nil {
		t.Fatalf("handler panic: %s", *m)
	}
	return status, headerBytes
}

// checkDownstream is what a client may receive: nothing (a closed
// connection), or a response whose head ends within maxDownstreamHead
// and, within http1.MaxHeadBytes, parses.
func checkDownstream(t *testing.T, got []byte, in []byte) {
	t.Helper()
	if len(got) == 0 {
		return
	}
	end := bytes.Index(got, []byte("\r\n\r\n"))
	if end < 0 || end+4 > maxDownstreamHead {
		t.Fatalf("the client received %d bytes without a head end within %d: %.200q\ninput %x", len(got), maxDownstreamHead, got, in)
	}
	if end+4 > http1.MaxHeadBytes {
		return
	}
	var r http1.Response
	if err := http1.ParseResponse(got, false, &r); err != nil {
		t.Fatalf("the client received no parsable response head (%v): %.300q\ninput %x", err, got, in)
	}
}

// FuzzH2Upstream drives a real connection manager to an HTTP/2 upstream
// that, after a valid handshake, answers the request with fuzzed frames
// and closes; the client speaks HTTP/1.1 or (h2down) HTTP/2. Whatever the
// frames, the proxy must not panic, and the client must get a well-formed
// response (a status code of three digits) or a closed connection or
// reset stream within a bounded time, with a response head within the
// bound of upstream heads.
func FuzzH2Upstream(f *testing.F) {
	for _, a := range append(h2Answers(), badStatusAnswer()) {
		f.Add(a, false)
		f.Add(a, true)
	}
	b := startH2Backend(f)
	f.Fuzz(func(t *testing.T, in []byte, h2down bool) {
		b.answer.Store(&in)
		// A pool of its own per run: no connection of an earlier run
		// (closing, or left in a state its frames caused) serves this one.
		mgr, rt, plog := h2UpstreamRuntime(b)
		defer mgr.Close()
		if !h2down {
			checkDownstream(t, h2UpstreamExchange(t, rt, plog), in)
			return
		}
		status, size := h2UpstreamExchangeH2(t, rt, plog)
		if status != 0 && (status < 100 || status > 999) || size > maxDownstreamHead {
			t.Fatalf("the HTTP/2 client got status %d with %d bytes of headers; input %x", status, size, in)
		}
	})
}

// TestH2UpstreamHeaderBomb: an HTTP/2 upstream whose few bytes of HPACK
// decode to a megabyte of response headers (one indexed field repeated)
// gets the client a 5xx from the proxy, not the megabyte.
func TestH2UpstreamHeaderBomb(t *testing.T) {
	var blk, out bytes.Buffer
	e := hpack.NewEncoder(&blk)
	_ = e.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	big := hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 3000)}
	for range 350 { // the first adds it to the dynamic table, the rest index it
		_ = e.WriteField(big)
	}
	fr := http2.NewFramer(&out, nil)
	raw := blk.Bytes()
	first := min(len(raw), 16000)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: raw[:first], EndHeaders: first == len(raw)})
	for rest := raw[first:]; len(rest) > 0; {
		n := min(len(rest), 16000)
		_ = fr.WriteContinuation(1, n == len(rest), rest[:n])
		rest = rest[n:]
	}
	_ = fr.WriteData(1, true, []byte("ok"))
	if out.Len() > 20000 {
		t.Fatalf("the bomb takes %d bytes on the wire", out.Len())
	}
	b := startH2Backend(t)
	a := out.Bytes()
	b.answer.Store(&a)
	mgr, rt, plog := h2UpstreamRuntime(b)
	defer mgr.Close()
	got := h2UpstreamExchange(t, rt, plog)
	checkDownstream(t, got, nil)
	var r http1.Response
	if err := http1.ParseResponse(got, false, &r); err != nil || r.Status < 500 {
		t.Fatalf("the client got %.200q (%v), want a 5xx from the proxy", got, err)
	}
}

// TestH2UpstreamAnswers checks the harness of FuzzH2Upstream: a plain
// answer reaches the client whole, and a reset before any header or a
// response whose :status is no status code gets it the proxy's 503.
func TestH2UpstreamAnswers(t *testing.T) {
	b := startH2Backend(t)
	for _, c := range []struct {
		answer []byte
		want   string
	}{
		{h2Answers()[0], "HTTP/1.1 200 OK\r\n"},
		{func() []byte {
			var out bytes.Buffer
			_ = http2.NewFramer(&out, nil).WriteRSTStream(1, http2.ErrCodeInternal)
			return out.Bytes()
		}(), "HTTP/1.1 503 "},
		{badStatusAnswer(), "HTTP/1.1 503 "},
	} {
		b.answer.Store(&c.answer)
		mgr, rt, plog := h2UpstreamRuntime(b)
		got := h2UpstreamExchange(t, rt, plog)
		mgr.Close()
		checkDownstream(t, got, c.answer)
		if !bytes.HasPrefix(got, []byte(c.want)) {
			t.Errorf("got %.200q, want %q…", got, c.want)
		}
		if c.want == "HTTP/1.1 200 OK\r\n" && !bytes.HasSuffix(got, []byte("\r\n\r\nok")) {
			t.Errorf("got %.200q, want the body ok", got)
		}
	}
}
