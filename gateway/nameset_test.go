package gateway

import (
	"fmt"
	"testing"
)

// TestNameSet fills a nameSet past its array, as a long list of header
// names does, and requires it to answer as a map does throughout.
func TestNameSet(t *testing.T) {
	var s nameSet[int]
	want := map[string]int{}
	for i := range 40 {
		name := fmt.Sprintf("h%d", i%25) // names come back
		if v, ok := s.get(name); ok != (want[name] != 0) || v != want[name] {
			t.Fatalf("after %d names: get(%q) = %d, %v; want %d", i, name, v, ok, want[name])
		}
		if !s.has(name) {
			s.add(name, i+1)
			want[name] = i + 1
		}
	}
	for name, w := range want {
		if v, ok := s.get(name); !ok || v != w {
			t.Errorf("get(%q) = %d, %v; want %d", name, v, ok, w)
		}
	}
	if s.has("absent") {
		t.Error("has a name never added")
	}
}
