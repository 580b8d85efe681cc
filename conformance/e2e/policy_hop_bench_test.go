package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodemesh/nodemesh/datapath/testbed"
)

// hopRate is BenchmarkPolicyHop's request rate on each path, the 1k req/s
// the hop's target is stated at (2k req/s on the wire in all): low enough
// that neither path queues, so the latency difference is the hop's own
// cost.
const hopRate = 1000

// The bootstrap behind the hop's confidence intervals: runs of hopCIBlock
// consecutive pairs (0.1 s at hopRate, longer than the machine's stalls)
// drawn hopCIResamples times, from a fixed seed so the table can be
// recomputed from the same samples.
const (
	hopCIBlock     = 100
	hopCIResamples = 2000
	hopCISeed      = 1
)

// The benchmark's helper processes are this test binary, started with one
// of these variables set (see TestMain).
const (
	hopGenEnv     = "NODEMESH_E2E_HOP_GEN"     // JSON hopGen; writes JSON []hopStats
	hopBackendEnv = "NODEMESH_E2E_HOP_BACKEND" // comma-separated ports to serve
	// hopTimelineEnv names a file for the generator's per-request
	// timeline (hopGen.Timeline); unset, none is written.
	hopTimelineEnv = "NODEMESH_E2E_HOP_TIMELINE"
)

// BenchmarkPolicyHop measures what the L7 policy hop adds to a request's
// latency. A server workload of the test bed serves the same handler on
// two ports; a CiliumNetworkPolicy allows the client to port 80 at L3/L4
// (the packets pass the eBPF datapath, no proxy: "direct") and to port
// 8080 with an HTTP rule (the datapath redirects each connection to
// nodemesh-proxy, which checks the rule and forwards: "l7"). One load
// generator sends HTTP/1.1 keep-alive requests at a fixed 1k req/s on each
// path, interleaved request by request: every 1 ms one direct and one l7
// request, 0.5 ms apart, in a random order per pair. Both members of a
// pair see the same moment of the machine, so its noise (large on a small
// VM next to the hop's cost) is shared, and the added latency at p50, p99
// and p99.9 comes with a 95 % confidence interval from a paired
// moving-block bootstrap (pairedQuantileDiffs). b.N is the number of timed
// requests per path, and the run takes b.N ms (-benchtime 40000x: 40 s).
// A p99.9 rests on the slowest 0.1 % (40 requests in 40 000), so below
// 20 000 its interval is mostly width; the table's intervals say whether a
// run was long and quiet enough for the claim made from it.
//
// Each request is timed from its scheduled slot (coordinated omission
// corrected) and from its write; the generator's lateness in reaching its
// slots, its CPU time and its involuntary context switches (other tasks
// taking its CPU) show whether it held its schedule, and so whether the
// run measured the paths or the machine. See hopGen for why the generator is an epoll loop on one
// locked thread.
//
// CPU placement: with two or more CPUs the generator runs alone on the
// last one (its own process, so the agent's and backend's garbage
// collection and goroutines never share its scheduler), and the proxy,
// the backend and this process (the agent) on the others.
//
// The hop is measured with each way the proxy serves connections, a node
// each: proxy=goroutines (--event-loops 0, a goroutine per connection) and
// proxy=event-loop (--event-loops 1: on the one CPU the proxy gets on a
// 2-CPU machine, a loop sharing the only P, what nodemesh-proxy runs by
// default there).
//
// Needs root (network namespaces, eBPF) like the other policy tests.
func BenchmarkPolicyHop(b *testing.B) {
	for _, p := range []struct {
		name  string
		loops string
	}{{"goroutines", "0"}, {"event-loop", "1"}} {
		b.Run("proxy="+p.name, func(b *testing.B) { policyHop(b, p.loops) })
	}
}

