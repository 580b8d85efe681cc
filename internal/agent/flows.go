package agent

import (
	"encoding/json"
	"net/http"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

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
	q, err := api.ParseFlowQuery(r.URL.Query())
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
