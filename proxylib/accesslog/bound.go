package accesslog

import (
	"strings"
	"unicode/utf8"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// Bound returns s cut to l7meta.MaxFieldBytes, ending with
// l7meta.TruncatedMark when cut (on a rune boundary). A cut string is a
// copy, so an entry queued for sending does not hold the original.
func Bound(s string) string {
	if len(s) <= l7meta.MaxFieldBytes {
		return s
	}
	return strings.Clone(s[:runeCut(s, l7meta.MaxFieldBytes-len(l7meta.TruncatedMark))]) + l7meta.TruncatedMark
}

// AppendBound appends b to dst as Bound would cut it.
func AppendBound(dst, b []byte) []byte {
	if len(b) <= l7meta.MaxFieldBytes {
		return append(dst, b...)
	}
	n := l7meta.MaxFieldBytes - len(l7meta.TruncatedMark)
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return append(append(dst, b[:n]...), l7meta.TruncatedMark...)
}

// BoundList returns l with every item Bound and at most
// l7meta.MaxListItems items, the last being l7meta.TruncatedMark when
// items were dropped. l is not modified; it is returned as is when
// nothing needs cutting.
func BoundList(l []string) []string {
	ok := len(l) <= l7meta.MaxListItems
	for i := 0; ok && i < len(l); i++ {
		ok = len(l[i]) <= l7meta.MaxFieldBytes
	}
	if ok {
		return l
	}
	n := min(len(l), l7meta.MaxListItems)
	out := make([]string, 0, n)
	for _, s := range l[:n] {
		out = append(out, Bound(s))
	}
	if len(l) > l7meta.MaxListItems {
		out[n-1] = l7meta.TruncatedMark
	}
	return out
}

// runeCut is the largest n' <= n that does not split a rune of s.
func runeCut(s string, n int) int {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
