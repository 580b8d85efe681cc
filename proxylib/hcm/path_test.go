package hcm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// pathOpts is one connection manager's path settings.
type pathOpts struct {
	normalize, merge bool
	slashes          resource.EscapedSlashesAction
}

var (
	optNone     = pathOpts{}
	optNorm     = pathOpts{normalize: true}
	optMerge    = pathOpts{merge: true}
	optNormMrg  = pathOpts{normalize: true, merge: true}
	optDefault  = pathOpts{true, true, resource.UnescapeAndRedirect} // what the translator emits
	optReject   = pathOpts{true, true, resource.RejectRequest}
	optForward  = pathOpts{true, true, resource.UnescapeAndForward}
	optFwdOnly  = pathOpts{slashes: resource.UnescapeAndForward}
	optRedirect = pathOpts{slashes: resource.UnescapeAndRedirect}
)

func (o pathOpts) run(dst []byte, in string) ([]byte, pathResult) {
	return normalizePath(dst, []byte(in), o.normalize, o.merge, o.slashes)
}

// pathCases: in → want under opts. want "" with pathReject means 400;
// want == in means the path must come back as the very same bytes.
var pathCases = []struct {
	name string
	in   string
	opts pathOpts
	want string
	res  pathResult
}{
	// Dot segments, literal and escaped (escapes of unreserved characters
	// are decoded first, in either case).
	{"escaped dot-dot", "/public/%2e%2e/admin", optNorm, "/admin", pathForward},
	{"escaped dot-dot upper", "/public/%2E%2E/admin", optNorm, "/admin", pathForward},
	{"mixed escaped dot-dot", "/public/.%2E/admin", optNorm, "/admin", pathForward},
	{"escaped dot", "/a/%2e/b", optNorm, "/a/b", pathForward},
	{"dot then dot-dot", "/public/./../admin", optNorm, "/admin", pathForward},
	{"parent", "/a/b/../c", optNorm, "/a/c", pathForward},
	{"trailing dot-dot", "/a/b/..", optNorm, "/a/", pathForward},
	{"trailing dot", "/a/.", optNorm, "/a/", pathForward},
	{"trailing escaped dot", "/a/%2e", optNorm, "/a/", pathForward},
	{"root dot", "/.", optNorm, "/", pathForward},
	{"dot-dot above root", "/../admin", optNorm, "/admin", pathForward},
	{"only dot-dot", "/..", optNorm, "/", pathForward},
	{"far above root", "/a/../../../b/../..", optNorm, "/", pathForward},
	{"dots in names", "/.a/..b/.../c.", optNorm, "/.a/..b/.../c.", pathForward},
	{"dots in names kept when off", "/a/../b", optMerge, "/a/../b", pathForward},
	{"backslash separator", `/a\b`, optNorm, "/a/b", pathForward},
	{"dot-dot backslash", `/a/..\c`, optNorm, "/c", pathForward},
	{"backslash kept when off", `/a\b`, optNone, `/a\b`, pathForward},

	// The query is never touched.
	{"query left alone", "/a/b?x=/../&y=%2e%2e//", optDefault, "/a/b?x=/../&y=%2e%2e//", pathForward},
	{"query after change", "/a/./b?x=/../", optNorm, "/a/b?x=/../", pathForward},
	{"escaped slash in query", "/a?b=%2F", optReject, "/a?b=%2F", pathForward},
	{"empty query", "/a//b?", optMerge, "/a/b?", pathForward},

	// Percent-encoding: unreserved decoded, the rest kept as sent.
	{"reserved kept", "/a%2Fb%3fc%25d%20e%5c", optNorm, "/a%2Fb%3fc%25d%20e%5c", pathForward},
	{"unreserved decoded", "/%41%7e%2D%5f%30z", optNorm, "/A~-_0z", pathForward},
	{"escape not decoded when off", "/%41", optMerge, "/%41", pathForward},
	{"escaped dots only a name", "/public/%2e%2e%2fadmin", optNormMrg, "/public/..%2fadmin", pathForward},
	{"non-ASCII escapes kept", "/%c0%2e%c0%2e/admin", optNorm, "/%c0.%c0./admin", pathForward},
	{"digit escape", "/xyz%30..//abc", optNormMrg, "/xyz0../abc", pathForward},

	// Malformed escapes and NUL: rejected when normalising.
	{"invalid hex", "/a%zzb", optNorm, "", pathReject},
	{"truncated escape", "/a%2", optNorm, "", pathReject},
	{"lone percent", "/a%", optNorm, "", pathReject},
	{"percent before escape", "/public/%%32%65%%32%65/admin", optNorm, "", pathReject},
	{"invalid kept when off", "/a%zz", optMerge, "/a%zz", pathForward},
	{"escaped NUL", "/a%00b", optNorm, "", pathReject},
	{"NUL byte", "/a\x00b", optNorm, "", pathReject},

	// Bytes a path cannot hold are percent-encoded (HTTP/2 can carry them).
	{"escaped bytes", "/a b\"c<d>e^f`g{h|i}j\x7f", optNorm, "/a%20b%22c%3Cd%3Ee%5Ef%60g%7Bh%7Ci%7Dj%7F", pathForward},
	{"non-ASCII", "/caf\xc3\xa9", optNorm, "/caf%C3%A9", pathForward},
	{"brackets pass", "/a[1]:@!$&'()*+,;=", optNorm, "/a[1]:@!$&'()*+,;=", pathForward},

	// Fragments are refused whatever the settings.
	{"fragment", "/a#b", optNone, "", pathReject},
	{"fragment in query", "/a?b#c", optDefault, "", pathReject},

	// Not origin-form: left alone.
	{"asterisk", "*", optDefault, "*", pathForward},

	// merge_slashes, after dot removal as Envoy does.
	{"double slash", "//admin", optMerge, "/admin", pathForward},
	{"double slash kept when off", "//admin", optNorm, "//admin", pathForward},
	{"slash runs", "/a///b//", optMerge, "/a/b/", pathForward},
	{"dot-dot eats empty segment first", "/a//../b", optNormMrg, "/a/b", pathForward},
	{"dot-dot twice after empty", "/app//../../admin", optNormMrg, "/admin", pathForward},

	// path_with_escaped_slashes_action, each action.
	{"keep", "/public/..%2fadmin", optNormMrg, "/public/..%2fadmin", pathForward},
	{"reject", "/public/..%2fadmin", optReject, "", pathReject},
	{"reject upper", "/public/..%2Fadmin", optReject, "", pathReject},
	{"reject backslash", "/public/..%5Cadmin", optReject, "", pathReject},
	{"redirect", "/public/..%2fadmin", optDefault, "/admin", pathRedirect},
	{"redirect keeps query", "/a%2Fb?c=%2F", optDefault, "/a/b?c=%2F", pathRedirect},
	{"forward", "/public/..%2fadmin", optForward, "/admin", pathForward},
	{"forward upper", "/public/..%2Fadmin", optForward, "/admin", pathForward},
	{"forward backslash", "/public/..%5cadmin", optForward, "/admin", pathForward},
	{"forward without normalize", "/public/..%2fadmin", optFwdOnly, "/public/../admin", pathForward},
	{"forward backslash without normalize", "/a%5Cb", optFwdOnly, `/a\b`, pathForward},
	{"forward without normalize keeps others", "/a%zz%2f%41", optFwdOnly, "/a%zz/%41", pathForward},
	{"redirect without normalize", "/a%2fb", optRedirect, "/a/b", pathRedirect},
	{"percent then escaped slash", "/a/%%2fb", optFwdOnly, "/a/%/b", pathForward},
	{"percent then escaped slash normalised", "/a/%%2fb", optForward, "", pathReject},
	{"mixed slashes forward", `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, optForward, "/app/admin/abc", pathForward},
	{"mixed slashes keep", `/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\abc`, optNormMrg, `/%5Capp%2f%5c%2F..%2fadmin%5c/abc`, pathForward},
	{"no escaped slash, no redirect", "/a/./b", optDefault, "/a/b", pathForward},

	// Already normal: returned as is.
	{"root", "/", optDefault, "/", pathForward},
	{"plain", "/v1/request-landing", optDefault, "/v1/request-landing", pathForward},
	{"plain with escapes", "/a%20b/c%3F?q=1", optDefault, "/a%20b/c%3F?q=1", pathForward},
}

func TestNormalizePath(t *testing.T) {
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			got, res := normalizePath(make([]byte, 0, 64), in, tc.opts.normalize, tc.opts.merge, tc.opts.slashes)
			if res != tc.res {
				t.Fatalf("%q %+v: result %d, want %d (path %q)", tc.in, tc.opts, res, tc.res, got)
			}
			if res == pathReject {
				return
			}
			if string(got) != tc.want {
				t.Fatalf("%q %+v: got %q, want %q", tc.in, tc.opts, got, tc.want)
			}
			same := len(got) > 0 && &got[0] == &in[0]
			if tc.want == tc.in && !same {
				t.Errorf("%q needs no change but was copied", tc.in)
			}
			if tc.want != tc.in && same {
				t.Errorf("%q changed in place", tc.in)
			}
			checkNormalised(t, tc.opts, tc.in, got)
		})
	}
}

// checkNormalised checks properties every normalised path has: a second
// pass changes nothing, no dot segment survives normalize_path, no run of
// slashes survives merge_slashes, and the query is the input's.
func checkNormalised(t *testing.T, o pathOpts, in string, out []byte) {
	t.Helper()
	again, res := o.run(nil, string(out))
	if res != pathForward || !bytes.Equal(again, out) {
		t.Errorf("%q → %q is not stable: second pass gives %q (%d)", in, out, again, res)
	}
	if len(out) == 0 || out[0] != '/' {
		return
	}
	path, query, _ := strings.Cut(string(out), "?")
	_, inQuery, _ := strings.Cut(in, "?")
	if query != inQuery {
		t.Errorf("%q → %q changed the query", in, out)
	}
	if o.normalize {
		for seg := range strings.SplitSeq(path, "/") {
			if seg == "." || seg == ".." {
				t.Errorf("%q → %q keeps a dot segment", in, out)
			}
		}
	}
	if o.merge && strings.Contains(path, "//") {
		t.Errorf("%q → %q keeps a run of slashes", in, out)
	}
}

// TestNormalizePathAllocs: a path that needs no change is neither copied
// nor allocated, and one that changes is built in the (warm) scratch
// buffer without allocating.
func TestNormalizePathAllocs(t *testing.T) {
	clean := []byte("/api/v1/items/42?sort=name&dir=../x")
	dirty := []byte("/api/v1/./items/%2e%2e/items//42?sort=name")
	buf := make([]byte, 0, 256)
	for _, o := range []pathOpts{optNone, optNorm, optMerge, optDefault, optReject, optForward} {
		if n := testing.AllocsPerRun(100, func() {
			out, _ := normalizePath(buf[:0], clean, o.normalize, o.merge, o.slashes)
			if &out[0] != &clean[0] {
				t.Fatal("clean path copied")
			}
		}); n != 0 {
			t.Errorf("%+v: clean path: %v allocations", o, n)
		}
		if n := testing.AllocsPerRun(100, func() { normalizePath(buf[:0], dirty, o.normalize, o.merge, o.slashes) }); n != 0 {
			t.Errorf("%+v: changed path: %v allocations", o, n)
		}
	}
}

// FuzzNormalizePath: any bytes, any settings: no panic, and a forwarded
// or redirected path is stable, has no dot segments or slash runs where
// those are removed, and keeps the query.
func FuzzNormalizePath(f *testing.F) {
	for _, tc := range pathCases {
		f.Add(tc.in, tc.opts.normalize, tc.opts.merge, uint8(tc.opts.slashes))
	}
	f.Fuzz(func(t *testing.T, in string, normalize, merge bool, slashes uint8) {
		o := pathOpts{normalize, merge, resource.EscapedSlashesAction(slashes % 4)}
		out, res := o.run(nil, in)
		if res == pathReject {
			return
		}
		checkNormalised(t, o, in, out)
		if res == pathRedirect && o.slashes != resource.UnescapeAndRedirect {
			t.Errorf("%q: redirect under %+v", in, o)
		}
	})
}

// BenchmarkNormalizePath: the translator's settings on a path that needs
// no change (checked in place) and on one that does (rebuilt in a warm
// scratch buffer).
func BenchmarkNormalizePath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"clean", "/api/v1/namespaces/default/pods/web-7d4b9c/log?follow=true&tailLines=100"},
		{"dirty", "/api/v1/namespaces/./default/pods/%2e%2e/pods//web-7d4b9c/log?follow=true&tailLines=100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := []byte(bc.path)
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				normalizePath(buf[:0], p, true, true, resource.UnescapeAndRedirect)
			}
		})
	}
}
