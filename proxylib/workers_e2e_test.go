package proxylib_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib"
)

// workerEnv makes the test binary run as a worker process of a proxy
// under test (TestMain), as nodemesh-proxy --worker runs.
const workerEnv = "NODEMESH_TEST_PROXY_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(runTestWorker())
	}
	os.Exit(m.Run())
}

// runTestWorker serves as a worker until the parent goes away or sends
// SIGTERM. Its metrics are the two numbers the tests read: requests
// served and upstream requests in flight.
func runTestWorker() int {
	ctx, stop := signalContext()
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := proxylib.RunWorker(ctx, proxylib.WithXDSAddress("unix:///unused"), proxylib.WithNodeID(nodeID),
		proxylib.WithLogger(logger), proxylib.WithDrainTimeout(5*time.Second), proxylib.WithLocalAddress("10.1.2.3"),
		proxylib.WithWorkerMetrics(func(p *proxylib.Proxy, w io.Writer) error {
			_, err := fmt.Fprintf(w, "requests %d\nactive %d\n", requestsServed(p), requestsActive(p))
			return err
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func requestsServed(p *proxylib.Proxy) uint64 {
	counts, _ := p.RequestStats().Snapshot()
	var n uint64
	for _, c := range counts {
		n += c.N
	}
	return n
}

func requestsActive(p *proxylib.Proxy) int64 {
	var n int64
	for _, s := range p.ClusterStats() {
		n += s.UpstreamRqActive
	}
	return n
}

// workerCounts returns, per process (0: the parent), requests served and
// upstream requests in flight.
func workerCounts(t *testing.T, p *proxylib.Proxy) (served map[int]uint64, active map[int]int64) {
	t.Helper()
	served, active = map[int]uint64{0: requestsServed(p)}, map[int]int64{0: requestsActive(p)}
	for _, wm := range p.WorkerMetrics() {
		var s uint64
		var a int64
		if _, err := fmt.Sscanf(string(wm.Text), "requests %d\nactive %d\n", &s, &a); err != nil {
			t.Fatalf("worker %d metrics %q: %v", wm.Index, wm.Text, err)
		}
		served[wm.Index], active[wm.Index] = s, a
	}
	return served, active
}

// testWorkerCommand runs this test binary as a worker.
func testWorkerCommand(int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = os.Stderr
	return cmd
}

// startWorkers runs a proxy with two processes (the parent and one
// worker) until the test ends; stop ends it early and waits for Run.
func startWorkers(t *testing.T, sock string, command func(int) *exec.Cmd, opts ...proxylib.Option) (p *proxylib.Proxy, stop func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: worker processes get CAP_NET_ADMIN listeners as the proxy does")
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p, err := proxylib.New(append([]proxylib.Option{proxylib.WithXDSAddress("unix://" + sock), proxylib.WithNodeID(nodeID),
		proxylib.WithLogger(logger), proxylib.WithDrainTimeout(5 * time.Second), proxylib.WithLocalAddress("10.1.2.3"),
		proxylib.WithReconnectBackoff(50*time.Millisecond, 200*time.Millisecond), proxylib.WithWorkers(2, command)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("Run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	waitFor(t, func() bool { return len(p.WorkerPIDs()) == 1 }, "the worker to start")
	return p, stop
}

// get sends one request on a fresh connection and returns the backend
// that answered.
func get(t *testing.T, addr string) (int, string) {
	t.Helper()
	code, be, err := fetch(addr)
	if err != nil {
		t.Fatal(err)
	}
	return code, be
}

func fetch(addr string) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, "", fmt.Errorf("dialing %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", fmt.Errorf("reading response from %s: %w", addr, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), nil
}

// TestWorkersSpreadAndUpdate: connections to a listener spread over both
// processes' SO_REUSEPORT sockets, and once an update is ACKed every
// process serves it: the ACK waits for all of them.
func TestWorkersSpreadAndUpdate(t *testing.T) {
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	p, _ := startWorkers(t, x.sock, testWorkerCommand)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr))
	x.waitApplied()
	waitFor(t, func() bool { return p.Store().Ready() }, "ready")
	for i := 0; i < 64; i++ {
		if code, be := get(t, addr); code != 200 || be != "a" {
			t.Fatalf("request %d: %d from %q, want 200 from a", i, code, be)
		}
	}
	// A process counts a request once it wrote the response, which may
	// be after the client read it: wait for the last count.
	var served map[int]uint64
	waitFor(t, func() bool {
		served, _ = workerCounts(t, p)
		return served[0]+served[1] >= 64
	}, "64 requests counted")
	if served[0] == 0 || served[1] == 0 || served[0]+served[1] != 64 {
		t.Fatalf("requests served per process %v: want both > 0, 64 in all", served)
	}

	for round := 0; round < 3; round++ {
		to := []string{"b", "a", "b"}[round]
		v := x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", to))),
			edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr))
		x.waitACK(rsrc.RouteType, v)
		// Right after the ACK, no process may still serve the old route.
		for i := 0; i < 32; i++ {
			if code, be := get(t, addr); code != 200 || be != to {
				t.Fatalf("round %d request %d after the ACK: %d from %q, want 200 from %s", round, i, code, be, to)
			}
		}
	}
	served2, _ := workerCounts(t, p)
	if served2[1] == served[1] {
		t.Fatalf("the worker served none of the requests after the updates: %v then %v", served, served2)
	}
}

// TestWorkersNACK: a worker that cannot apply an update (its own network
// namespace lacks the new listener's address) NACKs it with the worker's
// error, and the parent, which had applied it, goes back: both keep
// serving the previous configuration.
func TestWorkersNACK(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	a, b := startBackend(t, "a", nil), startBackend(t, "b", nil)
	x := startXDS(t, "", nil)
	// The worker runs in a network namespace where only 127.0.0.1 is
	// local, so it binds the first listener's address and no other.
	netnsWorker := func(int) *exec.Cmd {
		cmd := exec.Command("unshare", "--net", "--", "sh", "-c",
			`ip link set lo up && ip addr del 127.0.0.1/8 dev lo && ip addr add 127.0.0.1/32 dev lo && exec "$0" -test.run='^$'`, os.Args[0])
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = os.Stderr
		return cmd
	}
	// Delta: go-control-plane's state-of-the-world server answers a NACK
	// by sending the same response again at once, so the update would be
	// applied and taken back over and over; the incremental server waits
	// for the next change, leaving the state after the NACK to check.
	p, _ := startWorkers(t, x.sock, netnsWorker, proxylib.WithDelta(true))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	old := ln.Addr().String()
	ln.Close()
	rest := []proto.Message{routeConfig("ra", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr), edsCluster(t, "b", false, nil), cla("b", b.addr)}
	x.set(append([]proto.Message{httpListener(t, "l", old, "ra", nil)}, rest...)...)
	waitFor(t, func() bool { return p.Store().Ready() && len(p.WorkerListeners()[1]) == 1 }, "the first configuration in both processes")
	if code, be := get(t, old); code != 200 || be != "a" {
		t.Fatalf("before the update: %d from %q", code, be)
	}

	// The update changes listener l's route and adds m on an address the
	// worker cannot bind.
	added := freeAddr(t)
	x.set(append([]proto.Message{httpListener(t, "l", old, "rb", nil), httpListener(t, "m", added, "ra", nil),
		routeConfig("rb", vh("v", "*", prefixRoute("/", "b")))}, rest...)...)
	var nack string
	waitFor(t, func() bool {
		for _, m := range x.nackMessages() {
			if strings.HasPrefix(m, "worker 1: ") && strings.Contains(m, added) {
				nack = m
				return true
			}
		}
		return false
	}, "the worker's NACK")
	if !strings.Contains(nack, "binding listener address") {
		t.Fatalf("NACK %q does not carry the worker's bind error", nack)
	}
	// The parent went back: l still routes to a, m is not served.
	for i := 0; i < 16; i++ {
		if code, be := get(t, old); code != 200 || be != "a" {
			t.Fatalf("after the NACK: %d from %q, want 200 from a", code, be)
		}
	}
	if c, err := net.DialTimeout("tcp", added, time.Second); err == nil {
		c.Close()
		t.Fatalf("listener m on %s serves after its update was NACKed", added)
	}
	var st struct {
		nack string
		lst  []string
	}
	for _, ts := range p.Store().Status().Types {
		if ts.TypeURL == rsrc.ListenerType {
			st.nack, st.lst = ts.LastNACK, ts.Names
		}
	}
	if st.nack != nack || strings.Join(st.lst, ",") != "l" {
		t.Fatalf("parent's listener status: names %v, last NACK %q; want [l] and %q", st.lst, st.nack, nack)
	}
	// The worker kept its listener l (with route ra, its old version) and
	// has no m.
	ls := p.WorkerListeners()[1]
	if len(ls) != 1 || ls["l"] != old {
		t.Fatalf("worker listeners after the NACK: %v, want only l on %s", ls, old)
	}
}

// TestWorkerRestart: a killed worker is started again with the
// configuration in force and serves again.
func TestWorkerRestart(t *testing.T) {
	a := startBackend(t, "a", nil)
	x := startXDS(t, "", nil)
	p, _ := startWorkers(t, x.sock, testWorkerCommand)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))),
		edsCluster(t, "a", false, nil), cla("a", a.addr))
	x.waitApplied()
	pid := p.WorkerPIDs()[1]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { n := p.WorkerPIDs()[1]; return n != 0 && n != pid }, "the worker to be restarted")
	// The new worker serves the configuration it was given: poll fresh
	// connections until it has answered some (the kernel spreads them).
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, be := get(t, addr); code != 200 || be != "a" {
			t.Fatalf("after the restart: %d from %q, want 200 from a", code, be)
		}
		if served, _ := workerCounts(t, p); served[1] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restarted worker served nothing")
		}
	}
}

