package hcm

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

// Handler serves the connections of one filter chain with one connection
// manager configuration. It is immutable except for its drain state.
type Handler struct {
	rt         *Runtime
	cfg        *resource.HCM
	tls        bool
	serverName []byte
	h1         h1Limits

	h2 *http2.Server
	hs *http.Server // base config of h2; its Shutdown sends GOAWAY

	filters []filter
	mappers []replyMapper
	logs    []*accesslog.Sender

	mu       sync.Mutex
	conns    map[*h1conn]struct{}
	h2conns  map[*h2conn]struct{}
	forced   bool // Shutdown's context ended: no connection is kept
	draining atomic.Bool
	wg       sync.WaitGroup
}

// NewHandler returns a handler for cfg. tls says whether the chain
// terminates TLS (x-forwarded-proto and :scheme become https).
func NewHandler(rt *Runtime, cfg *resource.HCM, tls bool) *Handler {
	h := &Handler{rt: rt, cfg: cfg, tls: tls, serverName: []byte(cfg.ServerName), conns: map[*h1conn]struct{}{},
		h2conns: map[*h2conn]struct{}{}, h1: newH1Limits(cfg)}
	h.filters, h.mappers = compileFilters(cfg)
	h.logs = rt.ALS.Senders(cfg.AccessLogs)
	o := h2Options(cfg)
	// The server advertises SETTINGS_MAX_HEADER_LIST_SIZE as MaxHeaderBytes
	// plus an allowance of ten fields' 32-byte overhead; subtracting it
	// makes the advertised (and enforced) list size exactly the
	// connection manager's request head limit.
	h.hs = &http.Server{Handler: http.HandlerFunc(h.serveHTTP2), IdleTimeout: cfg.IdleTimeout,
		MaxHeaderBytes: max(h.maxHeaderBytes()-h2ListSizeAllowance, 1),
		// Protocol errors of clients are not the proxy's errors.
		ErrorLog: slog.NewLogLogger(rt.Logger.Handler(), slog.LevelDebug)}
	h.h2 = &http2.Server{
		IdleTimeout:                  cfg.IdleTimeout,
		MaxConcurrentStreams:         o.MaxConcurrentStreams,
		MaxReadFrameSize:             h2MaxFrameSize,
		MaxDecoderHeaderTableSize:    h2HeaderTableSize,
		MaxUploadBufferPerStream:     int32(o.InitialStreamWindowSize),
		MaxUploadBufferPerConnection: int32(o.InitialConnectionWindowSize),
	}
	_ = http2.ConfigureServer(h.hs, h.h2)
	return h
}

// h2ListSizeAllowance is what golang.org/x/net/http2 adds to
// http.Server.MaxHeaderBytes for SETTINGS_MAX_HEADER_LIST_SIZE.
const h2ListSizeAllowance = 10 * 32

// h2Options returns the HTTP/2 settings, defaulted for a configuration
// built without the decoder (tests).
func h2Options(cfg *resource.HCM) resource.H2Options {
	o := cfg.HTTP2
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = resource.DefaultH2MaxConcurrentStreams
	}
	if o.InitialStreamWindowSize == 0 {
		o.InitialStreamWindowSize = resource.DefaultH2InitialStreamWindowSize
	}
	if o.InitialConnectionWindowSize == 0 {
		o.InitialConnectionWindowSize = resource.DefaultH2InitialConnectionWindowSize
	}
	return o
}

// maxHeaderBytes and maxHeaders are the request head limits shared by both
// codecs.
func (h *Handler) maxHeaderBytes() int {
	return cmp.Or(h.cfg.MaxRequestHeadersBytes, resource.DefaultMaxRequestHeadersBytes)
}

func (h *Handler) maxHeaders() int {
	return cmp.Or(h.cfg.MaxHeadersCount, resource.DefaultMaxHeadersCount)
}

