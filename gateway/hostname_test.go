package gateway

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIntersect(t *testing.T) {
	tests := []struct {
		listener, route string
		want            string
		ok              bool
	}{
		// A listener without hostname accepts every route hostname.
		{"", "foo.example.com", "foo.example.com", true},
		{"", "*.example.com", "*.example.com", true},
		{"", anyHost, anyHost, true},
		// A route without hostnames inherits the listener's.
		{"foo.example.com", anyHost, "foo.example.com", true},
		{"*.example.com", anyHost, "*.example.com", true},
		// Exact against exact.
		{"foo.example.com", "foo.example.com", "foo.example.com", true},
		{"foo.example.com", "bar.example.com", "", false},
		// Exact listener, wildcard route.
		{"test.example.com", "*.example.com", "test.example.com", true},
		{"very.specific.com", "*.specific.com", "very.specific.com", true},
		{"a.b.example.com", "*.example.com", "a.b.example.com", true},
		{"example.com", "*.example.com", "", false},
		{"foo.example.net", "*.example.com", "", false},
		// Wildcard listener, exact route.
		{"*.example.com", "test.example.com", "test.example.com", true},
		{"*.example.com", "foo.test.example.com", "foo.test.example.com", true},
		{"*.example.com", "example.com", "", false},
		{"*.example.com", "test.example.net", "", false},
		{"*.wildcard.io", "xwildcard.io", "", false},
		// Wildcard against wildcard: the more specific one.
		{"*.example.com", "*.example.com", "*.example.com", true},
		{"*.example.com", "*.foo.example.com", "*.foo.example.com", true},
		{"*.foo.example.com", "*.example.com", "*.foo.example.com", true},
		{"*.example.com", "*.example.net", "", false},
		{"*.example.com", "*.xexample.com", "", false},
	}
	for _, tc := range tests {
		got, ok := intersect(tc.listener, tc.route)
		if got != tc.want || ok != tc.ok {
			t.Errorf("intersect(%q, %q) = %q, %v; want %q, %v", tc.listener, tc.route, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRouteHostnames(t *testing.T) {
	tests := []struct {
		listener string
		route    []string
		want     []string
	}{
		{"", nil, []string{anyHost}},
		{"foo.example.com", nil, []string{"foo.example.com"}},
		{"*.wildcard.io", []string{"non.matching.com", "wildcard.io", "foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"},
			[]string{"foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"}},
		// Two route hostnames narrowing to the listener's yield it once.
		{"abc.foo.example.com", []string{"*.example.com", "*.foo.example.com", "abc.foo.example.com"}, []string{"abc.foo.example.com"}},
		{"*.foo.example.com", []string{"bar.com", "*.example.com", "*.foo.example.com"}, []string{"*.foo.example.com"}},
		{"very.specific.com", []string{"non.matching.com", "*.nonmatchingwildcard.io"}, nil},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, routeHostnames(tc.listener, tc.route)); diff != "" {
			t.Errorf("routeHostnames(%q, %q) (-want +got):\n%s", tc.listener, tc.route, diff)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		h, d string
		want bool
	}{
		{anyHost, "foo.example.com", true},
		{anyHost, anyHost, true},
		{"foo.example.com", "foo.example.com", true},
		{"foo.example.com", "*.example.com", false},
		{"*.example.com", "foo.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "*.foo.example.com", true},
		{"*.foo.example.com", "*.example.com", false},
		{"*.example.com", anyHost, false},
		{"foo.example.com", anyHost, false},
	}
	for _, tc := range tests {
		if got := covers(tc.h, tc.d); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.h, tc.d, got, tc.want)
		}
	}
}

func TestCoveringHostnames(t *testing.T) {
	tests := []struct {
		d    string
		want []string
	}{
		{"a.b.example.com", []string{"a.b.example.com", "*.b.example.com", "*.example.com", "*.com", anyHost}},
		{"*.b.example.com", []string{"*.b.example.com", "*.example.com", "*.com", anyHost}},
		{"localhost", []string{"localhost", anyHost}},
		{anyHost, []string{anyHost}},
	}
	for _, tc := range tests {
		var got []string
		coveringHostnames(tc.d, func(h string) bool { got = append(got, h); return true })
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("coveringHostnames(%q) (-want +got):\n%s", tc.d, diff)
		}
		// Everything listed must really cover d, most specific first.
		for i, h := range got {
			if !covers(h, tc.d) {
				t.Errorf("coveringHostnames(%q) lists %q, which does not cover it", tc.d, h)
			}
			if i > 0 && !moreSpecific(got[i-1], h) {
				t.Errorf("coveringHostnames(%q): %q listed before less specific... got %q then %q", tc.d, got[i-1], got[i-1], h)
			}
		}
	}
}

func TestListenerOwner(t *testing.T) {
	mk := func(hosts ...string) []*listenerState {
		var ls []*listenerState
		for _, h := range hosts {
			ls = append(ls, &listenerState{name: "l-" + h, hostname: h})
		}
		for _, l := range ls {
			l.peers = ls
		}
		return ls
	}
	ls := mk("", "*.example.com", "*.foo.example.com", "abc.foo.example.com")
	tests := []struct {
		d, want string
	}{
		{"bar.com", ""},
		{anyHost, ""},
		{"bar.example.com", "*.example.com"},
		{"*.example.com", "*.example.com"},
		{"bar.foo.example.com", "*.foo.example.com"},
		{"*.foo.example.com", "*.foo.example.com"},
		{"*.x.foo.example.com", "*.foo.example.com"},
		{"abc.foo.example.com", "abc.foo.example.com"},
	}
	for _, tc := range tests {
		if got := ls[0].owner(tc.d); got == nil || got.hostname != tc.want {
			t.Errorf("owner(%q) = %v, want the listener with hostname %q", tc.d, got, tc.want)
		}
	}
	if got := mk("a.example.com")[0].owner("b.example.com"); got != nil {
		t.Errorf("owner of an uncovered domain = %q, want none", got.hostname)
	}
}

func TestValidHostname(t *testing.T) {
	for _, h := range []string{"example.com", "a-b.example.com", "localhost", "x1.y2"} {
		if !validHostname(h, false) || !validHostname(h, true) {
			t.Errorf("validHostname(%q) = false, want true", h)
		}
	}
	if !validHostname("*.example.com", true) || validHostname("*.example.com", false) {
		t.Error("a wildcard must be valid only where wildcards are allowed")
	}
	for _, h := range []string{"", "*", "Example.com", "-a.com", "a-.com", "a..b", "10.0.0.1", "::1", "a.*.com", "a_b.com", "foo.example.com.", string(make([]byte, 254)),
		"*.10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1", "fe80::1%eth0"} {
		if validHostname(h, true) {
			t.Errorf("validHostname(%q) = true, want false", h)
		}
	}
	// Digits and dots that are no IPv4 address are a DNS name.
	for _, h := range []string{"1.2.3", "10.0.0.256", "1.2.3.4.5", "01.2.3.4"} {
		if !validHostname(h, false) {
			t.Errorf("validHostname(%q) = false, want true", h)
		}
	}
}

// TestValidHostnameAllocatesNothing: every translation checks the
// hostnames of every route and listener, so a DNS name is checked without
// allocating.
func TestValidHostnameAllocatesNothing(t *testing.T) {
	for _, h := range []string{"app7.example.com", "*.example.com"} {
		if n := testing.AllocsPerRun(100, func() { validHostname(h, true) }); n != 0 {
			t.Errorf("validHostname(%q): %v allocations, want 0", h, n)
		}
	}
}
