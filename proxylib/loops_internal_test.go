package proxylib

import "testing"

// TestEventLoopsFor: a loop per CPU when the process has every CPU it may
// run on (the P for the rest comes on top); under a budget (a cgroup CPU
// limit or GOMAXPROCS set by hand: fewer Ps than CPUs) the loops and that
// P fit in it.
func TestEventLoopsFor(t *testing.T) {
	for _, tc := range []struct{ procs, cpus, want int }{
		{1, 1, 1},    // one CPU: a loop, GOMAXPROCS raised to 2
		{2, 2, 2},    // two CPUs, no limit
		{64, 64, 64}, // a large node
		{3, 2, 3},    // GOMAXPROCS above the CPUs: a loop per P
		{2, 8, 1},    // a limit of 2 CPUs (or of 1: Go rounds up to 2)
		{4, 64, 3},   // a limit of 4
		{1, 8, 1},    // GOMAXPROCS=1 by hand: still one loop
		{512, 512, MaxEventLoops},
		{300, 1024, MaxEventLoops},
	} {
		if got := eventLoopsFor(tc.procs, tc.cpus); got != tc.want {
			t.Errorf("%d Ps on %d CPUs: %d loops, want %d", tc.procs, tc.cpus, got, tc.want)
		}
	}
}
