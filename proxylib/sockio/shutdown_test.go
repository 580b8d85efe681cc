package sockio

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestShutdownInterruptsSession checks that Shutdown, unlike Close, does
// not wait for a read session's callback: it returns while the callback
// still runs, and the session's next step then reads the end of the
// stream; the peer sees the connection end.
func TestShutdownInterruptsSession(t *testing.T) {
	c, peer := tcpPair(t)
	entered, release := make(chan struct{}), make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		calls := 0
		var rerr error
		err := c.Session(func() bool {
			calls++
			if calls == 1 {
				close(entered)
				<-release // a callback busy with something else
				return false
			}
			_, _, rerr = c.ReadNow(make([]byte, 8))
			return rerr != ErrWouldBlock
		})
		if err == nil {
			err = rerr
		}
		ended <- err
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- Shutdown(c) }()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Shutdown waited for the session's callback")
	}
	close(release)
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Errorf("session ended with %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the session still waits after Shutdown")
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("peer read (%d, %v), want the end of the stream", n, err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("a write after Shutdown succeeded")
	}
}

// TestShutdownUnwraps checks the connections Shutdown reaches the socket
// of: a TLS connection's, through NetConn; none for a pipe.
func TestShutdownUnwraps(t *testing.T) {
	c, peer := tcpPair(t)
	if err := Shutdown(tls.Client(c, &tls.Config{})); err != nil {
		t.Fatalf("Shutdown of a TLS connection: %v", err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("peer read (%d, %v), want the end of the stream", n, err)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if err := Shutdown(p1); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Shutdown of a pipe = %v, want errors.ErrUnsupported", err)
	}
}