// policyHop is BenchmarkPolicyHop on a node whose proxy runs loops event
// loops ("0": a goroutine per connection).
func policyHop(b *testing.B, loops string) {
	genCPU, restCPUs := hopCPUs()
	if restCPUs != "" {
		undo := pinProcess(b, restCPUs)
		defer undo()
	}
	n := newPolicyNodeOpts(b, nodeOpts{workloads: 2, withDatapath: true, proxyCPUs: restCPUs, eventLoops: loops})
	client, web := n.bed.Workloads[0], n.bed.Workloads[1]
	startHopBackend(b, web, restCPUs, 80, 8080)
	pods := pod("client", client, map[string]string{"app": "client"}) + pod("web", web, map[string]string{"app": "web"})
	n.apply(pods + `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-ingress}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/bench"}]
`)
	direct := net.JoinHostPort(web.IPv4.String(), "80")
	l7 := net.JoinHostPort(web.IPv4.String(), "8080")
	// Only the l7 port goes through the proxy: it denies what the rule
	// does not allow, the direct port does not.
	for addr, want := range map[string]int{direct: http.StatusOK, l7: http.StatusForbidden} {
		resp, err := httpClient(client).Get("http://" + addr + "/denied")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("GET %s/denied answered %d, want %d", addr, resp.StatusCode, want)
		}
	}

	b.Run("direct-vs-l7", func(b *testing.B) {
		g := hopGen{Targets: []string{direct, l7}, Conns: 16, Rate: hopRate, N: b.N, Warmup: 200, Seed: hopCISeed,
			Timeline: os.Getenv(hopTimelineEnv)}
		res := runHopGen(b, client, genCPU, g)
		b.StopTimer()
		d, p := res.Stats[0], res.Stats[1]
		ps := []float64{.5, .99, .999}
		fromSlot := pairedQuantileDiffs(d.FromSlot, p.FromSlot, ps, hopCIBlock, hopCIResamples, hopCISeed)
		fromWrite := pairedQuantileDiffs(d.FromSend, p.FromSend, ps, hopCIBlock, hopCIResamples, hopCISeed)
		if b.N >= 1000 { // not for the framework's b.N=1 probe
			proxy := "--event-loops " + loops
			if loops == "0" {
				proxy = "a goroutine per connection (--event-loops 0)"
			}
			fmt.Printf("proxy: %s\n", proxy)
			printHopTable(os.Stdout, b.N, res, fromSlot, fromWrite)
		}
		us := func(v int64) float64 { return float64(v) / 1e3 }
		for i, name := range []string{"p50", "p99", "p999"} {
			b.ReportMetric(us(fromSlot[i].Est), "added-"+name+"-µs")
			b.ReportMetric(us(fromWrite[i].Est), "added-write-"+name+"-µs")
		}
		b.ReportMetric(float64(d.Late+p.Late), "late-starts")
	})
}

// printHopTable writes the benchmark's table: each path timed from the
// slot and from the write; how late requests were written, which is the
// generator's own lateness (behind its slots: its pacing) plus any wait
// for a free connection (the paths queueing); the added latency with its
// confidence intervals; and what the generator cost.
func printHopTable(w io.Writer, n int, res *hopResult, fromSlot, fromWrite []quantileDiff) {
	d, p := res.Stats[0], res.Stats[1]
	us := func(v int64) float64 { return float64(v) / 1e3 }
	fmt.Fprintf(w, "policy hop: %d timed requests per path at %d req/s per path, direct and redirect + L7 interleaved\n", n, hopRate)
	fmt.Fprintf(w, "(one of each every %v, in a random order per pair)\n", time.Second/hopRate)
	fmt.Fprintf(w, "%-32s %9s %9s %9s %9s %9s\n", "µs", "p50", "p90", "p99", "p99.9", "max")
	for _, r := range []struct {
		name string
		v    []int64
	}{
		{"direct, from slot", d.FromSlot}, {"redirect + L7, from slot", p.FromSlot},
		{"direct, from write", d.FromSend}, {"redirect + L7, from write", p.FromSend},
		{"direct, write after slot", d.Dispatch}, {"redirect + L7, write after slot", p.Dispatch},
		{"generator behind its slots", append(slices.Clone(d.Behind), p.Behind...)},
	} {
		s := sortedCopy(r.v)
		fmt.Fprintf(w, "%-32s %9.0f %9.0f %9.0f %9.0f %9.0f\n", r.name,
			us(quantile(s, .5)), us(quantile(s, .9)), us(quantile(s, .99)), us(quantile(s, .999)), us(quantile(s, 1)))
	}
	fmt.Fprintf(w, "added by the hop, µs [95 %% CI: paired block bootstrap, %d resamples of %d-pair runs]\n", hopCIResamples, hopCIBlock)
	fmt.Fprintf(w, "%-8s %26s %26s\n", "", "from slot", "from write")
	for i, name := range []string{"p50", "p99", "p99.9"} {
		cell := func(q quantileDiff) string {
			return fmt.Sprintf("%6.0f [%6.0f, %6.0f]", us(q.Est), us(q.Lo), us(q.Hi))
		}
		fmt.Fprintf(w, "%-8s %26s %26s\n", name, cell(fromSlot[i]), cell(fromWrite[i]))
	}
	fmt.Fprintf(w, "written > 1 ms after their slot: direct %d, redirect + L7 %d; waited for a free connection: direct %d, redirect + L7 %d\n", d.Late, p.Late, d.Queued, p.Queued)
	u := res.Usage
	busy := float64(u.User+u.Sys) / float64(u.Wall) * 100
	fmt.Fprintf(w, "generator: CPU %s, busy %.0f %% of %.1f s (user %.1f s, sys %.1f s), %d voluntary / %d involuntary context switches\n",
		u.CPUs, busy, u.Wall.Seconds(), u.User.Seconds(), u.Sys.Seconds(), u.Vol, u.Invol)
}

