package hcm

import (
	"runtime"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// h2Timeouts are the connection-level bounds the guard enforces on an
// HTTP/2 connection.
//
// A header block (HEADERS and its CONTINUATION frames) must be complete
// within block of its HEADERS frame's first byte: the earliest of
// request_headers_timeout, request_timeout and stream_idle_timeout, all of
// which run from the stream's start in Envoy, and none of which a
// CONTINUATION frame resets. A trailers block gets the earliest of the
// last two. The server bounds a block's size (the header list size), not
// its time, and while a block is open the
// connection carries nothing else from the client (RFC 9113 §6.10): a
// stalled block stalls every stream. Envoy answers such a stream 408
// "request header timeout" and keeps decoding the block; here the server
// has not opened the stream yet and its HPACK decoder needs the whole
// block, so no stream error can be sent without losing the connection's
// header compression state. The connection is closed instead.
//
// Writes to the client carry stream_idle_timeout as the connection's
// write deadline: a client that reads nothing while the proxy has frames
// for it leaves every stream of the connection idle that long, and the
// connection is closed (the streams' timers cannot reset them: their
// RST_STREAM frames would queue behind the same stalled write).
type h2Timeouts struct {
	block, trailers, write time.Duration
}

func newH2Timeouts(cfg *resource.HCM) h2Timeouts {
	return h2Timeouts{
		block:    minTimeout(cfg.RequestHeadersTimeout, cfg.RequestTimeout, cfg.StreamIdleTimeout),
		trailers: minTimeout(cfg.RequestTimeout, cfg.StreamIdleTimeout),
		write:    cfg.StreamIdleTimeout,
	}
}

// minTimeout returns the smallest positive duration (0: none).
func minTimeout(ds ...time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		if d > 0 && (m == 0 || d < m) {
			m = d
		}
	}
	return m
}

// The guard arms the read deadline lazily: a block's start only moves an
// armed deadline earlier, never later, so back-to-back requests do not
// touch the runtime's timers. A deadline that fires with no block due
// (set for an earlier block, or left by the protocol sniffer) is re-armed
// for the open block or cleared, and the read goes on; crypto/tls
// connections survive a read deadline too.

// startBlock notes that a header block starts now; limit bounds it.
func (g *h2guard) startBlock(limit time.Duration) {
	if limit <= 0 {
		return
	}
	g.blockBy = time.Now().Add(limit)
	if g.rdArmed.IsZero() || g.rdArmed.After(g.blockBy) {
		g.armRead(g.blockBy)
	}
}

// endBlock notes that no header block is open.
func (g *h2guard) endBlock() { g.blockBy = time.Time{} }

func (g *h2guard) armRead(t time.Time) {
	g.rdArmed = t
	_ = g.Conn.SetReadDeadline(t)
}

// read reads from the client. Only the open header block's deadline ends
// the connection.
func (g *h2guard) read(p []byte) (int, error) {
	for {
		n, err := g.r.Read(p)
		if err == nil || !isTimeout(err) {
			return n, err
		}
		if !g.blockBy.IsZero() && !time.Now().Before(g.blockBy) {
			g.rdArmed = time.Time{}
			return n, err
		}
		g.armRead(g.blockBy)
		if n > 0 {
			return n, nil
		}
	}
}

// guardReader reads through h2guard.read (for io.ReadFull).
type guardReader struct{ g *h2guard }

func (r guardReader) Read(p []byte) (int, error) { return r.g.read(p) }

// Write writes the server's frames within the write timeout, re-arming the
// deadline lazily. The server writes from one goroutine at a time: it
// flushes its buffer from a goroutine of its own whenever its queue of
// frames runs empty, which, with streams answered one after another, is
// after every frame. Write first yields once, so the handlers ready to
// answer (other streams' HEADERS and DATA) queue their frames meanwhile:
// the server writes them together after this flush, one system call where
// there were one per frame (about 4 writes per request at 10 concurrent
// streams became under 2). With nothing else runnable the yield returns
// at once.
func (g *h2guard) Write(p []byte) (int, error) {
	runtime.Gosched()
	if d := g.to.write; d > 0 {
		if t, ok := g.wdl.Need(time.Now(), d); ok {
			_ = g.Conn.SetWriteDeadline(t)
		}
	}
	return g.Conn.Write(p)
}
