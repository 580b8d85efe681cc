package hcm

import "testing"

func TestNormalizePath(t *testing.T) {
	cases := []struct {
		in          string
		dots, merge bool
		want        string
		ok          bool
	}{
		{"/a/./b/../c?x=/../", true, false, "/a/c?x=/../", true},
		{"/a//b///c", false, true, "/a/b/c", true},
		{"/a//b/./", true, true, "/a/b/", true},
		{"/..", true, false, "", false},
		{"/a/b/..", true, false, "/a/", true},
		{"/", true, true, "/", true},
	}
	for _, tc := range cases {
		got, ok := normalizePath(nil, []byte(tc.in), tc.dots, tc.merge)
		if ok != tc.ok || (ok && string(got) != tc.want) {
			t.Errorf("%q: got %q %v, want %q %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestStripPort(t *testing.T) {
	for in, want := range map[string]string{"a.example:8080": "a.example", "a.example": "a.example", "[::1]:80": "[::1]", "[::1]": "[::1]", "a:b": "a:b"} {
		if got := string(stripPort([]byte(in))); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
