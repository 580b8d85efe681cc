//go:build race

package tcpproxy

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put back, on purpose; tests that count allocations skip under it.
const raceEnabled = true
