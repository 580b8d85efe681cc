package proxylib

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupCPULimit is the process's CPU limit in CPUs under cgroup v2 (the
// tightest cpu.max from its cgroup up to the hierarchy's root), or 0 when
// there is none or it cannot be read (cgroup v1, no cgroupfs). Go rounds
// the same limit up, to at least 2, for its default GOMAXPROCS, which then
// cannot tell a limit from the CPU count on a small node.
func cgroupCPULimit() float64 {
	return cpuLimitAt("/sys/fs/cgroup", "/proc/self/cgroup")
}

// cpuLimitAt is cgroupCPULimit with the cgroup v2 mount at root and the
// process's cgroup list in self.
func cpuLimitAt(root, self string) float64 {
	b, err := readSmall(self)
	if err != nil {
		return 0
	}
	var path string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path, found = p, true
		}
	}
	if !found {
		return 0
	}
	root = filepath.Clean(root)
	limit := 0.0
	for dir := filepath.Join(root, filepath.Clean("/"+path)); ; dir = filepath.Dir(dir) {
		if l := readCPUMax(filepath.Join(dir, "cpu.max")); l > 0 && (limit == 0 || l < limit) {
			limit = l
		}
		if dir == root || len(dir) <= len(root) {
			return limit
		}
	}
}

// readCPUMax reads a cgroup v2 cpu.max ("$MAX $PERIOD", MAX "max" for none)
// as CPUs, 0 for no limit or anything else.
func readCPUMax(file string) float64 {
	b, err := readSmall(file)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.ParseInt(f[0], 10, 64)
	period, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return 0
	}
	return float64(quota) / float64(period)
}

// readSmall reads at most 4 KiB of a file: the kernel's cgroup files are
// a line or a few.
func readSmall(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4096))
}

// loopBudget is the loop count for a process the runtime gave procs Ps,
// that may run on cpus CPUs, under a CPU limit of limit CPUs (0: none).
// With every CPU and no limit: a loop each, and the P for the rest of the
// process comes on top. Under a limit, or with fewer Ps than CPUs
// (GOMAXPROCS set by hand), the loops and that one P fit in the budget:
// one loop fewer than it, at least one (where the budget is one CPU, that
// one loop shares the only P: procsForLoops). At most MaxEventLoops.
func loopBudget(procs, cpus int, limit float64) int {
	n := procs
	if limit > 0 {
		n = max(1, min(procs, int(math.Ceil(limit)))-1)
	} else if procs < cpus {
		n = max(1, procs-1)
	}
	return min(n, MaxEventLoops)
}
