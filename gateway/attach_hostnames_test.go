package gateway

import (
	"fmt"
	"testing"
)

// TestRouteHostnamesMany: a route from a file (not held to the CRD's 16
// hostnames) with 50 000 hostnames, many repeated, is deduplicated in
// order (the map path for long lists), as a short one is (the slice path).
func TestRouteHostnamesMany(t *testing.T) {
	var hosts []string
	for i := 0; i < 50000; i++ {
		hosts = append(hosts, fmt.Sprintf("h%d.example.com", i%40000))
	}
	got := routeHostnames("", hosts)
	if len(got) != 40000 || got[0] != "h0.example.com" || got[39999] != "h39999.example.com" {
		t.Fatalf("got %d hostnames (%v … %v)", len(got), got[0], got[len(got)-1])
	}
	if got := routeHostnames("", []string{"a.example.com", "b.example.com", "a.example.com"}); len(got) != 2 {
		t.Fatalf("small route: %v", got)
	}
}
