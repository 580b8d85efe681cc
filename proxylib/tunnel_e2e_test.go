package proxylib_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// tunnelBackend answers each upgrade request with 101 and then, by path,
// "/ws/echo" echoes the stream upper-cased, "/ws/sink" reads and discards
// it, "/ws/source" sends "s" every 100 ms. Every upgraded connection's end
// (a failed read or write) is reported on the returned channel.
func tunnelBackend(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ended := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				defer func() { ended <- struct{}{} }()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
				buf := make([]byte, 4096)
				switch req.URL.Path {
				case "/ws/source":
					go func() { _, _ = io.Copy(io.Discard, br) }()
					for {
						time.Sleep(100 * time.Millisecond)
						if _, err := io.WriteString(c, "s"); err != nil {
							return
						}
					}
				case "/ws/sink":
					_, _ = io.Copy(io.Discard, br)
				default:
					for {
						n, err := br.Read(buf)
						if n > 0 {
							if _, werr := c.Write(bytes.ToUpper(buf[:n])); werr != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), ended
}

// TestUpgradeStreamIdleTimeout checks stream_idle_timeout on upgraded
// (WebSocket) connections: a tunnel without a byte in either direction for
// the timeout is closed on both sides; bytes in either direction alone keep
// it open longer than the timeout.
func TestUpgradeStreamIdleTimeout(t *testing.T) {
	const idle = time.Second
	be, ended := tunnelBackend(t)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
		h.StreamIdleTimeout = durationpb.New(idle)
	}),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "ws"))),
		edsCluster(t, "ws", false, nil), cla("ws", be))
	startProxy(t, x.sock)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatalf("listener never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	upgrade := func(t *testing.T, path string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, br := dialRaw(t, addr)
		send(t, c, "GET "+path+" HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		return c, br
	}
	// stillOpen fails when the proxy closed c: a short read must time out.
	stillOpen := func(t *testing.T, c net.Conn, br *bufio.Reader) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			_, err := br.ReadByte()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			if err != nil {
				t.Fatalf("tunnel closed: %v", err)
			}
		}
	}
	backendEnded := func(t *testing.T) {
		t.Helper()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the upstream side of the tunnel stayed open")
		}
	}

	t.Run("quiet tunnel closed", func(t *testing.T) {
		c, br := upgrade(t, "/ws/echo")
		// The tunnel's last byte is the proxy's write of the echo, which
		// may be before the client reads it: time the idle period from
		// before the ping.
		start := time.Now()
		send(t, c, "ping")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 4)
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "PING" {
			t.Fatalf("echo %q, %v", got, err)
		}
		expectClosed(t, c, br, "by the stream idle timeout")
		tookAbout(t, "closed", start, idle)
		backendEnded(t)
	})
	t.Run("client bytes keep it open", func(t *testing.T) {
		c, br := upgrade(t, "/ws/sink")
		for i := 0; i < 15; i++ {
			time.Sleep(pauseWithin)
			send(t, c, "x")
		}
		last := time.Now()
		stillOpen(t, c, br)
		expectClosed(t, c, br, "by the stream idle timeout")
		tookAbout(t, "closed", last, idle)
		backendEnded(t)
	})
	t.Run("upstream bytes keep it open", func(t *testing.T) {
		c, br := upgrade(t, "/ws/source")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 30) // 3 s, five times the timeout
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		c.Close()
		backendEnded(t)
	})
}
