package hcm

import (
	"errors"
	"net"
	"sync"

	"github.com/nodemesh/nodemesh/proxylib/listener"
)

// A forced close of an HTTP/2 connection (Handler.Shutdown once its
// context ended) shuts its socket down, which ends the server's
// connection and cancels its streams' contexts, and aborts each running
// stream's wait on an HTTP/1.1 upstream connection, which no context
// interrupts (h2conn.abort). http.Server.Close does neither for a
// connection served through http2.Server.ServeConn: it only knows the
// connections it accepted itself.

// errConnAborted is the cause a forced close cancels a stream's context
// with.
var errConnAborted = errors.New("connection closed by the proxy's shutdown")

// h2conn is one HTTP/2 connection as its streams and a forced close see
// it: it reaches the streams through their context (connInfoKey).
type h2conn struct {
	info listener.ConnInfo
	sock net.Conn // the accepted connection

	mu      sync.Mutex
	streams map[*h2Timer]struct{}
	aborted bool
}

// add registers a begun stream's timer until remove; a stream of an
// aborted connection is aborted at once.
func (c *h2conn) add(t *h2Timer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted {
		t.abort()
		return
	}
	if c.streams == nil {
		c.streams = map[*h2Timer]struct{}{}
	}
	c.streams[t] = struct{}{}
}

// remove forgets the timer before its stream finishes (and is pooled).
func (c *h2conn) remove(t *h2Timer) {
	c.mu.Lock()
	delete(c.streams, t)
	c.mu.Unlock()
}

// abort interrupts every running stream and the connection's socket; it
// does not wait for a stream's handler, though closing a stream's request
// body (h2Timer.abort) may wait briefly for the server's connection
// goroutine, under h.mu as the handler calls it. It returns the connection to close when its socket
// cannot be shut down.
func (c *h2conn) abort() net.Conn {
	c.mu.Lock()
	c.aborted = true
	for t := range c.streams {
		t.abort()
	}
	c.mu.Unlock()
	return interrupt(c.sock)
}

// abort ends the stream's upstream waits for a forced close: the
// upstream connection in use is shut down, a later attach fails (and
// detach discards), and the stream's context is cancelled, all under
// t.mu, which the stream's own calls hold only briefly. Closing the
// request body may wait briefly for the server's connection goroutine
// (it hands the body's unread flow-control credit back); it waits for
// nothing the stream's handler does. The handler has not finished
// (h2conn.remove).
func (t *h2Timer) abort() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reset = true
	if t.cancel != nil {
		t.cancel(errConnAborted)
	}
	if t.body != nil {
		_ = t.body.Close()
	}
	if t.uc != nil {
		t.uc.Abort()
	}
}
