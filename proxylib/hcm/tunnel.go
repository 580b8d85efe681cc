package hcm

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/sockio"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// An upgraded (WebSocket) connection is a byte stream both ways, and
// stream_idle_timeout applies to it as to the stream it was: when no byte
// has moved in either direction for that long, both connections are
// closed (response flag SI), as Envoy resets an upgraded stream whose idle
// timer fired. A half-closed tunnel (one side sent its FIN, passed on as
// a FIN) stays open while the other direction moves bytes.
//
// Each direction reads into a buffer the connection already holds (the
// client's read buffer, the upstream connection's), at most the listener's
// per_connection_buffer_limit_bytes (the cluster's upstream) at a time,
// and writes what it read before reading again. Activity is an atomic
// clock reading shared by both directions; read and write deadlines are
// re-armed lazily, so a busy tunnel touches the runtime's timers about
// once per idle period. A deadline that fires while the other direction
// was active is re-armed for the tunnel's true expiry.
type tunnel struct {
	idle   time.Duration
	last   atomic.Int64 // mono time of the last byte moved
	closed atomic.Bool  // the tunnel timed out
	once   sync.Once
	down   net.Conn
	up     net.Conn
}

// tunnel relays the upgraded connection until both directions ended, or
// it idled out. Bytes already read on either side go first.
func (hc *h1conn) tunnel(uc *upstream.Conn) {
	defer uc.Discard()
	if uc.R < uc.W {
		if _, err := hc.write(uc.Buf[uc.R:uc.W]); err != nil {
			return
		}
	}
	if hc.r < hc.w {
		if _, err := uc.Write(hc.buf[hc.r:hc.w]); err != nil {
			return
		}
		hc.r = hc.w
	}
	t := &tunnel{idle: hc.h.cfg.StreamIdleTimeout, down: hc.c, up: uc.Conn}
	t.last.Store(mono())
	// The connections' deadlines are the tunnel's from here: hc.write's
	// lazily armed one and the exchange's are replaced.
	hc.wdl, hc.rdl = sockio.LazyDeadline{}, sockio.LazyDeadline{}
	_ = hc.c.SetDeadline(time.Time{})
	_ = uc.SetDeadline(time.Time{})

	downBuf := hc.buf
	if c := hc.h.h1.readCap; c > 0 && len(downBuf) > c {
		downBuf = downBuf[:c]
	}
	done := make(chan struct{})
	go func() {
		t.pipe(uc.Conn, hc.c, downBuf)
		close(done)
	}()
	t.pipe(hc.c, uc.Conn, uc.Buf[:uc.ReadLimit()])
	<-done
	if t.closed.Load() {
		hc.s.flags |= flagSI
	}
}

// pipe copies src to dst until src ends (the end is passed on as a
// half-close), either side fails (both are closed), or the tunnel idles
// out. It owns src's read and dst's write deadline.
func (t *tunnel) pipe(dst, src net.Conn, buf []byte) {
	var rdl, wdl sockio.LazyDeadline
	for {
		if t.idle > 0 {
			if d, ok := rdl.Need(time.Now(), t.idle); ok {
				_ = src.SetReadDeadline(d)
			}
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.last.Store(mono())
			if !t.write(dst, buf[:n], &wdl) {
				t.close(false)
				return
			}
		}
		switch {
		case err == nil:
		case err == io.EOF:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				return
			}
			t.close(false)
			return
		case isTimeout(err) && t.idle > 0 && !t.idled():
			_ = src.SetReadDeadline(t.expiry(&rdl))
		default:
			t.close(isTimeout(err))
			return
		}
	}
}

// write writes all of p to dst. A write that makes no progress for the
// idle timeout while the other direction moved bytes goes on (a TLS
// connection cannot: its state is lost with the write).
func (t *tunnel) write(dst net.Conn, p []byte, wdl *sockio.LazyDeadline) bool {
	for len(p) > 0 {
		if t.idle > 0 {
			if d, ok := wdl.Need(time.Now(), t.idle); ok {
				_ = dst.SetWriteDeadline(d)
			}
		}
		n, err := dst.Write(p)
		p = p[n:]
		if n > 0 {
			t.last.Store(mono())
		}
		if err == nil {
			continue
		}
		if _, isTLS := dst.(*tls.Conn); isTLS || !isTimeout(err) || t.idle <= 0 || t.idled() {
			return false
		}
		_ = dst.SetWriteDeadline(t.expiry(wdl))
	}
	return true
}

// idled reports whether no byte moved for the idle timeout.
func (t *tunnel) idled() bool { return mono()-t.last.Load() >= int64(t.idle) }

// expiry returns when the tunnel idles out, recording it as l's armed
// deadline.
func (t *tunnel) expiry(l *sockio.LazyDeadline) time.Time {
	at, _ := l.Set(monoBase.Add(time.Duration(t.last.Load()) + t.idle))
	return at
}

// close closes both connections once, which ends the other direction's
// wait; idle marks an idle timeout.
func (t *tunnel) close(idle bool) {
	if idle {
		t.closed.Store(true)
	}
	t.once.Do(func() {
		_ = t.down.Close()
		_ = t.up.Close()
	})
}
