package hcm

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// shutdownWait bounds how long a forced close may take in these tests.
// It is no speed claim: without the forced close interrupting what a
// request waits on, Shutdown stays blocked until the backend lets go.
const shutdownWait = 5 * time.Second

// TestShutdownForceClosesBusyConnections checks that Shutdown whose
// context ends closes a keep-alive connection whose request is served
// inside its read session (package sockio) at once, whatever the request
// waits on: an upstream that accepted it and never answers (also with a
// retry policy, which must not try again, and for a request whose body
// came after its head, served outside the session), a chunked response that keeps
// streaming while the client keeps reading, or one that stops sending
// after its first chunk. The client sees the
// connection end, and nothing the connection started is left running.
func TestShutdownForceClosesBusyConnections(t *testing.T) {
	silent := func(c net.Conn, _ *bufio.Reader) { _, _ = io.Copy(io.Discard, c) }
	streaming := func(c net.Conn, _ *bufio.Reader) {
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
			return
		}
		for {
			if _, err := io.WriteString(c, "5\r\nchunk\r\n"); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stalled := func(c net.Conn, _ *bufio.Reader) {
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n"); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	}
	retry := func(a *routev3.RouteAction) {
		a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "reset,connect-failure,5xx", NumRetries: wrapperspb.UInt32(5)}
	}
	for _, tc := range []struct {
		name    string
		backend func(net.Conn, *bufio.Reader)
		stream  bool
		// split: the request has a body, sent after its head, so the
		// request is served outside the connection's read session.
		split bool
		edits []func(*routev3.RouteAction)
	}{
		{name: "silent upstream", backend: silent},
		{name: "silent upstream, body sent after the head", backend: silent, split: true},
		{name: "silent upstream with retries", backend: silent, edits: []func(*routev3.RouteAction){retry}},
		{name: "streaming response", backend: streaming, stream: true},
		{name: "streaming response that stalls", backend: stalled, stream: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			got := make(chan struct{}, 16)
			be := startShutdownBackend(t, func(c net.Conn, br *bufio.Reader) {
				got <- struct{}{}
				tc.backend(c, br)
			})
			rt, _ := oneClusterRuntime(t, be.ln, tc.edits...)
			h, ln, serving := serveForShutdown(t, rt, resource.CodecHTTP1)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * shutdownWait))
			br := bufio.NewReader(c)
			// A first request completes, so the one that hangs is a
			// keep-alive request served inside the connection's session.
			be.answerFirst()
			fmt.Fprint(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
			if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			if tc.split {
				fmt.Fprint(c, "POST /hang HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n")
				time.Sleep(50 * time.Millisecond)
				fmt.Fprint(c, "body")
			} else {
				fmt.Fprint(c, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
			}
			<-got
			var body io.Reader = br
			if tc.stream {
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("streaming request: %v %v", resp, err)
				}
				if _, err := io.ReadFull(resp.Body, make([]byte, 5)); err != nil {
					t.Fatalf("reading the first chunk: %v", err)
				}
				body = resp.Body
			}

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := make(chan struct{})
			go func() {
				h.Shutdown(ctx)
				close(done)
			}()
			// The client keeps reading: it must see the connection end.
			_, rerr := io.Copy(io.Discard, body)
			if isTimeout(rerr) {
				t.Errorf("the client's connection was still open %v after Shutdown began", 2*shutdownWait)
			}
			select {
			case <-done:
			case <-time.After(shutdownWait):
				t.Fatalf("Shutdown blocked %v after its 100 ms context ended", shutdownWait)
			}
			select {
			case <-got:
				t.Errorf("the request was sent upstream again after the forced close")
			default:
			}

			c.Close()
			ln.Close()
			serving.Wait()
			be.close()
			waitGoroutines(t, base)
		})
	}
}

// shutdownBackend is an HTTP/1.1 backend that answers the first request
// on a connection 200 when told so, and hands every other request's
// connection to serve; serveAll, when set, serves whole connections
// instead (startShutdownBackendConns).
type shutdownBackend struct {
	serveAll func(net.Conn, *bufio.Reader)
	ln       net.Listener
	first    chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
	wg       sync.WaitGroup
}

func startShutdownBackend(t *testing.T, serve func(net.Conn, *bufio.Reader)) *shutdownBackend {
	t.Helper()
	return startBackend(t, serve, nil)
}

