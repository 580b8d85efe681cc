package hcm

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
)

const (
	h1BufSize = 16 << 10
	h1MaxBuf  = http1.MaxHeadBytes + h1BufSize
)

// Connection states for draining.
const (
	connActive int32 = iota
	connIdle
	connClosing
)

// h1conn is one downstream HTTP/1.1 connection with its buffers. Pooled.
type h1conn struct {
	h    *Handler
	c    net.Conn    // sock when the socket could be wrapped, else the conn itself
	sock sockio.Conn // raw non-blocking I/O on the socket, reused when pooled
	buf  []byte
	r, w int
	out  []byte
	req  http1.Request
	s    *stream

	state atomic.Int32
	rdl   lazyDeadline
	chunk http1.ChunkedDecoder
	eof   bool
}

var h1pool sync.Pool

func getH1conn(h *Handler, c net.Conn) *h1conn {
	hc, _ := h1pool.Get().(*h1conn)
	if hc == nil {
		hc = &h1conn{buf: make([]byte, h1BufSize), out: make([]byte, 0, h1BufSize)}
		hc.s = newStream(h)
	}
	hc.h, hc.c = h, c
	if hc.sock.Reset(c) {
		hc.c = &hc.sock
	}
	hc.s.h = h
	hc.s.remote = remoteAddrPort(c)
	hc.s.tls = h.tls
	hc.r, hc.w = 0, 0
	hc.eof = false
	hc.rdl = lazyDeadline{}
	hc.state.Store(connActive)
	return hc
}

func putH1conn(hc *h1conn) {
	if cap(hc.buf) > h1BufSize {
		hc.buf = make([]byte, h1BufSize)
	}
	if cap(hc.out) > 4*h1BufSize {
		hc.out = make([]byte, 0, h1BufSize)
	}
	hc.h, hc.c = nil, nil
	hc.sock.Clear()
	hc.s.h = nil
	hc.req.Headers = nil
	hc.s.rreq.Method, hc.s.rreq.Authority, hc.s.rreq.Path, hc.s.rreq.Headers = nil, nil, nil, nil
	hc.s.headers = nil
	h1pool.Put(hc)
}

// forget drops the connection without closing it (handed to HTTP/2).
func (hc *h1conn) forget() { hc.c = nil }

func (hc *h1conn) close() {
	if hc.c != nil {
		hc.c.Close()
	}
}

// drain is called by Shutdown: an idle connection is closed now; a busy one
// closes after its current response (serve checks Handler.Draining).
func (hc *h1conn) drain() {
	if hc.state.CompareAndSwap(connIdle, connClosing) {
		hc.c.Close()
	}
}

// fill reads more bytes into buf, compacting or growing it as needed. It
// returns false on error or end of stream.
func (hc *h1conn) fill(timeout time.Duration) bool {
	if hc.eof {
		return false
	}
	if hc.r == hc.w {
		hc.r, hc.w = 0, 0
	}
	if hc.w == len(hc.buf) {
		switch {
		case hc.r > 0:
			hc.w = copy(hc.buf, hc.buf[hc.r:hc.w])
			hc.r = 0
		case len(hc.buf) < h1MaxBuf:
			nb := make([]byte, min(2*len(hc.buf), h1MaxBuf))
			copy(nb, hc.buf[:hc.w])
			hc.buf = nb
		default:
			return false
		}
	}
	if t, ok := hc.rdl.need(time.Now(), timeout); ok {
		_ = hc.c.SetReadDeadline(t)
	}
	n, err := hc.c.Read(hc.buf[hc.w:])
	hc.w += n
	if err != nil {
		hc.eof = true
		return n > 0
	}
	return true
}

// fillBody reads body bytes with the stream idle timeout.
func (hc *h1conn) fillBody() bool {
	return hc.fill(hc.h.cfg.StreamIdleTimeout)
}

func (hc *h1conn) serve() {
	defer hc.close()
	cfg := hc.h.cfg
	for {
		for {
			err := http1.ParseRequest(hc.buf[hc.r:hc.w], &hc.req)
			if err == nil {
				break
			}
			if !errors.Is(err, http1.ErrIncomplete) {
				hc.reject(err)
				return
			}
			idle := hc.r == hc.w
			timeout := cfg.StreamIdleTimeout
			if idle {
				timeout = cfg.IdleTimeout
				if !hc.state.CompareAndSwap(connActive, connIdle) || hc.h.draining.Load() {
					return
				}
			}
			ok := hc.fill(timeout)
			if idle && !hc.state.CompareAndSwap(connIdle, connActive) {
				return // closed by a drain
			}
			if !ok {
				if hc.w-hc.r >= http1.MaxHeadBytes {
					hc.reject(http1.ErrHeadTooLarge)
				}
				return
			}
		}
		if !hc.handle() {
			return
		}
	}
}

// reject answers a request that cannot be parsed and closes.
func (hc *h1conn) reject(err error) {
	code := 400
	switch {
	case errors.Is(err, http1.ErrHeadTooLarge), errors.Is(err, http1.ErrTooManyHeaders):
		code = 431
	case errors.Is(err, http1.ErrBadTransferEnc):
		code = 501
	}
	s := hc.s
	s.route, s.wc, s.grpc = nil, nil, false
	hc.writeLocal(code, nil, nil, false, false)
}
