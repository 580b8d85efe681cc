package hcm

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/connbuf"
	"github.com/nodemesh/nodemesh/proxylib/evloop"
	"github.com/nodemesh/nodemesh/proxylib/http1"
	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

const (
	h1BufSize = connbuf.Size
	// h1MaxBuf bounds an upstream connection's read buffer (a response
	// head is bounded by the default head size).
	h1MaxBuf = http1.MaxHeadBytes + h1BufSize
)

// Connection states for draining.
const (
	connActive int32 = iota
	connIdle
	connClosing
)

// h1conn is one downstream HTTP/1.1 connection. Pooled. Its buffers are
// lent (package connbuf) while it serves a request and, on a plain TCP
// connection, given back whenever it waits for the next one with nothing
// buffered (releaseBufs); both are nil then.
type h1conn struct {
	h    *Handler
	c    net.Conn    // sock when the socket could be wrapped, else the conn itself
	sock sockio.Conn // raw non-blocking I/O on the socket, reused when pooled
	buf  []byte      // read buffer: buf[r:w] holds unparsed bytes
	r, w int
	out  []byte // write buffer of the response being built
	req  http1.Request
	s    *stream

	state atomic.Int32
	rdl   sockio.LazyDeadline
	wdl   sockio.LazyDeadline
	chunk http1.ChunkedDecoder
	eof   bool

	// Request timing (h1_limits.go): when the pending head's first bytes
	// arrived, when the current request started (zero: not tracked), and
	// whether the last read failed by its deadline.
	headAt   time.Time
	reqAt    time.Time
	timedOut bool
	// The response: when the route timeout ends it, and whether the read
	// deadline is armed to that.
	respBy    time.Time
	respArmed bool

	// Read-session state (serveSession).
	inSession   bool
	mustRead    bool    // the next step must read: bytes or EOF may be pending
	waitingIdle bool    // the session waits for the next request
	end         pending // why the session ended
	onReadable  func() bool
	// clock is the last clock reading of the current session callback
	// (the end of the request it served last), zero when it served none:
	// nothing blocks within one callback, so it still reads as now when
	// the callback arms the deadline of its wait (waitReadable).
	clock time.Time

	// Upstream exchange (exchange), with its callback bound once.
	x          exchangeState
	exchangeFn func() bool

	// Forced close (h1_abort.go): the upstream connection the request
	// uses (abortedUp once aborted), and the context of its other
	// upstream waits, made on first use.
	up     atomic.Pointer[upstream.Conn]
	ctxMu  sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc

	// Event-loop serving (h1_loop.go): the loop and the client's
	// descriptor (hl nil on a goroutine; both written under h.mu), and the
	// state only the loop's thread touches. gen tells a function posted for
	// one connection from a later use of the same h1conn.
	hl      *hloop
	fd      int
	gen     atomic.Uint64
	ph      loopPhase
	cside   clientSide
	ctm     evloop.Timer // the client's deadline
	utm     evloop.Timer // the response's deadline
	lu      *loopUp      // the exchange's upstream connection
	lreplay []byte       // the request to replay on a fresh connection
	wout    []byte       // response bytes the client had no room for
	uoff    int          // request bytes written upstream
	lkeep   bool         // the client connection stays open after the response
	lhead   bool         // a HEAD request
	lreused bool         // the exchange's connection was reused (a reset replays)
	lgot    bool         // response bytes arrived
	lidle   bool         // the response deadline is the stream idle timeout
	lupIn   bool         // the upstream became readable while the request went out
	lupFin  bool         // the upstream's FIN arrived
	pendIn  bool         // the client became readable while busy
	peerFin bool         // the client's FIN arrived
	wclose  bool         // close once wout is written
}

var h1pool sync.Pool

func getH1conn(h *Handler, c net.Conn) *h1conn {
	hc, _ := h1pool.Get().(*h1conn)
	if hc == nil {
		hc = &h1conn{}
		hc.s = newStream(h)
		hc.onReadable = hc.sessionStep
		hc.exchangeFn = hc.exchangeStep
	}
	hc.h, hc.c = h, c
	hc.hl, hc.fd, hc.ph = nil, -1, phIdle
	hc.pendIn, hc.peerFin, hc.wout, hc.lreplay, hc.lu = false, false, nil, nil, nil
	if hc.sock.Reset(c) {
		hc.c = &hc.sock
	}
	hc.s.h = h
	hc.s.remote = remoteAddrPort(c)
	hc.s.tls = h.tls
	hc.r, hc.w = 0, 0
	hc.eof, hc.timedOut = false, false
	hc.rdl, hc.wdl = sockio.LazyDeadline{}, sockio.LazyDeadline{}
	hc.headAt, hc.reqAt = time.Time{}, time.Time{}
	hc.req.Reset()
	hc.state.Store(connActive)
	hc.resetAbort()
	return hc
}

