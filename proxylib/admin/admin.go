// Package admin serves the proxy's small local admin endpoint:
//
//	GET /ready        200 "LIVE" once the initial configuration is applied
//	                  and warm, 503 "PRE_INITIALIZING" before
//	GET /config_dump  JSON: per resource type the applied version, names,
//	                  last update and last NACK; listener states; xDS
//	                  stream counters
//	GET /listeners    JSON: listener name → bound address
//
// It only reads state; nothing here changes configuration. Bind it to
// loopback.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/nodemesh/nodemesh/proxylib/config"
	"github.com/nodemesh/nodemesh/proxylib/xdsclient"
)

// Source is what the admin endpoint reads.
type Source interface {
	Status() config.Status
	Ready() bool
}

// Dump is the /config_dump document.
type Dump struct {
	config.Status
	XDS xdsclient.Stats `json:"xds"`
}

// Handler returns the admin HTTP handler. stats and listeners may be nil.
func Handler(src Source, stats func() xdsclient.Stats, listeners func() map[string]string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if src.Ready() {
			_, _ = w.Write([]byte("LIVE\n"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("PRE_INITIALIZING\n"))
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		d := Dump{Status: src.Status()}
		if stats != nil {
			d.XDS = stats()
		}
		writeJSON(w, d)
	})
	mux.HandleFunc("GET /listeners", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]string{}
		if listeners != nil {
			m = listeners()
		}
		writeJSON(w, m)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
