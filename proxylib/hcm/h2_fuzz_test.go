package hcm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/nodemesh/nodemesh/proxylib/header"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// FuzzH2ToH1 feeds header lists (name NUL value NUL ...) to the HTTP/2
// request check; every list it accepts must become an HTTP/1.1 head that
// package http1 parses back to the same request.
func FuzzH2ToH1(f *testing.F) {
	for _, s := range []string{
		":method\x00GET\x00:scheme\x00http\x00:authority\x00a.example\x00:path\x00/p?q=1\x00accept\x00*/*",
		":method\x00POST\x00:scheme\x00https\x00:path\x00/u\x00host\x00[::1]:8443\x00content-length\x004\x00te\x00trailers",
		":method\x00OPTIONS\x00:scheme\x00http\x00:authority\x00a:1\x00:path\x00*",
		":method\x00GET\x00:scheme\x00http\x00:authority\x00a\x00:path\x00/a b HTTP/1.1\r\nhost: x",
		":method\x00GET\x00:scheme\x00http\x00:authority\x00a\x00:path\x00/\x00x-a\x00 v\x00transfer-encoding\x00chunked",
		":method\x00PUT\x00:scheme\x00http\x00:authority\x00a\x00:path\x00/\x00cookie\x00a=b\x00cookie\x00c=d\x00x\x00\xff\t\xfe",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, block []byte, endStream bool) {
		parts := bytes.Split(block, []byte{0})
		var c h2Check
		c.reset(false, resource.DefaultMaxHeadersCount)
		var l header.List
		for i := 0; i+1 < len(parts); i += 2 {
			name, value := string(parts[i]), string(parts[i+1])
			c.field(name, value)
			if len(name) > 0 && name[0] != ':' {
				l = append(l, header.Field{Name: parts[i], Value: parts[i+1]})
			}
		}
		if c.finish(endStream) != nil || c.method == "CONNECT" {
			return
		}
		auth := c.authority
		if c.pseudo&h2Authority == 0 {
			auth = c.host
		}
		length := int64(0)
		switch {
		case c.hasLength:
			length = c.length
		case !endStream:
			length = -1
		}
		head := appendH1Head(nil, []byte(c.method), []byte(c.path), []byte(auth), l, length)
		path := c.path
		if path == "*" {
			// The HTTP/1.1 parser takes origin-form only; check the line
			// and read the rest back behind a "/".
			line := "OPTIONS * HTTP/1.1\r\n"
			if !bytes.HasPrefix(head, []byte(line)) {
				t.Fatalf("head %q", head)
			}
			head = append([]byte("OPTIONS / HTTP/1.1\r\n"), head[len(line):]...)
			path = "/"
		}
		var r http1.Request
		if err := http1.ParseRequest(head, &r); err != nil {
			t.Fatalf("accepted request became an unparsable head: %v\n%q", err, head)
		}
		if r.HeadLen != len(head) || string(r.Method) != c.method || string(r.Path) != path || string(r.Host) != auth {
			t.Fatalf("parsed back %q %q host %q (head %d of %d bytes)\n%q", r.Method, r.Path, r.Host, r.HeadLen, len(head), head)
		}
		want := header.List{{Name: hHost, Value: []byte(auth)}}
		for _, fl := range l {
			if n := string(fl.Name); n != "host" && n != "content-length" {
				want = append(want, fl)
			}
		}
		switch {
		case length < 0:
			want = append(want, header.Field{Name: []byte("transfer-encoding"), Value: []byte("chunked")})
			if r.Framing != http1.Chunked {
				t.Fatalf("framing %v, want chunked", r.Framing)
			}
		case length > 0:
			want = append(want, header.Field{Name: []byte("content-length"), Value: strconv.AppendInt(nil, length, 10)})
			if r.Framing != http1.Length || r.ContentLength != length {
				t.Fatalf("framing %v %d, want length %d", r.Framing, r.ContentLength, length)
			}
		default:
			if r.Framing != http1.NoBody {
				t.Fatalf("framing %v, want none", r.Framing)
			}
		}
		if len(r.Headers) != len(want) {
			t.Fatalf("fields %q, want %q", r.Headers, want)
		}
		for i := range want {
			if !bytes.Equal(r.Headers[i].Name, want[i].Name) || !bytes.Equal(r.Headers[i].Value, want[i].Value) {
				t.Fatalf("field %d: %q: %q, want %q: %q", i, r.Headers[i].Name, r.Headers[i].Value, want[i].Name, want[i].Value)
			}
		}
	})
}