// replayLimit bounds the request body bytes kept for retries and mirrors:
// the listener's per_connection_buffer_limit_bytes, as Envoy's router
// buffers at most that much. 0 (no limit in Envoy) is bounded by Envoy's
// default, 1 MiB: the copy is held in memory.
func (h *Handler) replayLimit() int {
	return int(cmp.Or(h.cfg.BufferLimit, resource.DefaultBufferLimit))
}

// Config returns the handler's connection manager configuration.
func (h *Handler) Config() *resource.HCM { return h.cfg }

// h2Preface is the HTTP/2 client connection preface.
var h2Preface = []byte(http2.ClientPreface)

// ServeConn serves c until it closes. info.ALPN is the TLS-negotiated
// protocol ("h2", "http/1.1" or ""); info.Local the (original) destination.
// It blocks; the caller runs it on the connection's goroutine.
func (h *Handler) ServeConn(c net.Conn, info listener.ConnInfo) {
	alpn := info.ALPN
	// Add only while not draining, and under the mutex Shutdown sets
	// draining under: Shutdown's Wait then never races an Add from zero.
	h.mu.Lock()
	if h.draining.Load() {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	if alpn == "h2" || h.cfg.Codec == resource.CodecHTTP2 {
		defer h.wg.Done()
		h.serveH2(c, nil, info)
		return
	}
	// An event loop that adopts the connection ends it (wg included).
	adopted := false
	defer func() {
		if !adopted {
			h.wg.Done()
		}
	}()
	hc := getH1conn(h, c)
	hc.s.setConn(info)
	// Tracked from the start: Shutdown drains or aborts a connection
	// that has not sent its first bytes yet, as an idle keep-alive one.
	if !h.track(hc) {
		hc.close()
		putH1conn(hc)
		return
	}
	if h.cfg.Codec == resource.CodecAuto {
		switch hc.sniff() {
		case sniffedHTTP2:
			// Untracked before the connection is dropped from hc: a
			// forced close reads hc.c under h.mu until then.
			h.untrack(hc)
			hc.forget()
			pre := append([]byte(nil), hc.buf[:hc.w]...)
			putH1conn(hc)
			// trackH2 refuses the connection if a forced close came
			// since untrack: it never goes unseen by one.
			h.serveH2(c, pre, info)
			return
		case sniffedEnd:
			h.untrack(hc)
			putH1conn(hc)
			return
		}
	}
	if h.loopAdopt(hc) {
		adopted = true
		return
	}
	hc.serve()
	h.untrack(hc)
	putH1conn(hc)
}

// What sniff found.
const (
	sniffedHTTP1 = iota // serve HTTP/1.1
	sniffedHTTP2        // the HTTP/2 preface: hc.buf holds the bytes read
	sniffedEnd          // the connection ended (closed)
)

// sniff reads until the bytes received rule out the HTTP/2 prior-knowledge
// preface. Until the first byte the connection is idle (a drain closes
// it); after it a request head is under way, with its deadlines.
func (hc *h1conn) sniff() int {
	for hc.w < len(h2Preface) && bytes.HasPrefix(h2Preface, hc.buf[:hc.w]) {
		var ok bool
		if hc.w == 0 {
			if !hc.enterIdle() {
				hc.close()
				return sniffedEnd
			}
			ok = hc.fill(waitIdle)
			if !hc.leaveIdle() {
				hc.close() // closed by a drain
				return sniffedEnd
			}
		} else {
			ok = hc.fill(waitHead)
		}
		if !ok {
			if hc.w > 0 && hc.timedOut {
				hc.requestTimedOut(true)
			}
			hc.close()
			return sniffedEnd
		}
		if hc.headAt.IsZero() && hc.w > 0 {
			hc.headAt = time.Now()
		}
	}
	if bytes.HasPrefix(hc.buf[:hc.w], h2Preface) {
		return sniffedHTTP2
	}
	return sniffedHTTP1
}

func (h *Handler) track(hc *h1conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining.Load() {
		return false
	}
	h.conns[hc] = struct{}{}
	return true
}

func (h *Handler) untrack(hc *h1conn) {
	h.mu.Lock()
	delete(h.conns, hc)
	h.mu.Unlock()
}

// Draining reports whether Shutdown was called.
func (h *Handler) Draining() bool { return h.draining.Load() }

// Shutdown drains the handler's connections: idle HTTP/1.1 connections are
// closed, busy ones close after their current response, HTTP/2 connections
// get GOAWAY and close when their streams end. It returns when every
// connection is gone, or force-closes the rest when ctx ends.
//
// A forced close completes promptly whatever the connections' requests
// wait on (h1_abort.go): it never closes a socket while holding h.mu (a
// Close waits for a read session's callback, which may serve a request),
// but shuts the sockets down, the upstream connections in use with them,
// and lets each serving goroutine close its own.
func (h *Handler) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.draining.Store(true)
	var closing []net.Conn
	for hc := range h.conns {
		if c := hc.drain(); c != nil {
			closing = append(closing, c)
		}
	}
	h.mu.Unlock()
	closeAll(closing)
	go func() {
		sctx, cancel := context.WithCancel(context.Background())
		cancel() // only trigger GOAWAY; connections are awaited below
		_ = h.hs.Shutdown(sctx)
	}()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.mu.Lock()
		h.forced = true
		closing = closing[:0]
		for hc := range h.conns {
			if c := hc.abort(); c != nil {
				closing = append(closing, c)
			}
		}
		for hc := range h.h2conns {
			if c := hc.abort(); c != nil {
				closing = append(closing, c)
			}
		}
		h.mu.Unlock()
		closeAll(closing)
		_ = h.hs.Close()
		<-done
	}
}

