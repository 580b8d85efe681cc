package hcm

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestShutdownDoesNotReplayAbortedRequest checks a forced close of a
// request waiting on a reused upstream connection while a second one sits
// idle in the pool: the interrupted exchange looks like a pooled
// connection the server closed, which a request sent whole is replayed
// for, but an aborted connection takes no further upstream connection.
// The request is not sent again (Shutdown would wait on the second
// upstream), and the idle upstream connection stays pooled, untouched.
// Both replay paths run: the one without retries (forwardH1) and the one
// with a retry policy that retries no reset (forwardTries).
func TestShutdownDoesNotReplayAbortedRequest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits []func(*routev3.RouteAction)
	}{
		{name: "no retry policy"},
		{name: "retry policy", edits: []func(*routev3.RouteAction){func(a *routev3.RouteAction) {
			a.RetryPolicy = &routev3.RetryPolicy{RetryOn: "retriable-4xx", NumRetries: wrapperspb.UInt32(3)}
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) { testShutdownNoReplay(t, tc.edits) })
	}
}

func testShutdownNoReplay(t *testing.T, edits []func(*routev3.RouteAction)) {
	base := runtime.NumGoroutine()
	// The backend answers "/first" once both client connections sent
	// theirs, so the pool holds two upstream connections, and never
	// answers any other request.
	var both sync.WaitGroup
	both.Add(2)
	hangs := make(chan struct{}, 8)
	be := startShutdownBackendConns(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path != "/first" {
				hangs <- struct{}{}
				_, _ = io.Copy(io.Discard, c)
				return
			}
			both.Done()
			both.Wait()
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	rt, cluster := oneClusterRuntime(t, be.ln, edits...)
	pool := cluster.Pick(rand.New(rand.NewPCG(1, 2))).Pool
	h, ln, serving := serveForShutdown(t, rt, resource.CodecHTTP1)
	var cs [2]net.Conn
	var brs [2]*bufio.Reader
	var first sync.WaitGroup
	for i := range cs {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * shutdownWait))
		cs[i], brs[i] = c, bufio.NewReader(c)
		first.Add(1)
		go func() {
			defer first.Done()
			fmt.Fprint(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
			resp, err := http.ReadResponse(brs[i], nil)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}()
	}
	first.Wait()
	if t.Failed() {
		return
	}
	fmt.Fprint(cs[0], "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
	<-hangs

	shutdownWithin(t, h, 100*time.Millisecond)
	ln.Close()
	serving.Wait() // every connection the handler served has ended
	select {
	case <-hangs:
		t.Errorf("the aborted request was sent again on the other pooled upstream connection")
	default:
	}
	if uc := pool.GetIdle(time.Now()); uc == nil {
		t.Errorf("the idle pooled upstream connection was taken and closed by the forced close")
	} else {
		uc.Discard()
	}
	for _, c := range cs {
		c.Close()
	}
	be.close()
	waitGoroutines(t, base)
}
