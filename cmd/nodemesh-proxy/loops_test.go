package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/internal/metrics"
	"github.com/nodemesh/nodemesh/proxylib"
	"golang.org/x/sys/unix"
)

// TestEventLoopsFlag: --event-loops takes auto or a count
// 0..256; auto is one loop per P the process starts with and none with
// workers; a count above 0 is refused with workers.
func TestEventLoopsFlag(t *testing.T) {
	auto := proxylib.DefaultEventLoops(1)
	for _, tc := range []struct {
		arg     string
		workers int
		want    int
		err     string
	}{
		{"auto", 1, auto, ""},
		{"auto", 2, 0, ""},
		{"0", 1, 0, ""},
		{"0", 4, 0, ""},
		{"3", 1, 3, ""},
		{"256", 1, 256, ""},
		{"1", 2, 0, "exclude each other"},
		{"-1", 1, 0, "want auto or a count 0..256"},
		{"257", 1, 0, "want auto or a count 0..256"},
		{"two", 1, 0, "want auto or a count 0..256"},
		{"", 1, 0, "want auto or a count 0..256"},
	} {
		f := loopsFlag{auto: true}
		err := f.Set(tc.arg)
		var n int
		if err == nil {
			n, err = f.count(tc.workers)
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("--event-loops %q with %d workers: error %v, want %q", tc.arg, tc.workers, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("--event-loops %q with %d workers: %v", tc.arg, tc.workers, err)
		case tc.err == "" && n != tc.want:
			t.Errorf("--event-loops %q with %d workers: %d loops, want %d", tc.arg, tc.workers, n, tc.want)
		}
	}
}

// cpuLimited reports whether this process's cgroup (v2) or one above it
// has a CPU limit (a cpu.max other than "max").
func cpuLimited() bool {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return false
	}
	_, path, ok := strings.Cut(strings.TrimSpace(string(b)), "0::")
	if !ok {
		return false
	}
	for dir := filepath.Join("/sys/fs/cgroup", path); strings.HasPrefix(dir, "/sys/fs/cgroup"); dir = filepath.Dir(dir) {
		if m, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil && !strings.HasPrefix(string(m), "max") {
			return true
		}
		if dir == "/sys/fs/cgroup" {
			break
		}
	}
	return false
}

// TestEventLoopsByDefault runs nodemesh-proxy (this binary, as main)
// without --event-loops on one CPU and on two (taskset), in a network
// namespace of its own, with Cilium's Prometheus listener example and
// neither GOMAXPROCS nor GODEBUG set, and checks the loops it starts, the
// GOMAXPROCS it runs (the Go collector's gauge on /metrics) and that it
// answers on the example's listener. On one CPU: one loop sharing the
// only P, also with GODEBUG asyncpreemptoff=1 (a shared loop's raw wait
// is bounded). On two: a loop each and a P more; with asyncpreemptoff=1,
// under which loops that keep their P cannot run, it says so and serves
// on goroutines.
func TestEventLoopsByDefault(t *testing.T) {
	if !inOwnNetns(t) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock, _ := serveExampleXDS(t, ctx)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []string
	for cpu := 0; len(cpus) < 2 && cpu < 1024; cpu++ {
		if set.IsSet(cpu) {
			cpus = append(cpus, strconv.Itoa(cpu))
		}
	}
	const loopsLog = `msg="serving plain-TCP HTTP/1.1 on event loops"`
	for _, tc := range []struct {
		name, godebug, log string
		cpus               int
		procs              float64
	}{
		{"one-cpu", "", loopsLog + ` loops=1 gomaxprocs=1`, 1, 1},
		{"one-cpu-asyncpreemptoff", "GODEBUG=asyncpreemptoff=1", loopsLog + ` loops=1 gomaxprocs=1`, 1, 1},
		{"two-cpus", "", loopsLog + ` loops=2 gomaxprocs=3`, 2, 3},
		{"two-cpus-asyncpreemptoff", "GODEBUG=asyncpreemptoff=1", `msg="serving on a goroutine per connection: event loops cannot run here"`, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The proxy writes its log to a file, read here as it grows.
			out, err := os.Create(filepath.Join(t.TempDir(), "proxy.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			if len(cpus) < tc.cpus {
				t.Skipf("%d CPUs to run on, want %d", len(cpus), tc.cpus)
			}
			if tc.cpus > 1 && cpuLimited() {
				t.Skip("a cgroup CPU limit: auto counts loops from it")
			}
			run := mainRun{out: out, prefix: []string{"taskset", "-c", strings.Join(cpus[:tc.cpus], ",")}, env: env}
			if tc.godebug != "" {
				run.env = append(slices.Clone(env), tc.godebug)
			}
			startMain(t, run, "--xds-address", "unix://"+sock, "--node-id", "loops",
				"--admin-address", "127.0.0.1:9901", "--metrics-address", "127.0.0.1:9964", "--log-level", "info")
			if log, err := os.ReadFile(out.Name()); err != nil || !strings.Contains(string(log), tc.log) {
				t.Fatalf("the proxy's log does not say %s (%v):\n%s", tc.log, err, log)
			}
			getExampleMetrics(t, 20)
			fams, err := metrics.Scrape(ctx, &http.Client{Timeout: 5 * time.Second}, "http://127.0.0.1:9964/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := fams.Value("go_sched_gomaxprocs_threads"); !ok || v != tc.procs {
				t.Fatalf("GOMAXPROCS %v (reported: %v), want %v", v, ok, tc.procs)
			}
		})
	}
}