// TestWorkersDrain: at shutdown every process stops accepting and
// finishes the requests it has in flight.
func TestWorkersDrain(t *testing.T) {
	release := make(chan struct{})
	slow := startBackend(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("X-Backend", "slow")
	}))
	x := startXDS(t, "", nil)
	p, stop := startWorkers(t, x.sock, testWorkerCommand)
	addr := freeAddr(t)
	x.set(httpListener(t, "l", addr, "rc", nil), routeConfig("rc", vh("v", "*", prefixRoute("/", "s"))),
		edsCluster(t, "s", false, nil), cla("s", slow.addr))
	x.waitApplied()
	pid := p.WorkerPIDs()[1]

	const n = 16
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			code, _, err := fetch(addr)
			if err != nil {
				t.Error(err)
			}
			codes <- code
		}()
	}
	// Both processes hold requests in flight (16 connections: all on one
	// socket of two would happen once in 2^15 runs).
	waitFor(t, func() bool {
		_, active := workerCounts(t, p)
		return active[0]+active[1] == n
	}, "all requests in flight")
	if _, active := workerCounts(t, p); active[0] == 0 || active[1] == 0 {
		t.Fatalf("requests in flight per process %v: want both > 0", active)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Both stop accepting while their requests are in flight.
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, "the listener to stop accepting")
	close(release)
	for i := 0; i < n; i++ {
		if code := <-codes; code != 200 {
			t.Fatalf("an in-flight request got %d during the drain", code)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("worker %d still runs after Run returned", pid)
	}
}

