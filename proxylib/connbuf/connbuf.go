package connbuf

import "sync"

// Size is the size of every lent buffer.
const Size = 16 << 10

var pool = sync.Pool{New: func() any { return new([Size]byte) }}

// Get lends a buffer of Size bytes; its contents are unspecified.
func Get() []byte { return pool.Get().(*[Size]byte)[:] }

// Put gives back a buffer Get lent, or any slice of it that starts where
// it starts (an appended-to b[:0] with its capacity unchanged). A slice
// of any other capacity (nil, or a buffer that grew by reallocation) is
// ignored and left to the garbage collector.
func Put(b []byte) {
	if cap(b) != Size {
		return
	}
	pool.Put((*[Size]byte)(b[:Size]))
}
