package translator

import "unsafe"

// chunkBytes is about how much memory one chunk of a chunked allocator
// holds: large enough that a cold translation at thousands of routes
// takes a few hundred allocations for the messages every route has
// instead of one per message, small enough that what is left unused at
// the end of a translation (at most one partial chunk per kind) does not
// matter.
const chunkBytes = 64 << 10

// chunked hands out zero values of T, taken from chunks of many when the
// translation is cold, one by one otherwise.
//
// Only a cold translation (no previous one to reuse from) takes chunks:
// it builds every route of the snapshot, and a snapshot holds what it
// built until the routes change, so a chunk's values live and die
// together. A later translation builds only what changed, a few values
// among many that live on, and a chunk would keep memory for values that
// are never used; it allocates one by one. A chunk stays allocated while
// any of its values is held, so after the routes of a cold snapshot
// change, at most the memory of that snapshot's messages stays held.
type chunked[T any] struct {
	free []T
}

// get returns a new zero T; cold says whether the translation is cold.
func (c *chunked[T]) get(cold bool) *T {
	if !cold {
		return new(T)
	}
	if len(c.free) == 0 {
		var zero T
		c.free = make([]T, max(1, chunkBytes/int(unsafe.Sizeof(zero))))
	}
	v := &c.free[0]
	c.free = c.free[1:]
	return v
}
