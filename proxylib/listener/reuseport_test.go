package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closingHandler closes every connection it is given.
type closingHandler struct{}

func (closingHandler) ServeConn(c net.Conn, _ ConnInfo) { c.Close() }
func (closingHandler) Shutdown(context.Context)         {}

// countingListener counts the connections its socket accepted.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Every listener address gets a group of SO_REUSEPORT sockets, one per
// core (WithSockets), transparent ones included, and the kernel spreads
// connections from different source ports over the group, so every
// core's accept loop gets a share.
func TestListenerSocketsShareConnections(t *testing.T) {
	for _, transparent := range []bool{false, true} {
		t.Run(fmt.Sprintf("transparent=%v", transparent), func(t *testing.T) {
			const sockets, conns = 4, 64
			m := New(func(string) *tls.Certificate { return nil }, WithSockets(sockets), WithDrainTimeout(time.Second))
			var mu sync.Mutex
			var counts []*atomic.Int64
			m.wrap = func(l net.Listener) net.Listener {
				mu.Lock()
				defer mu.Unlock()
				n := new(atomic.Int64)
				counts = append(counts, n)
				return countingListener{l, n}
			}
			t.Cleanup(func() { m.Close(context.Background()) })
			addr := freeLoopbackAddr(t)
			spec := &Spec{Name: "l", Address: addr, Transparent: transparent, Chains: []*Chain{{Handler: closingHandler{}}}}
			if err := m.Apply(nil, []*Spec{spec}); err != nil {
				t.Fatal(err)
			}
			if len(counts) != sockets {
				t.Fatalf("%d sockets bound for %s, want %d", len(counts), addr, sockets)
			}
			for range conns {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.Close()
			}
			total, used := int64(0), 0
			deadline := time.Now().Add(10 * time.Second)
			for {
				total, used = 0, 0
				for _, n := range counts {
					if v := n.Load(); v > 0 {
						total += v
						used++
					}
				}
				if total == conns || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if total != conns {
				t.Fatalf("the sockets accepted %d connections, want %d", total, conns)
			}
			if used < 2 {
				t.Fatalf("%d connections all landed on one of %d sockets", conns, sockets)
			}
		})
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