// recorder is an HTTP/1.1 upstream on loopback that checks, as bytes
// arrive, that every connection starts with a head package http1 accepts,
// with an origin-form path and a valid host, and answers it.
type recorder struct {
	ln  net.Listener
	bad atomic.Pointer[string]
	wg  sync.WaitGroup
	// check, when set, returns what is wrong with a forwarded request
	// ("" if nothing).
	check func(*http1.Request) string
}

// startRecorder starts a recorder; check, when not nil, judges each
// forwarded request (set here, before the recorder serves, so no
// connection's goroutine can see it change).
func startRecorder(tb testing.TB, check func(*http1.Request) string) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &recorder{ln: ln, check: check}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go r.serve(c)
		}
	}()
	return r
}

func (u *recorder) serve(c net.Conn) {
	defer u.wg.Done()
	defer c.Close()
	var buf []byte
	var req http1.Request
	tmp := make([]byte, 4096)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		switch perr := http1.ParseRequest(buf, &req); {
		case perr == nil:
			if !http1.ValidOriginForm(req.Path) || !http1.ValidHost(req.Host) {
				u.fail("request target or host: " + string(buf[:req.HeadLen]))
			}
			if u.check != nil {
				if m := u.check(&req); m != "" {
					u.fail(m + ": " + string(buf[:req.HeadLen]))
				}
			}
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"))
			_, _ = io.Copy(io.Discard, c)
			return
		case !errors.Is(perr, http1.ErrIncomplete):
			u.fail(perr.Error() + ": " + string(buf))
			return
		case err != nil:
			if len(buf) > 0 {
				u.fail("incomplete head: " + string(buf))
			}
			return
		}
	}
}

func (u *recorder) fail(s string) { u.bad.CompareAndSwap(nil, &s) }

// panicLog records the HTTP/2 server's reports of handler panics.
type panicLog struct{ msg atomic.Pointer[string] }

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		m := r.Message
		p.msg.CompareAndSwap(nil, &m)
	}
	return nil
}
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicLog) WithGroup(string) slog.Handler      { return p }

// h2Seeds are client frames (after the preface) for FuzzH2Server.
func h2Seeds() [][]byte {
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
		_ = fr.WriteSettings()
		write(fr, enc)
		return b.Bytes()
	}
	get := []string{":method", "GET", ":scheme", "http", ":authority", "a.example", ":path", "/x"}
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(get...), EndStream: true, EndHeaders: true})
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		blk := enc(":method", "POST", ":scheme", "http", ":authority", "a.example", ":path", "/p", "content-length", "4", "te", "trailers")
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:3], PadLength: 2,
			Priority: http2.PriorityParam{StreamDep: 0, Weight: 9}})
		_ = fr.WriteContinuation(1, true, blk[3:])
		_ = fr.WriteData(1, false, []byte("ab"))
		_ = fr.WriteDataPadded(1, false, []byte("cd"), []byte{0, 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc("x-trailer", "1"), EndStream: true, EndHeaders: true})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(get...), EndStream: true, EndHeaders: true})
	}))
	out = append(out, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(append(get, "transfer-encoding", "chunked")...), EndHeaders: true})
		_ = fr.WriteData(1, true, []byte("0\r\n\r\n"))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(":method", "GET /x", ":scheme", "http", ":authority", "a", ":path", "/ HTTP/1.1"), EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WriteWindowUpdate(0, 1000)
	}))
	return out
}

