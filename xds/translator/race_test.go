//go:build race

package translator

// raceEnabled: the race detector allocates for its own bookkeeping, so
// tests that count allocations skip under it.
const raceEnabled = true
