package api

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/nodemesh/nodemesh/mesh/flow"
)

// FlowQuery selects flows on the agent's /v1/flows.
type FlowQuery struct {
	Filter flow.Filter
	// Limit caps how many stored flows are returned (0: all kept).
	Limit int
	// Follow keeps the response open and streams new matching flows.
	Follow bool
}

// Values encodes the query as URL parameters: verdict, protocol,
// identity, workload, since (RFC 3339), limit, follow.
func (q FlowQuery) Values() url.Values {
	v := url.Values{}
	f := q.Filter
	if f.Verdict != "" {
		v.Set("verdict", f.Verdict)
	}
	if f.Protocol != "" {
		v.Set("protocol", f.Protocol)
	}
	if f.Identity != 0 {
		v.Set("identity", strconv.FormatUint(uint64(f.Identity), 10))
	}
	if f.Workload != "" {
		v.Set("workload", f.Workload)
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	return v
}

// ParseFlowQuery is the inverse of Values (what the agent's handler
// reads); a malformed parameter is an error naming it.
func ParseFlowQuery(v url.Values) (FlowQuery, error) {
	q := FlowQuery{Filter: flow.Filter{Verdict: v.Get("verdict"), Protocol: v.Get("protocol"), Workload: v.Get("workload")}}
	if s := v.Get("identity"); s != "" {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return q, fmt.Errorf("identity: %q is not a number", s)
		}
		q.Filter.Identity = uint32(n)
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("since: %v", err)
		}
		q.Filter.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, fmt.Errorf("limit: %q is not a non-negative number", s)
		}
		q.Limit = n
	}
	q.Follow = v.Get("follow") == "true" || v.Get("follow") == "1"
	return q, nil
}