// FuzzH2Server writes client frames into a real handler over a pipe; the
// route forwards to an HTTP/1.1 upstream on loopback. Whatever the frames,
// the server must not panic or hang, and every request that reaches the
// upstream must be a well-formed HTTP/1.1 head.
func FuzzH2Server(f *testing.F) {
	for _, s := range h2Seeds() {
		f.Add(s)
	}
	up := startRecorder(f, nil)
	defer up.ln.Close()
	mgr, rt, plog := recorderRuntime(up)
	defer mgr.Close()
	cfg := &resource.HCM{RouteConfigName: "rc", ServerName: "envoy", IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, Codec: resource.CodecAuto}
	h := NewHandler(rt, cfg, false)
	var hung atomic.Pointer[string]

	f.Fuzz(func(t *testing.T, in []byte) {
		// Whole frames only, so the closing PING is read as a frame.
		for off := 0; ; {
			if len(in)-off < 9 {
				in = in[:off]
				break
			}
			n := 9 + (int(in[off])<<16 | int(in[off+1])<<8 | int(in[off+2]))
			if len(in)-off < n {
				in = in[:off]
				break
			}
			off += n
		}
		client, server := net.Pipe()
		served := make(chan struct{})
		go func() {
			defer close(served)
			h.ServeConn(server, listener.ConnInfo{ALPN: "h2"})
		}()
		// done: the server acknowledged the closing PING (so it read
		// every frame before it) or went away.
		done := make(chan struct{})
		var once sync.Once
		go func() {
			fr := http2.NewFramer(io.Discard, client)
			for {
				fr2, err := fr.ReadFrame()
				if err != nil {
					once.Do(func() { close(done) })
					_, _ = io.Copy(io.Discard, client)
					return
				}
				switch fr2 := fr2.(type) {
				case *http2.PingFrame:
					if fr2.IsAck() && fr2.Data == [8]byte{'f', 'u', 'z', 'z'} {
						once.Do(func() { close(done) })
					}
				case *http2.GoAwayFrame:
					once.Do(func() { close(done) })
				}
			}
		}()
		var out bytes.Buffer
		out.WriteString(http2.ClientPreface)
		out.Write(in)
		_ = http2.NewFramer(&out, nil).WritePing(false, [8]byte{'f', 'u', 'z', 'z'})
		// After a connection error the server reads no more, so the write
		// may block until the connection closes.
		go func() { _, _ = client.Write(out.Bytes()) }()
		select {
		case <-done:
		case <-served:
		case <-time.After(2 * time.Second):
		}
		client.Close()
		// After a connection error the server keeps the connection for a
		// second so the client can read its GOAWAY; waiting for that here
		// would slow the fuzzer a thousandfold (see checkFuzzRun).
		checkFuzzRun(t, served, &hung, "%x", in, plog, up)
	})
}

// checkFuzzRun ends one fuzzed connection's checks: a watcher reports a
// server connection that outlives its closed client by far (10 s), with
// the run's input in the given fmt verb, on a later run (waiting for
// every connection to end would slow the fuzzer a thousandfold); then a
// hang found so far, a handler panic, or a malformed request the backend
// recorder received fails the run.
func checkFuzzRun(t *testing.T, served <-chan struct{}, hung *atomic.Pointer[string], verb string, in []byte, plog *panicLog, up *recorder) {
	t.Helper()
	go func(in []byte) {
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			s := fmt.Sprintf("the server did not end 10 s after the client closed; input "+verb, in)
			hung.CompareAndSwap(nil, &s)
		}
	}(append([]byte(nil), in...))
	if m := hung.Load(); m != nil {
		t.Fatal(*m)
	}
	if m := plog.msg.Load(); m != nil {
		t.Fatalf("handler panic: %s", *m)
	}
	if m := up.bad.Load(); m != nil {
		t.Fatalf("the upstream received a malformed request: %s", *m)
	}
}

// recorderRuntime is a Runtime whose route config "rc" sends every
// request to cluster "c" (default breaker limits), whose one endpoint is
// the recorder up, and whose panics go to the returned log. The caller
// closes the manager.
func recorderRuntime(up *recorder) (*upstream.Manager, *Runtime, *panicLog) {
	mgr := upstream.NewManager(nil)
	cl := mgr.Build(&resource.Cluster{Name: "c", ConnectTimeout: time.Second, Limits: resource.DefaultThresholds},
		&resource.Endpoints{ClusterName: "c", Endpoints: []resource.Endpoint{{Address: up.ln.Addr().String(), Weight: 1}}})
	rt, plog := routedRuntime(cl)
	return mgr, rt, plog
}

// routedRuntime is a Runtime whose route config "rc" sends every request
// to cl (named "c"), and whose panics go to the returned log.
func routedRuntime(cl *upstream.Cluster) (*Runtime, *panicLog) {
	plog := &panicLog{}
	rt := NewRuntime("", slog.New(plog))
	rt.Store(&Routing{
		Routes: map[string]*route.Table{"rc": route.New(&resource.RouteConfig{Name: "rc", VirtualHosts: []*resource.VirtualHost{{
			Name: "v", Domains: []string{"*"}, Routes: []*resource.Route{{PathKind: resource.PathPrefix, PathValue: "/",
				Forward: &resource.Forward{Cluster: "c", NotFoundCode: 503}}},
		}}})},
		Clusters: map[string]*upstream.Cluster{"c": cl},
	})
	return rt, plog
}
