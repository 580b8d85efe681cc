package parser

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// sizedReads records the largest read asked of a connection.
type sizedReads struct {
	net.Conn
	mu  sync.Mutex
	max int
}

func (s *sizedReads) Read(p []byte) (int, error) {
	s.mu.Lock()
	s.max = max(s.max, len(p))
	s.mu.Unlock()
	return s.Conn.Read(p)
}

// TestReadSize checks Options.ReadSize (the listener's
// per_connection_buffer_limit_bytes): no read from either side asks for
// more, and a request larger than it still passes whole.
func TestReadSize(t *testing.T) {
	const size = 512
	addr := server(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	type result struct {
		down, up *sizedReads
		err      error
	}
	res := make(chan result, 1)
	go func() {
		d, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", addr)
		if err != nil {
			res <- result{err: err}
			return
		}
		down, up := &sizedReads{Conn: d}, &sizedReads{Conn: u}
		c := &Connection{}
		err = Relay(context.Background(), down, up, c, &lineParser{c: c}, Options{ReadSize: size, IdleTimeout: 300 * time.Millisecond})
		d.Close()
		u.Close()
		res <- result{down, up, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	blob := strings.Repeat("z", 8192)
	fmt.Fprintf(c, "BLOB %d\n%sALLOW 1\n", len(blob), blob)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for _, want := range []string{"GOT 8192\n", "OK 1\n"} {
		if got, err := br.ReadString('\n'); got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	c.Close()
	r := <-res
	if r.down == nil {
		t.Fatal(r.err)
	}
	if r.down.max > size || r.up.max > size {
		t.Fatalf("reads of up to %d (client) and %d (server) bytes, want at most %d", r.down.max, r.up.max, size)
	}
}