// TestWorkersTransparent: a transparent (IP_TRANSPARENT) listener, what
// the datapath redirects to, gets a socket in every process's
// SO_REUSEPORT group, and connections spread over both.
func TestWorkersTransparent(t *testing.T) {
	a := startBackend(t, "a", nil)
	x := startXDS(t, "", nil)
	p, _ := startWorkers(t, x.sock, testWorkerCommand)
	addr := freeAddr(t)
	l := httpListener(t, "policy", addr, "rc", nil)
	l.Transparent = wrapperspb.Bool(true)
	x.set(l, routeConfig("rc", vh("v", "*", prefixRoute("/", "a"))), edsCluster(t, "a", false, nil), cla("a", a.addr))
	x.waitApplied()
	if ls := p.WorkerListeners()[1]; ls["policy"] != addr {
		t.Fatalf("worker listeners %v, want policy on %s", ls, addr)
	}
	for i := 0; i < 64; i++ {
		if code, be := get(t, addr); code != 200 || be != "a" {
			t.Fatalf("request %d: %d from %q, want 200 from a", i, code, be)
		}
	}
	if served, _ := workerCounts(t, p); served[0] == 0 || served[1] == 0 {
		t.Fatalf("requests served per process on the transparent listener %v: want both > 0", served)
	}
}
