package proxylib

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestLoopBudget: a loop per CPU when the process has every CPU it may
// run on and no limit (the P for the rest comes on top); under a CPU limit
// or GOMAXPROCS set by hand the loops and that P fit in the budget.
func TestLoopBudget(t *testing.T) {
	for _, tc := range []struct {
		procs, cpus int
		limit       float64
		want        int
	}{
		{1, 1, 0, 1},    // one CPU: a loop sharing the only P
		{2, 2, 0, 2},    // two CPUs, no limit
		{64, 64, 0, 64}, // a large node
		{3, 2, 0, 3},    // GOMAXPROCS above the CPUs: a loop per P
		{1, 8, 0, 1},    // GOMAXPROCS=1 by hand: still one loop
		{4, 8, 0, 3},    // GOMAXPROCS=4 by hand
		{2, 2, 1, 1},    // a 1-CPU limit on two CPUs: Go says 2 Ps, the limit says 1
		{2, 2, 0.5, 1},  // half a CPU: still one loop
		{2, 8, 1.5, 1},  // 1.5 CPUs: a loop and the P for the rest
		{4, 64, 4, 3},   // a limit of 4
		{64, 64, 64, 63},
		{2, 64, 8, 1}, // GOMAXPROCS=2 by hand under a larger limit
		{512, 512, 0, MaxEventLoops},
		{300, 1024, 0, MaxEventLoops},
	} {
		if got := loopBudget(tc.procs, tc.cpus, tc.limit); got != tc.want {
			t.Errorf("%d Ps on %d CPUs, limit %v: %d loops, want %d", tc.procs, tc.cpus, tc.limit, got, tc.want)
		}
	}
}

// TestProcsForLoops: where the budget is one CPU, one loop shares the only
// P; otherwise every loop keeps a P and the rest of the process has one
// more. GOMAXPROCS is lowered only from the runtime's own choice under a
// limit of one CPU or less, never when set by hand.
func TestProcsForLoops(t *testing.T) {
	for _, tc := range []struct {
		n, procs int
		limit    float64
		byHand   bool
		want     int
	}{
		{1, 1, 0, false, 1},    // one CPU: shared
		{1, 1, 0, true, 1},     // GOMAXPROCS=1 by hand: shared
		{1, 2, 1, false, 1},    // a 1-CPU limit (the runtime's 2 Ps lowered): shared
		{1, 2, 1, true, 2},     // ... but not GOMAXPROCS=2 set by hand
		{1, 2, 0.5, false, 1},  // half a CPU: shared
		{1, 2, 1.5, false, 2},  // 1.5 CPUs: the loop and a P for the rest
		{1, 2, 0, false, 2},    // --event-loops 1 on two CPUs
		{2, 2, 0, false, 3},    // a loop per CPU and a P more
		{2, 1, 0, true, 3},     // --event-loops 2 on GOMAXPROCS=1
		{3, 4, 4, false, 4},    // a limit of 4: three loops, the P for the rest
		{1, 8, 0, false, 8},    // never lowered without a limit
		{1, 4, 0.25, true, 4},  // GOMAXPROCS=4 by hand under a quarter CPU
		{64, 64, 0, false, 65}, // a large node
		{2, 2, 0.5, false, 3},  // two loops asked for under half a CPU: each keeps a P
		{1, 1, 2, true, 1},     // GOMAXPROCS=1 by hand under a larger limit: shared
		{1, 3, 3, false, 3},    // --event-loops 1 under a 3-CPU limit
	} {
		if got := procsForLoops(tc.n, tc.procs, tc.limit, tc.byHand); got != tc.want {
			t.Errorf("%d loops, %d Ps (by hand %v), limit %v: GOMAXPROCS %d, want %d", tc.n, tc.procs, tc.byHand, tc.limit, got, tc.want)
		}
	}
}

// TestCPULimitAt reads a cgroup v2 hierarchy laid out in a directory: the
// tightest cpu.max from the process's cgroup up to the root counts; v1
// lists, "max" and malformed files mean no limit.
func TestCPULimitAt(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fs/cpu.max", "max 100000\n")
	write("fs/kubepods/cpu.max", "400000 100000\n")
	write("fs/kubepods/pod1/cpu.max", "150000 100000\n")
	write("fs/kubepods/pod1/proxy/cpu.max", "max 100000\n")
	write("fs/other/cpu.max", "garbage\n")
	write("fs/zero/cpu.max", "0 100000\n")
	for _, tc := range []struct {
		name, cgroup string
		want         float64
	}{
		{"nearest limit above", "0::/kubepods/pod1/proxy\n", 1.5},
		{"own limit", "0::/kubepods\n", 4},
		{"root", "0::/\n", 0},
		{"malformed", "0::/other\n", 0},
		{"zero quota", "0::/zero\n", 0},
		{"missing directory", "0::/gone/away\n", 0},
		{"escaping path", "0::/../../etc\n", 0},
		{"cgroup v1 only", "12:cpu,cpuacct:/kubepods\n", 0},
		{"hybrid", "12:cpu,cpuacct:/x\n0::/kubepods/pod1\n", 1.5},
	} {
		write("self/"+tc.name, tc.cgroup)
		if got := cpuLimitAt(filepath.Join(root, "fs"), filepath.Join(root, "self", tc.name)); got != tc.want {
			t.Errorf("%s: limit %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := cpuLimitAt(filepath.Join(root, "fs"), filepath.Join(root, "self", "none")); got != 0 {
		t.Errorf("no cgroup list: limit %v, want 0", got)
	}
}

// TestNewClosesLoopsOnError: a New that fails after starting its loops
// (here on the xDS address) stops them; left running, each would hold a
// thread and a P, and with GOMAXPROCS 2 the next proxy's loop would be
// refused.
func TestNewClosesLoopsOnError(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 3 {
		if _, err := New(WithXDSAddress("bogus://x"), WithEventLoops(1), WithLogger(log), WithAdminAddress("")); err == nil {
			t.Fatal("New accepted a bogus xDS address")
		}
	}
	p, err := New(WithXDSAddress("unix:///nonexistent/xds.sock"), WithEventLoops(1), WithLogger(log), WithAdminAddress(""))
	if err != nil {
		t.Fatalf("a proxy with one loop after failed ones: %v", err)
	}
	p.rt.Loops.Close()
}

// TestNewRefusesLoopsWithWorkers: loops live in one process and workers
// are several; Run watches the loops only without workers, so New refuses
// the pair.
func TestNewRefusesLoopsWithWorkers(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cmd := func(int) *exec.Cmd { return exec.Command("true") }
	if _, err := New(WithXDSAddress("unix:///nonexistent/xds.sock"), WithWorkers(2, cmd), WithEventLoops(1), WithLogger(log), WithAdminAddress("")); err == nil {
		t.Fatal("New accepted event loops with workers")
	}
}
