package hcm

import (
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/proxylib/header"
)

// TestHTTPEntryBounded: a request whose path, authority, headers and
// header records run to the proxy's own limits is logged with every
// string and list within the schema's field bounds, cut visibly.
func TestHTTPEntryBounded(t *testing.T) {
	s := loggedStream(t)
	big := strings.Repeat("x", 50<<10)
	s.rreq.Authority = []byte(big)
	hdrs := header.List{
		{Name: []byte("user-agent"), Value: []byte(big)},
		{Name: []byte("x-request-id"), Value: []byte("id")},
		{Name: []byte("x-forwarded-for"), Value: []byte(strings.Repeat("é", 10<<10))},
	}
	s.headers = &hdrs
	s.policy = big
	for range 100 {
		s.missingHeaders = append(s.missingHeaders, "x-h: "+big)
	}
	e := encodedEntry(t, s, "GET", "/"+big, false)
	r := e.GetRequest()
	for name, v := range map[string]string{"authority": r.GetAuthority(), "path": r.GetPath(), "user agent": r.GetUserAgent(),
		"forwarded for": r.GetForwardedFor(), "policy": e.GetCommonProperties().GetMetadata().GetFilterMetadata()[l7meta.Namespace].GetFields()[l7meta.Policy].GetStringValue()} {
		if len(v) > l7meta.MaxFieldBytes || !strings.HasSuffix(v, l7meta.TruncatedMark) {
			t.Errorf("%s: %d bytes, ends %q", name, len(v), v[max(0, len(v)-20):])
		}
	}
	if r.GetRequestId() != "id" || r.GetScheme() != "http" {
		t.Errorf("short fields changed: %q %q", r.GetRequestId(), r.GetScheme())
	}
	l := e.GetCommonProperties().GetMetadata().GetFilterMetadata()[l7meta.Namespace].GetFields()[l7meta.MissingHeaders].GetListValue().GetValues()
	if len(l) != l7meta.MaxListItems || l[len(l)-1].GetStringValue() != l7meta.TruncatedMark || len(l[0].GetStringValue()) != l7meta.MaxFieldBytes {
		t.Errorf("header records: %d, first of %d bytes", len(l), len(l[0].GetStringValue()))
	}
	if len(s.missingHeaders) != 100 {
		t.Errorf("the stream's own list changed to %d items", len(s.missingHeaders))
	}
}
