package proxylib_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawUpstream is an HTTP/1.1 backend that records every byte it receives,
// per connection, and answers each connection's first head with a short
// response and "connection: close". It never closes first, so a proxy
// that is still writing a body is not cut off.
type rawUpstream struct {
	addr  string
	mu    sync.Mutex
	conns []*bytes.Buffer
}

func startRawUpstream(t testing.TB) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	rec := &bytes.Buffer{}
	u.mu.Lock()
	u.conns = append(u.conns, rec)
	u.mu.Unlock()
	answered := false
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		u.mu.Lock()
		rec.Write(buf[:n])
		head := bytes.Contains(rec.Bytes(), []byte("\r\n\r\n"))
		u.mu.Unlock()
		if head && !answered {
			answered = true
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"))
		}
		if err != nil {
			return
		}
	}
}

// received returns what each upstream connection received so far.
func (u *rawUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, len(u.conns))
	for i, b := range u.conns {
		out[i] = b.String()
	}
	return out
}

// h2client speaks HTTP/2 frame by frame to the proxy.
type h2client struct {
	t        testing.TB
	c        net.Conn
	fr       *http2.Framer
	enc      *hpack.Encoder
	hbuf     bytes.Buffer
	settings map[http2.SettingID]uint32
	connWin  uint32 // the server's connection window update after SETTINGS
}

// dialH2 connects (over TLS with ALPN h2 when tc is set, else with the
// prior-knowledge preface), exchanges SETTINGS and records the server's.
func dialH2(t testing.TB, addr string, tc *tls.Config, settings ...http2.Setting) *h2client {
	t.Helper()
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.Dial("tcp", addr, tc)
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := &h2client{t: t, c: c, settings: map[http2.SettingID]uint32{}}
	h.fr = http2.NewFramer(c, c)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.hbuf)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	for acked, got := false, false; !acked || !got; {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				acked = true
				continue
			}
			got = true
			_ = f.ForeachSetting(func(s http2.Setting) error { h.settings[s.ID] = s.Val; return nil })
			if err := h.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				h.connWin += f.Increment
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v during the handshake", f.ErrCode)
		}
	}
	return h
}

// sync sends a PING and reads until its acknowledgement, noting window
// updates the server sent meanwhile.
func (h *h2client) sync() {
	h.t.Helper()
	if err := h.fr.WritePing(false, [8]byte{'s', 'y', 'n', 'c'}); err != nil {
		h.t.Fatal(err)
	}
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("awaiting PING ACK: %v", err)
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			if f.IsAck() {
				return
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				h.connWin += f.Increment
			}
		}
	}
}

// block HPACK-encodes fields, given as name, value pairs.
func (h *h2client) block(fields ...string) []byte {
	h.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		if err := h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}); err != nil {
			h.t.Fatal(err)
		}
	}
	return append([]byte(nil), h.hbuf.Bytes()...)
}

func (h *h2client) headers(stream uint32, endStream bool, fields ...string) {
	h.t.Helper()
	err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: h.block(fields...), EndStream: endStream, EndHeaders: true})
	if err != nil {
		h.t.Fatal(err)
	}
}

// headersSplit writes a header block of any size as HEADERS and
// CONTINUATION frames of at most 16 KiB.
func (h *h2client) headersSplit(stream uint32, endStream bool, fields ...string) {
	h.t.Helper()
	blk := h.block(fields...)
	const max = 16 << 10
	first := blk[:min(len(blk), max)]
	blk = blk[len(first):]
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: first, EndStream: endStream, EndHeaders: len(blk) == 0}); err != nil {
		h.t.Fatal(err)
	}
	for len(blk) > 0 {
		n := min(len(blk), max)
		if err := h.fr.WriteContinuation(stream, n == len(blk), blk[:n]); err != nil {
			h.t.Fatal(err)
		}
		blk = blk[n:]
	}
}

func (h *h2client) data(stream uint32, endStream bool, b string) {
	h.t.Helper()
	if err := h.fr.WriteData(stream, endStream, []byte(b)); err != nil {
		h.t.Fatal(err)
	}
}

// h2result is how the server ended a stream.
type h2result struct {
	status string
	body   string
	rst    http2.ErrCode
	reset  bool
	goaway bool
	code   http2.ErrCode // of the GOAWAY
	closed bool
}

func (r h2result) String() string {
	switch {
	case r.reset:
		return "RST_STREAM " + r.rst.String()
	case r.goaway:
		return "GOAWAY " + r.code.String()
	case r.closed:
		return "connection closed"
	}
	return "status " + r.status + " body " + r.body
}

// await reads frames until stream ends, is reset, or the connection is
// told to go away or closes.
func (h *h2client) await(stream uint32) h2result {
	h.t.Helper()
	var r h2result
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer") {
				r.closed = true
				return r
			}
			h.t.Fatalf("stream %d: reading: %v", stream, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == stream {
				if s := f.PseudoValue("status"); s != "" {
					r.status = s
				}
				if f.StreamEnded() {
					return r
				}
			}
		case *http2.DataFrame:
			if f.StreamID == stream {
				r.body += string(f.Data())
				if f.StreamEnded() {
					return r
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				r.reset, r.rst = true, f.ErrCode
				return r
			}
		case *http2.GoAwayFrame:
			if f.LastStreamID < stream || f.ErrCode != http2.ErrCodeNo {
				r.goaway, r.code = true, f.ErrCode
				return r
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		}
	}
}

// reqFields is a well-formed GET of path on app.example, plus extra fields.
func reqFields(path string, extra ...string) []string {
	return append([]string{":method", "GET", ":scheme", "http", ":authority", "app.example", ":path", path}, extra...)
}