// startShutdownBackendConns starts a backend serving each connection
// with serveAll.
func startShutdownBackendConns(t *testing.T, serveAll func(net.Conn, *bufio.Reader)) *shutdownBackend {
	t.Helper()
	return startBackend(t, nil, serveAll)
}

func startBackend(t *testing.T, serve, serveAll func(net.Conn, *bufio.Reader)) *shutdownBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &shutdownBackend{ln: ln, first: make(chan struct{}, 1), serveAll: serveAll}
	t.Cleanup(b.close)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				if b.serveAll != nil {
					b.serveAll(c, br)
					return
				}
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					select {
					case <-b.first:
						if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
							return
						}
						continue
					default:
					}
					serve(c, br)
					return
				}
			}()
		}
	}()
	return b
}

// answerFirst makes the backend answer the next request 200.
func (b *shutdownBackend) answerFirst() { b.first <- struct{}{} }

// close stops the backend and waits for its goroutines.
func (b *shutdownBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// waitGoroutines fails t when the goroutine count does not fall back to
// base, listing the goroutines left.
// shutdownWithin runs h.Shutdown with a context that ends after d, and
// fails the test if it has not returned shutdownWait later.
func shutdownWithin(t *testing.T, h *Handler, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	done := make(chan struct{})
	go func() {
		h.Shutdown(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownWait):
		t.Fatalf("Shutdown blocked %v after its %v context ended", shutdownWait, d)
	}
}

// serveForShutdown starts a Handler for rt with the given codec, serving
// every connection its loopback listener accepts; serving ends once the
// listener is closed and every connection it served has ended.
func serveForShutdown(t *testing.T, rt *Runtime, codec resource.Codec) (h *Handler, ln net.Listener, serving *sync.WaitGroup) {
	t.Helper()
	h = NewHandler(rt, &resource.HCM{RouteConfigName: "rc", Codec: codec, ServerName: "envoy",
		IdleTimeout: time.Minute, StreamIdleTimeout: time.Minute}, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serving = &sync.WaitGroup{}
	serving.Add(1)
	go func() {
		defer serving.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serving.Add(1)
			go func() {
				defer serving.Done()
				h.ServeConn(c, listener.ConnInfo{})
			}()
		}
	}()
	return h, ln, serving
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	for end := time.Now().Add(shutdownWait); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if runtime.NumGoroutine() <= base {
			return
		}
	}
	var sb strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&sb, 1)
	t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), base, sb.String())
}

// TestShutdownForceClosesHTTP2Connections checks the forced close of an
// HTTP/2 connection whose stream waits on an upstream that accepted the
// request and never answers: Shutdown returns, the client's request fails,
// the upstream connection ends (no context interrupts the stream's wait on
// it: the stream's abort shuts it down), and nothing is left running,
// all before the backend lets go.
func TestShutdownForceClosesHTTP2Connections(t *testing.T) {
	base := runtime.NumGoroutine()
	got := make(chan struct{}, 16)
	ended := make(chan struct{}, 16)
	be := startShutdownBackend(t, func(c net.Conn, _ *bufio.Reader) {
		got <- struct{}{}
		_, _ = io.Copy(io.Discard, c)
		ended <- struct{}{}
	})
	rt, _ := oneClusterRuntime(t, be.ln)
	h, ln, serving := serveForShutdown(t, rt, resource.CodecAuto)
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*shutdownWait)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, "GET", "http://"+ln.Addr().String()+"/hang", nil)
	rerr := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil {
				err = fmt.Errorf("response %d", resp.StatusCode)
			}
		}
		rerr <- err
	}()
	<-got

	shutdownWithin(t, h, 100*time.Millisecond)
	if err := <-rerr; errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the client's request was still open %v after Shutdown began", 2*shutdownWait)
	} else {
		t.Logf("client: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(shutdownWait):
		t.Errorf("the stream's upstream connection was still open %v after Shutdown returned", shutdownWait)
	}
	tr.CloseIdleConnections()
	ln.Close()
	serving.Wait()
	// Counted before the backend closes, whose accept loop still runs:
	// a stream still waiting on its upstream would end only with it.
	waitGoroutines(t, base+1)
	be.close()
}
