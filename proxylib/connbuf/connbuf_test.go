package connbuf

import (
	"testing"
)

func TestGetPutReusesAndIgnoresForeignBuffers(t *testing.T) {
	b := Get()
	if len(b) != Size || cap(b) != Size {
		t.Fatalf("Get lent len %d cap %d, want %d", len(b), cap(b), Size)
	}
	b[0] = 1
	out := append(b[:0], "head"...)
	Put(out)
	// sync.Pool may drop an item at any time, so reuse is not asserted;
	// what is asserted is that foreign buffers never enter the pool.
	Put(nil)
	Put(make([]byte, 2*Size))
	Put(make([]byte, Size-1, Size-1))
	for range 100 {
		g := Get()
		if cap(g) != Size || len(g) != Size {
			t.Fatalf("Get lent len %d cap %d after foreign Puts, want %d", len(g), cap(g), Size)
		}
	}
}

func TestGetPutAllocatesNothing(t *testing.T) {
	Put(Get())
	if n := testing.AllocsPerRun(1000, func() { Put(Get()) }); n > 0 {
		t.Fatalf("Get and Put allocate %.1f times per round, want none", n)
	}
}
