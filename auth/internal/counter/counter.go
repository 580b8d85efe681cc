// Package counter counts events by a fixed set of reasons, for the auth
// packages' Stats methods (metrics export reads them later). Counting is
// one atomic add; the set of names is fixed at construction, so reading
// concurrently with counting needs no lock.
package counter

import "sync/atomic"

// Set is a fixed set of named counters.
type Set struct {
	m map[string]*atomic.Uint64
}

// New returns counters for the given names and "unknown", all zero.
func New(names ...string) *Set {
	s := &Set{m: make(map[string]*atomic.Uint64, len(names)+1)}
	for _, n := range append(names, "unknown") {
		s.m[n] = new(atomic.Uint64)
	}
	return s
}

// Inc adds one to name's counter. A name outside the set is a programming
// error; it is counted under "unknown" rather than lost or panicking.
func (s *Set) Inc(name string) {
	if c, ok := s.m[name]; ok {
		c.Add(1)
		return
	}
	s.m["unknown"].Add(1)
}

// Snapshot returns every counter's current value.
func (s *Set) Snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(s.m))
	for n, c := range s.m {
		out[n] = c.Load()
	}
	return out
}
