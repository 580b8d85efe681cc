package hcm

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// TestAbortedConnectionTakesNoUpstream checks the marker a forced close
// leaves on an HTTP/1.1 connection: an upstream connection the request
// obtained after the abort (an idle pooled one is taken without a
// context) is refused, so the caller discards it and the request ends;
// the connection's upstream context, made afterwards, is cancelled; and
// the client's socket is shut down (a read ends at once).
func TestAbortedConnectionTakesNoUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	hc := &h1conn{c: server}
	if c := hc.abort(); c != nil {
		t.Fatalf("abort could not shut the TCP socket down: returned %v", c)
	}
	if hc.useUpstream(new(upstream.Conn)) {
		t.Error("an aborted connection took an upstream connection")
	}
	if !hc.aborted() {
		t.Error("the connection does not read as aborted")
	}
	if err := hc.upstreamCtx().Err(); err == nil {
		t.Error("the upstream context made after the abort is not cancelled")
	}
	_ = server.SetReadDeadline(time.Now().Add(shutdownWait))
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after the abort: %v, want io.EOF", err)
	}
}
