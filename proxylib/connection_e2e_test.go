package proxylib_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TestKeepAliveConnections drives raw HTTP/1.1 connections through the
// proxy the ways clients really use them: pipelined requests, bodies and
// heads that arrive in pieces, half-closed and idle connections, upgrades.
// The connection's read loop skips reads it knows would fail, so every way
// a connection can end or stall is checked here.
func TestKeepAliveConnections(t *testing.T) {
	be := startBackend(t, "echo", nil)
	x := startXDS(t, "", nil)
	addr, short := freeAddr(t), freeAddr(t)
	up := upgradeBackend(t)
	x.set(httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	}),
		httpListener(t, "short", short, "rc", func(h *hcmv3.HttpConnectionManager) {
			h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(300 * time.Millisecond)}
			h.StreamIdleTimeout = durationpb.New(300 * time.Millisecond)
		}),
		routeConfig("rc", vh("v", "*", prefixRoute("/ws", "up"), prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", be.addr),
		edsCluster(t, "up", false, nil), cla("up", up))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "h")
	waitServing(t, "http://"+short+"/", "h")

	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n" }
	post := func(path, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
	}

	t.Run("pipelined in one write", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, get("/a")+post("/b", "hello")+get("/c"))
		expectEchoes(t, br, "GET /a ", "POST /b hello", "GET /c ")
	})
	t.Run("head in pieces", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		req := get("/pieces")
		for _, part := range []string{req[:3], req[3:17], req[17 : len(req)-1], req[len(req)-1:]} {
			send(t, c, part)
			time.Sleep(20 * time.Millisecond)
		}
		expectEchoes(t, br, "GET /pieces ")
		send(t, c, get("/after"))
		expectEchoes(t, br, "GET /after ")
	})
	t.Run("body in pieces then pipelined", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		full := post("/slow-body", "0123456789")
		send(t, c, full[:len(full)-5])
		time.Sleep(50 * time.Millisecond)
		send(t, c, full[len(full)-5:]+get("/next"))
		expectEchoes(t, br, "POST /slow-body 0123456789", "GET /next ")
		send(t, c, post("/again", "x"))
		expectEchoes(t, br, "POST /again x")
	})
	t.Run("chunked then pipelined", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"+get("/next"))
		expectEchoes(t, br, "POST /chunked abcde", "GET /next ")
	})
	t.Run("half-closed after requests", func(t *testing.T) {
		// The FIN travels in the requests' segment, so the proxy learns of
		// both at once, on a connection already serving (the first read of
		// a connection sniffs for HTTP/2).
		c, br := dialRaw(t, addr)
		send(t, c, get("/zero"))
		expectEchoes(t, br, "GET /zero ")
		cork(t, c)
		send(t, c, get("/one")+get("/two"))
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		expectEchoes(t, br, "GET /one ", "GET /two ")
		expectClosed(t, c, br, "after the client's FIN")
	})
	t.Run("half-closed while idle", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, get("/one"))
		expectEchoes(t, br, "GET /one ")
		time.Sleep(20 * time.Millisecond)
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, c, br, "after the client's FIN")
	})
	t.Run("idle timeout", func(t *testing.T) {
		c, br := dialRaw(t, short)
		send(t, c, get("/one"))
		expectEchoes(t, br, "GET /one ")
		expectClosed(t, c, br, "by the idle timeout")
	})
	t.Run("stream idle timeout in a head", func(t *testing.T) {
		// Envoy answers a stream it timed out before the request ended
		// with 408, then closes.
		c, br := dialRaw(t, short)
		send(t, c, "GET /partial HTTP/1.1\r\nHo")
		expectRejected(t, c, br, 408, "stream timeout")
	})
	t.Run("head too large", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		huge := "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 200<<10)
		go func() { _, _ = io.WriteString(c, huge) }()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 431 {
			t.Fatalf("oversized head: %v %v", resp, err)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		c, br := dialRaw(t, addr)
		send(t, c, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		send(t, c, " and late")
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(br)
		if err != nil || string(got) != "EARLY AND LATE" {
			t.Fatalf("upgraded stream echoed %q, %v", got, err)
		}
	})
}

// upgradeBackend answers one upgrade request per connection with 101 and
// then echoes the stream upper-cased until the client half-closes.
func upgradeBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
				buf := make([]byte, 4096)
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
			}()
		}
	}()
	return ln.Addr().String()
}

func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// cork holds written bytes back (TCP_CORK) until the socket is shut down,
// which sends them and the FIN in one segment.
func cork(t *testing.T, c net.Conn) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, 1) }); err != nil || serr != nil {
		t.Fatalf("setting TCP_CORK: %v %v", err, serr)
	}
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// expectEchoes reads one echo response per want, in order; want is
// "METHOD PATH BODY".
func expectEchoes(t *testing.T, c *bufio.Reader, want ...string) {
	t.Helper()
	for i, w := range want {
		resp, err := http.ReadResponse(c, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response %d: %d %q %v", i, resp.StatusCode, b, err)
		}
		e := decodeEcho(t, string(b))
		if got := e.Method + " " + e.Path + " " + e.Body; got != w {
			t.Fatalf("response %d echoes %q, want %q", i, got, w)
		}
	}
}

// expectClosed checks that the proxy closes the connection: the next read
// sees the end of the stream well before a generous deadline.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader, why string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := br.ReadByte()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open %s", why)
	}
	if err == nil {
		t.Fatalf("unexpected byte %q instead of the close %s", b, why)
	}
}
