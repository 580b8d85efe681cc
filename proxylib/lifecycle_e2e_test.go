package proxylib_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
)

func TestNACKKeepsServingPreviousConfig(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(fmt.Sprintf("delta=%v", delta), func(t *testing.T) {
			a := startBackend(t, "a", nil)
			x := startXDS(t, "", nil)
			addr := freeAddr(t)
			good := func(route string) []any {
				return []any{httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute(route, "a"))),
					edsCluster(t, "a", false, nil), cla("a", a.addr)}
			}
			setAll := func(res []any) string {
				var ms []protoMsg
				for _, r := range res {
					ms = append(ms, r.(protoMsg))
				}
				return x.set(ms...)
			}
			setAll(good("/"))
			p := startProxy(t, x.sock, proxylib.WithDelta(delta))
			url := "http://" + addr + "/x"
			waitServing(t, url, "h")
			cl := client()
			if s, _, _ := do(t, cl, "GET", url, "h", nil, nil); s != 200 {
				t.Fatalf("status %d", s)
			}
			// An unsupported field in the listener NACKs the whole listener
			// update; the old listener keeps serving.
			bad := httpListener(t, "l", addr, "rc", func(h *hcmv3.HttpConnectionManager) {
				h.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "zipkin"}}
			})
			v := x.set(bad, routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))), edsCluster(t, "a", false, nil), cla("a", a.addr))
			want := `listener "l": filter_chains[0].filters[0].typed_config(HttpConnectionManager).tracing: field not supported by nodemesh-proxy`
			waitFor(t, func() bool {
				for _, m := range x.nackMessages() {
					if m == want {
						return true
					}
				}
				return false
			}, "NACK %q (got %v)", want, x.nackMessages())
			if s, _, _ := do(t, cl, "GET", url, "h", nil, nil); s != 200 {
				t.Fatalf("after NACK status %d", s)
			}
			st := p.Store().Status()
			for _, ts := range st.Types {
				if ts.TypeURL == rsrc.ListenerType && (ts.LastNACK != want || ts.LastNACKVersion != v) {
					t.Errorf("status %+v", ts)
				}
			}
			// A later valid update is applied.
			setAll(good("/only"))
			waitFor(t, func() bool {
				s, _, _ := do(t, cl, "GET", url, "h", nil, nil)
				return s == 404
			}, "route update after NACK")
		})
	}
}

type protoMsg = proto.Message

type typesResource = types.Resource

func waitFor(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for "+format, args...)
}

func TestConfigSwapUnderLoadHasNoErrors(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	clusters := []any{edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr)}
	snapshot := func(i int) {
		w := map[string]uint32{"a": uint32(100 - 10*(i%10)), "b": uint32(10 * (i % 10))}
		res := []protoMsg{
			httpListener(t, "l", addr, "rc", nil),
			routeConfig("rc", &routev3.VirtualHost{Name: "v", Domains: []string{"*"}, Routes: []*routev3.Route{
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/gen%d", i)}}, Action: toCluster("a")},
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: weighted(w)},
			}}),
		}
		for _, c := range clusters {
			res = append(res, c.(protoMsg))
		}
		x.set(res...)
	}
	snapshot(0)
	startProxy(t, x.sock)
	url := "http://" + addr + "/load"
	waitServing(t, url, "h")

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := client()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("POST", url, strings.NewReader("payload"))
				resp, err := cl.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint("status ", resp.StatusCode))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := 1; i <= 30; i++ {
		snapshot(i)
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	t.Logf("%d requests across 30 swaps, 0 errors", ok.Load())
}

func TestListenerRemovalDrains(t *testing.T) {
	release := make(chan struct{})
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	x := startXDS(t, "", nil)
	addr, other := freeAddr(t), freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), httpListener(t, "keep", other, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))), edsCluster(t, "s", false, nil), cla("s", slow.addr))
	startProxy(t, x.sock)
	waitServing(t, "http://"+addr+"/", "h")

	// An idle keep-alive connection and a busy one on the listener.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprint(idle, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle conn: %v %v", resp, err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	fmt.Fprint(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(100 * time.Millisecond)

	v := x.set(httpListener(t, "keep", other, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))), edsCluster(t, "s", false, nil), cla("s", slow.addr))
	x.waitACK(rsrc.ListenerType, v)

	// New connections are refused; the idle connection is closed.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, "listener to stop accepting")
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := ibr.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection not closed by the drain: %v", err)
	}
	// The in-flight request completes, with connection: close.
	close(release)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight request lost: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "done" || !resp.Close {
		t.Fatalf("in-flight: %d %q close=%v", resp.StatusCode, b, resp.Close)
	}
	// The other listener was untouched.
	if s, _, _ := do(t, client(), "GET", "http://"+other+"/x", "h", nil, nil); s != 200 {
		t.Fatalf("kept listener: %d", s)
	}
}

