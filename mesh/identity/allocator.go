package identity

import (
	"errors"
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// ErrExhausted is returned when an identity range has no free number.
var ErrExhausted = errors.New("identity range exhausted")

// Allocator numbers workload label sets. The Manager calls Allocate from
// Resolve, one call at a time, with every workload label set the snapshot
// needs (each once); a set it held before and does not pass again is no
// longer needed by this Manager. got maps Labels.String() to the number;
// a set that could not be numbered is missing from got and has its reason
// in failed (its Pods then get no identity until a later Resolve). The
// returned maps belong to the caller. Allocate may block on I/O (the
// Kubernetes implementation talks to the API server) and must bound it.
type Allocator interface {
	Allocate(sets []Labels) (got map[string]model.Identity, failed map[string]error)
}

// NewLocalAllocator returns the agent-local workload allocator standalone
// mode uses (the Manager's default): numbers from the workload range in
// order of the sets' canonical text, a released number reused only after
// the range wrapped.
func NewLocalAllocator() Allocator { return localAllocator{newAllocator(MinWorkload, MaxWorkload)} }

type localAllocator struct{ a *allocator }

func (l localAllocator) Allocate(sets []Labels) (map[string]model.Identity, map[string]error) {
	keys := make([]string, len(sets))
	for i, s := range sets {
		keys[i] = s.String()
	}
	got, failed := l.a.sync(keys)
	var errs map[string]error
	for _, k := range failed {
		if errs == nil {
			errs = map[string]error{}
		}
		errs[k] = ErrExhausted
	}
	return got, errs
}

// allocator hands out numbers from [min, max] to label sets. A set keeps
// its number while it is in use; released numbers are only reused after
// the range wrapped around, so a number does not change meaning quickly
// (conntrack and auth entries outlive policy updates).
type allocator struct {
	min, max model.Identity
	next     model.Identity
	byKey    map[string]model.Identity
	used     map[model.Identity]string
}

func newAllocator(min, max model.Identity) *allocator {
	return &allocator{min: min, max: max, next: min, byKey: map[string]model.Identity{}, used: map[model.Identity]string{}}
}

// sync makes the allocator hold exactly keys: existing keys keep their
// numbers, new keys get numbers in sorted order, the rest are released.
// Keys that find no free number are returned in failed.
func (a *allocator) sync(keys []string) (got map[string]model.Identity, failed []string) {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	for k, id := range a.byKey {
		if !want[k] {
			delete(a.byKey, k)
			delete(a.used, id)
		}
	}
	var fresh []string
	for k := range want {
		if _, ok := a.byKey[k]; !ok {
			fresh = append(fresh, k)
		}
	}
	sort.Strings(fresh)
	for _, k := range fresh {
		id, ok := a.take()
		if !ok {
			failed = append(failed, k)
			continue
		}
		a.byKey[k] = id
		a.used[id] = k
	}
	got = make(map[string]model.Identity, len(a.byKey))
	for k, id := range a.byKey {
		got[k] = id
	}
	return got, failed
}

// take returns the next free number at or after a.next, wrapping once.
func (a *allocator) take() (model.Identity, bool) {
	size := uint64(a.max-a.min) + 1
	if uint64(len(a.used)) >= size {
		return 0, false
	}
	for {
		id := a.next
		if a.next == a.max {
			a.next = a.min
		} else {
			a.next++
		}
		if _, busy := a.used[id]; !busy {
			return id, true
		}
	}
}
