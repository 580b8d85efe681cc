package hcm

import "testing"

func TestStripPort(t *testing.T) {
	for in, want := range map[string]string{"a.example:8080": "a.example", "a.example": "a.example", "[::1]:80": "[::1]", "[::1]": "[::1]", "a:b": "a:b"} {
		if got := string(stripPort([]byte(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
