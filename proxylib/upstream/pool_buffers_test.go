package upstream

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestIdleConnectionHoldsNoBuffers: a connection in the idle list has
// given its buffers back; the one handed out again (the same socket) has
// them, full size, and a request queued at max_connections is handed the
// released connection with its buffers.
func TestIdleConnectionHoldsNoBuffers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	p := newPool(ln.Addr().String(), false, dialOptions{}, newBreaker(resource.Thresholds{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1}), 0)
	p.configure(&resource.Cluster{ConnectTimeout: 5 * time.Second})
	defer p.close()

	c, reused, err := p.Get(context.Background(), 0)
	if err != nil || reused {
		t.Fatalf("Get = %v, reused %v", err, reused)
	}
	if len(c.Buf) != ReadBufferSize || cap(c.Out) != WriteBufferSize || len(c.Out) != 0 {
		t.Fatalf("a dialled connection has Buf %d and Out %d/%d, want %d and 0/%d", len(c.Buf), len(c.Out), cap(c.Out), ReadBufferSize, WriteBufferSize)
	}
	c.Out = append(c.Out, "GET / HTTP/1.1\r\n"...)
	p.Put(c)
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle != 1 {
		t.Fatalf("%d idle connections, want 1", idle)
	}
	if c.Buf != nil || c.Out != nil || c.Resp.Headers != nil {
		t.Fatalf("an idle connection holds buffers: Buf %d, Out %d, response header views %d", cap(c.Buf), cap(c.Out), len(c.Resp.Headers))
	}

	c2, reused, err := p.Get(context.Background(), 0)
	if err != nil || !reused || c2 != c {
		t.Fatalf("Get = %v, reused %v, same connection %v", err, reused, c2 == c)
	}
	if len(c2.Buf) != ReadBufferSize || cap(c2.Out) != WriteBufferSize || len(c2.Out) != 0 {
		t.Fatalf("a reused connection has Buf %d and Out %d/%d, want %d and 0/%d", len(c2.Buf), len(c2.Out), cap(c2.Out), ReadBufferSize, WriteBufferSize)
	}

	// At max_connections a second request waits and is handed c2 when it
	// is put back, buffers and all.
	got := make(chan *Conn, 1)
	go func() {
		c3, _, err := p.Get(context.Background(), 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- c3
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.b.nwait.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never queued")
		}
		time.Sleep(time.Millisecond)
	}
	p.Put(c2)
	c3 := <-got
	if c3 != c2 {
		t.Fatal("the queued request was not handed the released connection")
	}
	if len(c3.Buf) != ReadBufferSize || cap(c3.Out) != WriteBufferSize {
		t.Fatalf("a handed-off connection has Buf %d and Out cap %d, want %d and %d", len(c3.Buf), cap(c3.Out), ReadBufferSize, WriteBufferSize)
	}
	c3.Discard()
}
