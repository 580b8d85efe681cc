package accesslog

import (
	"strings"
	"unicode/utf8"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// Bounds on what one entry may bring into the agent (the schema's,
// package l7meta). Every string an entry carries ends up in the flow
// store's ring, in JSON flow logs and in Hubble responses, so a client of
// the socket must not be able to make one flow cost more than these.
const (
	// MaxFieldBytes bounds one string of a flow (a path, an authority, a
	// policy name, a header record, a topic, the node ID, the log name).
	// The proxy's own header limits (60 KiB of request head) would allow
	// more; a flow keeps a readable prefix.
	MaxFieldBytes = l7meta.MaxFieldBytes
	// MaxListItems bounds a list (header records, Kafka topics),
	// counting the marker item that says more were dropped.
	MaxListItems = l7meta.MaxListItems
	// MaxEntryBytes bounds the strings of one entry together. Fields are
	// taken in a fixed order; once the budget is spent the remaining ones
	// are cut to the marker, or to nothing when not even that fits.
	MaxEntryBytes = l7meta.MaxEntryBytes
)

// TruncatedMark ends every string that was cut and is the last item of
// every list that was shortened.
const TruncatedMark = l7meta.TruncatedMark

// budget caps the strings of one entry.
type budget struct {
	left      int
	truncated bool
}

// ownNames is room kept for the protocol and verdict names the
// conversion fills in itself when an entry has none ("kafka",
// "FORWARDED": 14 bytes at most).
const ownNames = 16

func newBudget() budget { return budget{left: MaxEntryBytes - ownNames} }

// str returns s within MaxFieldBytes and what is left of the entry's
// budget, cut at a rune boundary and marked when cut. A cut string is
// copied, so the decoded message it came from can be freed.
func (b *budget) str(s string) string {
	limit := min(MaxFieldBytes, b.left)
	if len(s) <= limit {
		b.left -= len(s)
		return s
	}
	b.truncated = true
	if limit < len(TruncatedMark) {
		return ""
	}
	out := cut(s, limit-len(TruncatedMark)) + TruncatedMark
	b.left -= len(out)
	return out
}

// list bounds each item of l and their number; l is modified. The
// marker item of a shortened list is paid for first, so it shows even
// when the items before it exhaust the budget.
func (b *budget) list(l []string) []string {
	mark := false
	if len(l) > MaxListItems {
		b.truncated = true
		l = l[:MaxListItems-1]
		if b.left >= len(TruncatedMark) {
			b.left -= len(TruncatedMark)
			mark = true
		}
	}
	for i := range l {
		l[i] = b.str(l[i])
	}
	if mark {
		l = append(l, TruncatedMark)
	}
	return l
}

// capField bounds a string outside an entry's budget (node ID, log name).
func capField(s string) (string, bool) {
	if len(s) <= MaxFieldBytes {
		return s, false
	}
	return cut(s, MaxFieldBytes-len(TruncatedMark)) + TruncatedMark, true
}

// cut copies the longest prefix of s of at most n bytes that does not
// split a rune (decoded strings are valid UTF-8, and Hubble's protobuf
// encoding refuses anything else).
func cut(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n])
}