func TestReconnectToRestartedServer(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	cfg := func(c string) []protoMsg {
		return []protoMsg{httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", c))),
			edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr)}
	}
	x.set(cfg("a")...)
	p := startProxy(t, x.sock)
	url := "http://" + addr + "/"
	waitServing(t, url, "h")
	cl := client()
	x.stop()
	// Disconnected: the last applied configuration keeps serving.
	waitFor(t, func() bool { return !p.XDSStats().Connected }, "disconnect")
	for i := 0; i < 5; i++ {
		if s, _, body := do(t, cl, "GET", url, "h", nil, nil); s != 200 || decodeEcho(t, body).Backend != "a" {
			t.Fatalf("while disconnected: %d %s", s, body)
		}
	}
	// A new server on the same socket with new configuration.
	x2 := startXDS(t, x.sock, cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil))
	x2.ver = 100
	x2.set(cfg("b")...)
	waitFor(t, func() bool {
		_, _, body := do(t, cl, "GET", url, "h", nil, nil)
		return decodeEcho(t, body).Backend == "b"
	}, "update from the restarted server")
	if p.XDSStats().Streams < 2 {
		t.Fatalf("streams %d", p.XDSStats().Streams)
	}
}

func TestListenerWarmsUntilRoutesArrive(t *testing.T) {
	a := startBackend(t, "a", nil)
	x := startXDS(t, "", nil)
	addr := freeAddr(t)
	// Snapshot whose listener references a route configuration that is not
	// there yet: go-control-plane cannot serve it consistently, so publish
	// listeners first through a snapshot without RDS.
	snap, err := cachev3.NewSnapshot("w1", map[rsrc.Type][]typesResource{
		rsrc.ListenerType: {httpListener(t, "l", addr, "rc", nil)},
		rsrc.ClusterType:  {edsCluster(t, "a", false, nil)},
		rsrc.EndpointType: {cla("a", a.addr)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := x.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, x.sock)
	x.waitACK(rsrc.ListenerType, "w1")
	time.Sleep(100 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		// Bound while warming: connections wait in the backlog, unanswered.
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, err := bufio.NewReader(c).ReadByte(); err == nil {
			t.Fatal("warming listener answered")
		}
		c.Close()
	}
	if p.Store().Ready() {
		t.Fatal("ready while a listener warms")
	}
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr))
	waitServing(t, "http://"+addr+"/", "h")
	waitFor(t, p.Store().Ready, "ready")
	_ = wrapperspb.Bool
}

// TestListenerRemovalDrainTimeoutEndsBusyConnections checks that the drain
// timeout ends a removed listener's keep-alive connection whose request
// waits on a backend that never answers: the client sees the connection
// close once the drain timeout passed, long before the route timeout.
func TestListenerRemovalDrainTimeoutEndsBusyConnections(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	silent := startBackend(t, "silent", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_, _ = io.WriteString(w, "done")
	}))
	x := startXDS(t, "", nil)
	addr, other := freeAddr(t), freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), httpListener(t, "keep", other, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))), edsCluster(t, "s", false, nil), cla("s", silent.addr))
	startProxy(t, x.sock, proxylib.WithDrainTimeout(200*time.Millisecond))
	waitServing(t, "http://"+addr+"/", "h")

	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	br := bufio.NewReader(busy)
	_ = busy.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(busy, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	// A keep-alive request the backend holds.
	fmt.Fprint(busy, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n")
	time.Sleep(100 * time.Millisecond)

	v := x.set(httpListener(t, "keep", other, "rc", nil),
		routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))), edsCluster(t, "s", false, nil), cla("s", silent.addr))
	x.waitACK(rsrc.ListenerType, v)
	_ = busy.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, br); err != nil {
		t.Fatalf("the busy connection outlived the 200 ms drain timeout by 5 s: %v", err)
	}
	if s, _, _ := do(t, client(), "GET", "http://"+other+"/x", "h", nil, nil); s != 200 {
		t.Fatalf("kept listener: %d", s)
	}
}
