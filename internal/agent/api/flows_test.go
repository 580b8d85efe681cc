package api

import (
	"net/url"
	"testing"
)

// FuzzParseFlowQuery reads /v1/flows parameters as any client of the
// agent's socket may send them. Properties: no panic; an accepted query
// encodes (Values) to parameters that parse back to the same query, so
// what the agent evaluates is what the CLI asked for.
func FuzzParseFlowQuery(f *testing.F) {
	for _, s := range []string{
		"", "verdict=DROPPED&protocol=http&identity=256&workload=default%2Fxwing&since=2026-01-02T03%3A04%3A05.5Z&limit=10&follow=true",
		"identity=4294967296", "limit=-1", "limit=%2B5", "since=2026-01-02T03:04:05%2B01:00", "since=yesterday", "follow=1",
		"verdict=a&verdict=b", "workload=%ff", "identity=0&limit=0&follow=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseFlowQuery(v)
		if err != nil {
			return
		}
		if q.Limit < 0 {
			t.Fatalf("accepted limit %d", q.Limit)
		}
		back, err := ParseFlowQuery(q.Values())
		if err != nil {
			t.Fatalf("%q parsed, its encoding %q does not: %v", raw, q.Values().Encode(), err)
		}
		if back.Filter.Verdict != q.Filter.Verdict || back.Filter.Protocol != q.Filter.Protocol || back.Filter.Workload != q.Filter.Workload ||
			back.Filter.Identity != q.Filter.Identity || !back.Filter.Since.Equal(q.Filter.Since) || back.Limit != q.Limit || back.Follow != q.Follow {
			t.Fatalf("%q: %+v, encoded %q: %+v", raw, q, q.Values().Encode(), back)
		}
	})
}
