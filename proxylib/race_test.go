//go:build race

package proxylib_test

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put back, on purpose, so pooled objects are allocated again; tests that
// count allocations or live heap skip under it.
const raceEnabled = true
