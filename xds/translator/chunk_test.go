package translator

import (
	"testing"
	"unsafe"
)

// TestChunked: a cold translation's values come from chunks (a chunk's
// worth of values per allocation), each a distinct zero value; otherwise
// each value is an allocation of its own.
func TestChunked(t *testing.T) {
	perChunk := chunkBytes / int(unsafe.Sizeof(routeParts{}))
	if perChunk < 16 {
		t.Fatalf("%d route parts per chunk; chunks save nothing", perChunk)
	}
	var c chunked[routeParts]
	seen := map[*routeParts]bool{}
	for range 3 * perChunk {
		p := c.get(true)
		if seen[p] {
			t.Fatal("a value was handed out twice")
		}
		seen[p] = true
		if p.route.Name != "" || p.match.PathSpecifier != nil {
			t.Fatal("a value handed out is not zero")
		}
		p.route.Name = "used"
	}
	n := 10 * perChunk
	cold := testing.AllocsPerRun(5, func() {
		var c chunked[routeParts]
		for range n {
			chunkSink = c.get(true)
		}
	})
	if cold > 10 {
		t.Errorf("%d cold values: %.0f allocations, want at most 10", n, cold)
	}
	warm := testing.AllocsPerRun(5, func() {
		var c chunked[routeParts]
		for range 100 {
			chunkSink = c.get(false)
		}
	})
	if warm != 100 {
		t.Errorf("100 values outside a cold translation: %.0f allocations, want 100", warm)
	}
}

// chunkSink keeps the values TestChunked takes on the heap, as a
// translation's routes are.
var chunkSink *routeParts