// hopCPUs picks the generator's CPU (the last) and the CPUs of everything
// else; with one CPU nothing is pinned.
func hopCPUs() (gen, rest string) {
	n := runtime.NumCPU()
	if n < 2 {
		return "", ""
	}
	rest = "0"
	if n > 2 {
		rest = fmt.Sprintf("0-%d", n-2)
	}
	return strconv.Itoa(n - 1), rest
}

// pinnedCommand runs this test binary in namespace ns, on cpus when set
// (taskset before the Go runtime starts, so GOMAXPROCS follows the set).
func pinnedCommand(ns *testbed.Namespace, cpus string) *exec.Cmd {
	if cpus == "" {
		return ns.Command(context.Background(), os.Args[0])
	}
	return ns.Command(context.Background(), "taskset", "-c", cpus, os.Args[0])
}

// runHopGen runs g in its own process inside workload w, pinned to cpu.
func runHopGen(b *testing.B, w *testbed.Workload, cpu string, g hopGen) *hopResult {
	b.Helper()
	cfg, err := json.Marshal(g)
	if err != nil {
		b.Fatal(err)
	}
	cmd := pinnedCommand(w.Namespace, cpu)
	cmd.Env = append(os.Environ(), hopGenEnv+"="+string(cfg))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, newTestWriter(b)
	b.ResetTimer()
	if err := cmd.Run(); err != nil {
		b.Fatalf("load generator: %v", err)
	}
	var res hopResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		b.Fatalf("reading the load generator's result %q: %v", out.String(), err)
	}
	if len(res.Stats) != len(g.Targets) {
		b.Fatalf("load generator reported %d targets, want %d", len(res.Stats), len(g.Targets))
	}
	for _, s := range res.Stats {
		if len(s.FromSlot) != g.N || len(s.FromSend) != g.N || len(s.Dispatch) != g.N || len(s.Behind) != g.N {
			b.Fatalf("%s: %d/%d/%d/%d timed requests, want %d", s.Target, len(s.FromSlot), len(s.FromSend), len(s.Dispatch), len(s.Behind), g.N)
		}
	}
	return &res
}

// runHopGenChild is the generator process: settings from the environment,
// result as JSON on stdout.
func runHopGenChild(cfg string) int {
	var g hopGen
	if err := json.Unmarshal([]byte(cfg), &g); err != nil {
		fmt.Fprintln(os.Stderr, "reading the generator's settings:", err)
		return 1
	}
	res, err := g.run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "generating load:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "writing the result:", err)
		return 1
	}
	return 0
}

// hopBody is the backend's answer: 64 bytes, as in the proxy benchmarks.
var hopBody = bytes.Repeat([]byte("x"), 64)

// startHopBackend runs the benchmark's server in its own process in
// workload w (its garbage collection and goroutines apart from the
// agent's), serving hopBackend on ports, until the benchmark ends.
func startHopBackend(b *testing.B, w *testbed.Workload, cpus string, ports ...int) {
	b.Helper()
	var ps []string
	for _, p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	cmd := pinnedCommand(w.Namespace, cpus)
	cmd.Env = append(os.Environ(), hopBackendEnv+"="+strings.Join(ps, ","))
	cmd.Stderr = newTestWriter(b)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting the backend: %v", err)
	}
	done := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line == "ready\n"
		cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			b.Error("the backend did not stop within 10s")
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			b.Fatal("the backend did not start")
		}
	case <-time.After(20 * time.Second):
		b.Fatal("the backend did not start within 20s")
	}
}

// runHopBackendChild is the backend process: it listens on the ports,
// says "ready" on stdout, and serves until SIGTERM.
func runHopBackendChild(ports string) int {
	var ls []net.Listener
	for _, p := range strings.Split(ports, ",") {
		l, err := net.Listen("tcp", ":"+p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "listening:", err)
			return 1
		}
		ls = append(ls, l)
		go (&hopBackend{l: l}).serve()
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	for _, l := range ls {
		l.Close()
	}
	return 0
}

// pinProcess moves every thread of this process to cpus (threads started
// later inherit it from their creator) and returns the undo.
func pinProcess(b *testing.B, cpus string) func() {
	b.Helper()
	var all, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		b.Fatal(err)
	}
	lo, hi, _ := strings.Cut(cpus, "-")
	first, _ := strconv.Atoi(lo)
	last := first
	if hi != "" {
		last, _ = strconv.Atoi(hi)
	}
	for c := first; c <= last; c++ {
		set.Set(c)
	}
	apply := func(s *unix.CPUSet) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range tasks {
			tid, _ := strconv.Atoi(t.Name())
			// A thread may exit meanwhile; the others still move.
			_ = unix.SchedSetaffinity(tid, s)
		}
	}
	apply(&set)
	return func() { apply(&all) }
}
