package accesslog

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

func TestBound(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", l7meta.MaxFieldBytes), strings.Repeat("a", l7meta.MaxFieldBytes+1),
		strings.Repeat("€", l7meta.MaxFieldBytes), strings.Repeat("a", 1) + strings.Repeat("€", 2000)} {
		got := Bound(s)
		app := string(AppendBound([]byte("p"), []byte(s)))
		if app != "p"+got {
			t.Errorf("AppendBound %q…, Bound %q…", app[:10], got[:min(len(got), 10)])
		}
		switch {
		case len(s) <= l7meta.MaxFieldBytes && got != s:
			t.Errorf("a string of %d bytes changed", len(s))
		case len(s) > l7meta.MaxFieldBytes && (len(got) > l7meta.MaxFieldBytes || !strings.HasSuffix(got, l7meta.TruncatedMark) ||
			!strings.HasPrefix(s, strings.TrimSuffix(got, l7meta.TruncatedMark)) || !utf8.ValidString(got)):
			t.Errorf("a string of %d bytes became %d bytes ending %q", len(s), len(got), got[len(got)-20:])
		}
	}
	var l []string
	for i := range 40 {
		l = append(l, fmt.Sprint("t", i))
	}
	if got := BoundList(l[:l7meta.MaxListItems]); len(got) != l7meta.MaxListItems || got[l7meta.MaxListItems-1] != "t31" {
		t.Errorf("a list within the bound changed: %q", got)
	}
	got := BoundList(l)
	if len(got) != l7meta.MaxListItems || got[l7meta.MaxListItems-2] != "t30" || got[l7meta.MaxListItems-1] != l7meta.TruncatedMark || l[31] != "t31" {
		t.Errorf("a list of 40: %q (input now %q)", got, l[31])
	}
}

// TestCommonBounded: the L7 fields of a Kafka entry (client ID, topics)
// are cut to the schema's field bounds.
func TestCommonBounded(t *testing.T) {
	var topics []string
	for i := range 1000 {
		topics = append(topics, fmt.Sprint("topic-", i))
	}
	c := Common(time.Now(), time.Millisecond, netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), netip.AddrPort{}, "c",
		map[string]any{l7meta.KafkaClientID: strings.Repeat("c", 1<<20), l7meta.KafkaTopics: topics})
	f := c.GetMetadata().GetFilterMetadata()[l7meta.Namespace].GetFields()
	if id := f[l7meta.KafkaClientID].GetStringValue(); len(id) != l7meta.MaxFieldBytes || !strings.HasSuffix(id, l7meta.TruncatedMark) {
		t.Errorf("client ID of %d bytes", len(id))
	}
	if n := len(f[l7meta.KafkaTopics].GetListValue().GetValues()); n != l7meta.MaxListItems {
		t.Errorf("%d topics", n)
	}
}
