package proxylib_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rawBackend answers every request with a fixed 64-byte body, reading
// request heads with bufio: a minimal keep-alive HTTP/1.1 server so the
// benchmark measures the proxy, not net/http. Like the benchmark's client
// it allocates nothing per request, so allocs/op is the proxy's own.
func rawBackend(b testing.TB) string {
	body := bytes.Repeat([]byte("x"), 64)
	return serveRawHTTP(b, []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n"+string(body)), true)
}

// connCloseBackend answers every request with "connection: close" and
// closes its connection.
func connCloseBackend(tb testing.TB) string {
	return serveRawHTTP(tb, []byte("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"), false)
}

// serveRawHTTP serves resp to every request on raw sockets; keepAlive
// false closes each connection after its first response.
func serveRawHTTP(tb testing.TB, resp []byte, keepAlive bool) string {
	addr := freeAddr(tb)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					cl := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
						if n, ok := contentLength(line); ok {
							cl = n
						}
					}
					if cl > 0 {
						if _, err := io.CopyN(io.Discard, br, int64(cl)); err != nil {
							return
						}
					}
					if _, err := c.Write(resp); err != nil || !keepAlive {
						return
					}
				}
			}()
		}
	}()
	return addr
}

// BenchmarkHTTP1Proxy measures keep-alive HTTP/1.1 requests through the
// proxy over loopback: client → proxy → backend, 64-byte bodies. The
// connection manager normalises paths as every one the translator emits
// does.
func BenchmarkHTTP1Proxy(b *testing.B) {
	backendAddr := rawBackend(b)
	x := startXDS(b, "", nil)
	addr := freeAddr(b)
	x.set(httpListener(b, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
		h.NormalizePath = wrapperspb.Bool(true)
		h.MergeSlashes = true
		h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
	}),
		routeConfig("rc", vh("bench", "*", prefixRoute("/", "c"))),
		edsCluster(b, "c", false, nil), cla("c", backendAddr))
	startProxy(b, x.sock)
	waitServing(b, "http://"+addr+"/", "bench")

	for _, conns := range []int{1, 16} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			req := []byte("GET /bench HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n\r\n")
			b.ReportAllocs()
			b.SetParallelism((conns + 1) / 2)
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReaderSize(c, 4096)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readResponse(br); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func readResponse(br *bufio.Reader) error {
	cl := -1
	status := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if !status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
				return fmt.Errorf("status line %q", line)
			}
			status = true
			continue
		}
		if len(line) <= 2 {
			break
		}
		if n, ok := contentLength(line); ok {
			cl = n
		}
	}
	if cl < 0 {
		return fmt.Errorf("no content-length")
	}
	_, err := br.Discard(cl)
	return err
}

// contentLength parses a Content-Length header line (any case) without
// allocating.
func contentLength(line []byte) (int, bool) {
	const name = "content-length:"
	if len(line) < len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return 0, false
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(line[len(name):])))
	return n, err == nil
}