// closeAll closes connections Shutdown could not shut down.
func closeAll(cs []net.Conn) {
	for _, c := range cs {
		_ = c.Close()
	}
}

// serveH2 serves an HTTP/2 connection; pre holds bytes already read.
func (h *Handler) serveH2(c net.Conn, pre []byte, info listener.ConnInfo) {
	// Raw reads and writes, as on HTTP/1.1 connections: the server
	// flushes once per frame it is handed, and each flush through the
	// runtime's blocking-syscall path may wake its monitor thread and hand
	// the P away (package sockio). A TLS connection's socket is wrapped
	// where it is accepted (package listener).
	c = sockio.Wrap(c)
	var r io.Reader = c
	if len(pre) > 0 {
		r = &prefixConn{Conn: c, pre: pre}
	}
	nc := newH2Guard(c, r, h.maxHeaders(), uint32(h.maxHeaderBytes()), h2Options(h.cfg).StreamErrorOnInvalidMessage, newH2Timeouts(h.cfg))
	hc := &h2conn{info: info, sock: sockio.Unwrap(c)}
	if !h.trackH2(hc) {
		_ = c.Close()
		return
	}
	defer h.untrackH2(hc)
	ctx := context.WithValue(context.Background(), connInfoKey{}, hc)
	h.h2.ServeConn(nc, &http2.ServeConnOpts{Context: ctx, BaseConfig: h.hs, Handler: http.HandlerFunc(h.serveHTTP2)})
}

// trackH2 registers an HTTP/2 connection for a forced close; false when
// one happened already: the connection must close.
func (h *Handler) trackH2(c *h2conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.forced {
		return false
	}
	h.h2conns[c] = struct{}{}
	return true
}

func (h *Handler) untrackH2(c *h2conn) {
	h.mu.Lock()
	delete(h.h2conns, c)
	h.mu.Unlock()
}

// connInfoKey carries the connection's *h2conn (its listener ConnInfo
// with it) into HTTP/2 streams.
type connInfoKey struct{}

// prefixConn replays bytes consumed while sniffing the protocol.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func remoteAddrPort(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

// setConn records what the stream needs of its connection.
func (s *stream) setConn(info listener.ConnInfo) {
	s.dst = info.Local
	if info.Remote.IsValid() {
		s.remote = info.Remote
	}
	s.srcBind, s.srcMark = info.SourceBind, info.SourceMark
	s.identity, s.identityOnly = info.Identity, info.IdentityOnly
	s.setTLS(info.TLS)
}
