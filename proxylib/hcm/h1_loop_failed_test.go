package hcm

import (
	"bufio"
	"context"
	"net"
	"runtime"
	"testing"
	"time"
)

// A loop that stops before Close says so on Failed (proxylib's Run stops
// the proxy on it); one stopped by Close does not.
func TestLoopsFailedOnlyBeforeClose(t *testing.T) {
	if old := runtime.GOMAXPROCS(0); old < 3 {
		runtime.GOMAXPROCS(3)
		defer runtime.GOMAXPROCS(old)
	}
	ls, err := StartLoops(2)
	if err != nil {
		t.Fatal(err)
	}
	ls.loops[1].l.Close() // as if its epoll set had failed
	select {
	case err := <-ls.Failed():
		if err == nil {
			t.Fatal("Failed delivered a nil error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a loop stopped on its own and Failed said nothing")
	}
	ls.Close()
	select {
	case err := <-ls.Failed():
		t.Fatalf("Close made Failed report %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// A connection served by a loop that stopped on its own does not hold up
// the handler's Shutdown: the drain ends it from outside the dead loop.
func TestShutdownEndsConnectionsOfAStoppedLoop(t *testing.T) {
	h, ls := localLoopHandler(t)
	c, err := net.Dial("tcp", serveHandler(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	readResponses(t, c, bufio.NewReader(c), 1) // served: the loop holds it
	ls.loops[0].l.Close()
	<-ls.loops[0].l.Done()
	done := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		h.Shutdown(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown waited for a connection of a stopped loop")
	}
}
