package sockio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tcpPair returns a wrapped client side and the raw server side of a
// loopback TCP connection.
func tcpPair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	w, ok := Wrap(c).(*Conn)
	if !ok {
		t.Fatalf("Wrap(%T) did not wrap a TCP connection", c)
	}
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestReadWriteRoundTrip(t *testing.T) {
	c, s := tcpPair(t)
	msg := []byte("GET / HTTP/1.1\r\nhost: a\r\n\r\n")
	if n, err := c.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// Read blocks in the poller until the peer writes.
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = s.Write([]byte("pong"))
	}()
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
}

func TestReadEOF(t *testing.T) {
	c, s := tcpPair(t)
	_, _ = s.Write([]byte("last"))
	s.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	c, _ := tcpPair(t)
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 8))
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read = %d, %v; want a timeout", n, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("error %v is not a read *net.OpError", err)
	}
	// An expired deadline fails at once; clearing it makes Read work again.
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second Read = %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c, _ := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

// A write larger than the socket buffers completes once the peer reads:
// Write waits for writability in the poller instead of returning short.
func TestLargeWriteWaitsForPeer(t *testing.T) {
	c, s := tcpPair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the buffers fill
		b, _ := io.ReadAll(s)
		got <- b
	}()
	n, err := c.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	_ = c.CloseWrite()
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer got %d bytes, want %d identical", len(b), len(big))
	}
}

func TestWriteDeadlineOnFullBuffer(t *testing.T) {
	c, _ := tcpPair(t) // the peer never reads
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %d, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("Write reported %d bytes; want the partial count", n)
	}
}

func TestWriteToClosedPeer(t *testing.T) {
	c, s := tcpPair(t)
	s.Close()
	time.Sleep(10 * time.Millisecond)
	var err error
	for range 100 { // the first write may succeed before the RST
		if _, err = c.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if err == nil || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a closed peer = %v; want a write *net.OpError", err)
	}
}

func TestWrapOnlyStreamSockets(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("Wrap wrapped a net.Pipe")
	}
	dir := t.TempDir()
	for _, network := range []string{"unixgram", "unixpacket"} {
		path := filepath.Join(dir, network)
		var c net.Conn
		if network == "unixgram" {
			uc, err := net.ListenUnixgram(network, &net.UnixAddr{Name: path, Net: network})
			if err != nil {
				t.Fatal(err)
			}
			c = uc
		} else {
			ln, err := net.Listen(network, path)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if c, err = net.Dial(network, path); err != nil {
				t.Fatal(err)
			}
		}
		if Wrap(c) != c {
			t.Errorf("Wrap wrapped a %s socket", network)
		}
		c.Close()
	}

	path := filepath.Join(dir, "stream")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		s, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(s, s)
			s.Close()
		}
	}()
	uc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := Wrap(uc).(*Conn)
	if !ok {
		t.Fatal("Wrap did not wrap a unix stream socket")
	}
	defer w.Close()
	if Unwrap(w) != uc || w.NetConn() != uc {
		t.Error("Unwrap does not return the wrapped socket")
	}
	if _, err := w.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(w, buf); err != nil || string(buf) != "echo" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

func TestResetReusesConn(t *testing.T) {
	c1, s1 := tcpPair(t)
	c2, s2 := tcpPair(t)
	var sc Conn
	for i, pair := range []struct {
		c *Conn
		s net.Conn
	}{{c1, s1}, {c2, s2}} {
		if !sc.Reset(pair.c.NetConn()) {
			t.Fatal("Reset refused a TCP connection")
		}
		if _, err := sc.Write([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(pair.s, b); err != nil || b[0] != byte('a'+i) {
			t.Fatalf("conn %d: peer read %q, %v", i, b, err)
		}
		sc.Clear()
	}
	if sc.Reset(nil) {
		t.Error("Reset accepted a nil connection")
	}
}

func TestReadWriteDoNotAllocate(t *testing.T) {
	c, s := tcpPair(t)
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a Read and Write round trip allocates %v times", allocs)
	}
}
