package hcm

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestShutdownReachesSniffingConnections checks connections of a handler
// that tells HTTP/1.1 from HTTP/2 by the first bytes: one that has sent
// nothing yet is idle, so a drain closes it at once; one that has sent
// the start of the HTTP/2 preface (which an HTTP/1.1 request head may
// still turn out to be) is busy, so the drain waits for it, and the forced
// close ends it when the context does. Neither waits for its idle
// or request timeout.
func TestShutdownReachesSniffingConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		sent string        // what the client sends before Shutdown
		ctx  time.Duration // Shutdown's context
	}{
		{name: "nothing sent, drained", ctx: 2 * shutdownWait},
		{name: "start of the preface sent, forced close", sent: "PRI", ctx: 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			be, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			rt, _ := oneClusterRuntime(t, be)
			h := NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: resource.CodecAuto, ServerName: "envoy",
				IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute, RequestHeadersTimeout: time.Minute}, false)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var serving sync.WaitGroup
			serving.Add(1)
			accepted := make(chan struct{})
			go func() {
				defer serving.Done()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				close(accepted)
				h.ServeConn(c, listener.ConnInfo{})
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * shutdownWait))
			<-accepted
			if tc.sent != "" {
				if _, err := io.WriteString(c, tc.sent); err != nil {
					t.Fatal(err)
				}
			}
			// The handler waits on the connection once it tracks it;
			// Shutdown before that refuses it, which the client sees
			// the same way.
			time.Sleep(50 * time.Millisecond)

			shutdownWithin(t, h, tc.ctx)
			if _, err := io.Copy(io.Discard, c); isTimeout(err) {
				t.Errorf("the client's connection was still open %v after Shutdown began", 2*shutdownWait)
			}
			ln.Close()
			serving.Wait()
			waitGoroutines(t, base)
		})
	}
}
