package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

// values encodes the query as URL parameters.
func (q FlowQuery) values() url.Values {
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

func parseFlowQuery(v url.Values) (FlowQuery, error) {
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

// serveFlows answers GET /v1/flows with the matching stored flows, one
// JSON object per line, oldest first; with follow=true it then streams
// new matching flows until the client goes away. Parameters: verdict,
// protocol, identity, workload, since (RFC 3339), limit, follow.
func (a *Agent) serveFlows(w http.ResponseWriter, r *http.Request) {
	store := a.cfg.Flows
	if store == nil {
		http.Error(w, "this agent keeps no flows (no policy listeners)", http.StatusNotFound)
		return
	}
	q, err := parseFlowQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	changed := store.Changed()
	seq := store.Last()
	for _, f := range store.Query(q.Filter, q.Limit) {
		if err := enc.Encode(f); err != nil {
			return
		}
	}
	if !q.Follow {
		return
	}
	flusher, _ := w.(http.Flusher)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
		changed = store.Changed()
		var fresh []flow.Flow
		fresh, seq = store.After(seq, q.Filter)
		for _, f := range fresh {
			if err := enc.Encode(f); err != nil {
				return
			}
		}
	}
}

// FetchFlows asks the agent listening on the Unix socket at path for
// flows and calls fn for each, in order, until the response ends (with
// q.Follow, until ctx ends). fn's error stops the stream.
func FetchFlows(ctx context.Context, path string, q FlowQuery, fn func(flow.Flow) error) error {
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/flows?"+q.values().Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("asking the agent at %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("asking the agent at %s: %s: %s", path, resp.Status, msg)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var f flow.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			return fmt.Errorf("decoding flow: %w", err)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading flows: %w", err)
	}
	return nil
}
