package translator

import "testing"

func TestHostLiteral(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app.example.com", "app.example.com"},
		{"App.Example.COM", "app.example.com"},
		{"*.Example.com", "*.example.com"},
		{"10.0.0.1", "10.0.0.1"},
		{"2001:DB8::1", "[2001:db8::1]"},
		{"::ffff:10.0.0.1", "[::ffff:10.0.0.1]"},
		{"fe80::1%eth0", "[fe80::1%eth0]"},
		{"not:an:address", "not:an:address"},
	} {
		if got := hostLiteral(tc.in); got != tc.want {
			t.Errorf("hostLiteral(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestHostLiteralDNSNameAllocatesNothing: every translation writes the
// domains of every virtual host, so a lower-case DNS name is returned as
// it is, without trying (and failing, with an allocated error) to parse
// it as an address.
func TestHostLiteralDNSNameAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { hostLiteral("app7.example.com") }); n != 0 {
		t.Errorf("hostLiteral of a lower-case DNS name: %v allocations, want 0", n)
	}
}