func putH1conn(hc *h1conn) {
	hc.resetAbort()
	hc.r, hc.w = 0, 0
	hc.releaseBufs()
	hc.h, hc.c = nil, nil
	hc.sock.Clear()
	hc.s.h = nil
	hc.req.Headers = nil
	hc.s.rreq.Method, hc.s.rreq.Authority, hc.s.rreq.Path, hc.s.rreq.Headers = nil, nil, nil, nil
	hc.s.headers = nil
	hc.s.setTLS(nil)
	h1pool.Put(hc)
}

// forget drops the connection without closing it (handed to HTTP/2).
func (hc *h1conn) forget() { hc.c = nil }

func (hc *h1conn) close() {
	if hc.c != nil {
		hc.c.Close()
	}
}

// drain is called by Shutdown under h.mu: an idle connection ends now; a
// busy one closes after its current response (serve checks
// Handler.Draining). The idle one's socket is shut down, not closed: its
// wait (a read session) returns, and its goroutine closes it. drain
// returns the connection to close when that is not possible, for
// Shutdown to close once it released h.mu.
func (hc *h1conn) drain() net.Conn {
	if hc.hl != nil {
		hc.postLoop(hc.loopDrain)
		return nil
	}
	if hc.state.CompareAndSwap(connIdle, connClosing) {
		return interrupt(hc.c)
	}
	return nil
}

// takeBufs borrows the read and write buffers if the connection holds
// none; every read of the connection starts here (makeRoom).
func (hc *h1conn) takeBufs() {
	if hc.buf == nil {
		hc.buf, hc.out = connbuf.Get(), connbuf.Get()[:0]
	}
}

// releaseBufs gives the buffers back; only when nothing is buffered
// (r == w) and no request is in progress, since the parsed request and the
// stream view the read buffer. The views are dropped with it.
func (hc *h1conn) releaseBufs() {
	if hc.buf == nil {
		return
	}
	connbuf.Put(hc.buf)
	connbuf.Put(hc.out)
	hc.buf, hc.out = nil, nil
	hc.r, hc.w = 0, 0
	hc.req.Headers = nil
	s := hc.s
	s.rreq.Method, s.rreq.Authority, s.rreq.Path, s.rreq.Headers = nil, nil, nil, nil
	s.headers = nil
	// An idle connection keeps the scratch of a detached head and of an
	// encoded access-log entry only while they are small: a long head
	// seen once is not held for the connection's lifetime.
	if cap(s.headBuf) > idleScratch {
		s.headBuf = nil
	}
	if cap(s.logBuf) > idleScratch {
		s.logBuf = nil
	}
}

// idleScratch is the most a connection's per-request scratch buffers keep
// while the connection waits for a request.
const idleScratch = 2 << 10

// makeRoom compacts or grows buf so that bytes can be read after w. It
// returns false when the buffer is full at its maximum size.
func (hc *h1conn) makeRoom() bool {
	hc.takeBufs()
	if hc.r == hc.w {
		hc.r, hc.w = 0, 0
	}
	if hc.w < len(hc.buf) {
		return true
	}
	switch {
	case hc.r > 0:
		hc.w = copy(hc.buf, hc.buf[hc.r:hc.w])
		hc.r = 0
	case len(hc.buf) < hc.h.h1.maxBuf:
		nb := make([]byte, min(2*len(hc.buf), hc.h.h1.maxBuf))
		copy(nb, hc.buf[:hc.w])
		connbuf.Put(hc.buf)
		hc.buf = nb
	default:
		return false
	}
	return true
}

// fill reads more bytes into buf, compacting or growing it as needed, with
// the deadline of what it waits for. It returns false on error or end of
// stream. It must not run inside a read session (serveSession): serving
// such a request is left to serve.
func (hc *h1conn) fill(w wait) bool {
	if hc.eof || hc.inSession || !hc.makeRoom() {
		return false
	}
	hc.armRead(w, time.Now())
	n, err := hc.c.Read(hc.readRoom())
	hc.w += n
	if err != nil {
		hc.eof = true
		hc.timedOut = isTimeout(err)
		return n > 0
	}
	return true
}

// fillBody reads request body bytes.
func (hc *h1conn) fillBody() bool {
	return hc.fill(waitBody)
}

// reject answers a request that cannot be parsed and closes.
func (hc *h1conn) reject(err error) {
	code := rejectCode(err)
	// As Envoy's codec errors: the status text is the body.
	hc.localError(code, []byte(http1.StatusText(code)))
}

// rejectCode is the status of a request the parser refused with err.
func rejectCode(err error) int {
	switch {
	case errors.Is(err, http1.ErrHeadTooLarge), errors.Is(err, http1.ErrTooManyHeaders):
		return 431
	case errors.Is(err, http1.ErrBadTransferEnc):
		return 501
	}
	return 400
}

// localError answers the connection's current request locally, before
// any routing, and closes.
func (hc *h1conn) localError(code int, body []byte) {
	s := hc.s
	s.route, s.wc, s.grpc = nil, nil, false
	hc.writeLocal(code, body, nil, false, false)
}
