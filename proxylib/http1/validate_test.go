package http1

import "testing"

func TestValidHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"example.com", true},
		{"example.com:8080", true},
		{"a-b_c.~x", true},
		{"xn--bcher-kva.example", true},
		{"10.1.2.3:65535", true},
		{"[::1]", true},
		{"[::1]:443", true},
		{"[2001:db8::1.2.3.4]", true},
		{"a%20b", true},
		{"", false},
		{":80", false},
		{"example.com:", false},
		{"example.com:65536", false},
		{"example.com:123456", false},
		{"example.com:8o", false},
		{"user@example.com", false},
		{"a b", false},
		{"a/b", false},
		{"a\r\nb", false},
		{"a%2", false},
		{"a%zz", false},
		{"[::1", false},
		{"[::1]x", false},
		{"[fe80::1%25eth0]", false},
		{"[]", false},
		{"[v1.x]", false},
		{"exa\x00mple", false},
	} {
		if got := ValidHost(tc.host); got != tc.ok {
			t.Errorf("ValidHost(%q) = %v, want %v", tc.host, got, tc.ok)
		}
		if got := ValidHost([]byte(tc.host)); got != tc.ok {
			t.Errorf("ValidHost([]byte(%q)) = %v, want %v", tc.host, got, tc.ok)
		}
	}
}

// Every target ValidOriginForm accepts is one ParseRequest accepts, and
// the other way round for origin-form targets.
func TestValidOriginFormAgreesWithParser(t *testing.T) {
	for _, p := range []string{"/", "/a?b=c", "/%20", "/a b", "/a#b", "/\x7f", "/\x80", "a", "", "/a\tb"} {
		var r Request
		err := ParseRequest([]byte("GET "+p+" HTTP/1.1\r\nhost: x\r\n\r\n"), &r)
		if ok := ValidOriginForm(p); ok != (err == nil && len(p) > 0 && p[0] == '/') {
			t.Errorf("ValidOriginForm(%q) = %v, parser: %v", p, ok, err)
		}
	}
}
