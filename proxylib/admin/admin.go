// Package admin serves the proxy's small local admin endpoint:
//
//	GET /ready        200 "LIVE" once the initial configuration is applied
//	                  and warm, 503 "PRE_INITIALIZING" before
//	GET /config_dump  JSON: per resource type the applied version, names,
//	                  last update and last NACK; listener states; xDS
//	                  stream counters
//	GET /listeners    JSON: listener name → bound address
//	GET /stats        text, one "name: value" per line, sorted: per cluster
//	                  Envoy's circuit breaker and retry statistics
//	                  cluster.<name>.upstream_cx_overflow,
//	                  upstream_rq_pending_overflow, upstream_rq_retry,
//	                  upstream_rq_retry_overflow, upstream_rq_retry_success,
//	                  upstream_rq_retry_limit_exceeded,
//	                  retry_or_shadow_abandoned (counters) and
//	                  upstream_cx_active, upstream_rq_active,
//	                  upstream_rq_pending_active (gauges)
//	GET /stats/prometheus  the proxy's metrics in Prometheus' text format,
//	                  when the binary provides them (WithPrometheus); Envoy
//	                  serves its statistics at this path, and Cilium's
//	                  envoy-admin cluster routes to it
//
// It only reads state; nothing here changes configuration. Bind it to
// loopback.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/nodemesh/nodemesh/proxylib/config"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
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

// HandlerOption configures Handler.
type HandlerOption func(*http.ServeMux)

// WithPrometheus serves h at /stats/prometheus (nil: not served).
func WithPrometheus(h http.Handler) HandlerOption {
	return func(mux *http.ServeMux) {
		if h != nil {
			mux.Handle("GET /stats/prometheus", h)
		}
	}
}

// Handler returns the admin HTTP handler. stats, listeners and clusters
// may be nil.
func Handler(src Source, stats func() xdsclient.Stats, listeners func() map[string]string,
	clusters func() map[string]upstream.BreakerStats, opts ...HandlerOption) http.Handler {
	mux := http.NewServeMux()
	for _, o := range opts {
		o(mux)
	}
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
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		if clusters != nil {
			for name, s := range clusters() {
				p := "cluster." + name + "."
				lines = append(lines,
					fmt.Sprintf("%supstream_cx_active: %d", p, s.UpstreamCxActive),
					fmt.Sprintf("%supstream_cx_overflow: %d", p, s.UpstreamCxOverflow),
					fmt.Sprintf("%supstream_rq_active: %d", p, s.UpstreamRqActive),
					fmt.Sprintf("%supstream_rq_pending_active: %d", p, s.UpstreamRqPendingActive),
					fmt.Sprintf("%supstream_rq_pending_overflow: %d", p, s.UpstreamRqPendingOverflow),
					fmt.Sprintf("%supstream_rq_retry: %d", p, s.UpstreamRqRetry),
					fmt.Sprintf("%supstream_rq_retry_overflow: %d", p, s.UpstreamRqRetryOverflow),
					fmt.Sprintf("%supstream_rq_retry_success: %d", p, s.UpstreamRqRetrySuccess),
					fmt.Sprintf("%supstream_rq_retry_limit_exceeded: %d", p, s.UpstreamRqRetryLimitExceeded),
					fmt.Sprintf("%sretry_or_shadow_abandoned: %d", p, s.RetryOrShadowAbandoned))
			}
		}
		sort.Strings(lines)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(strings.Join(lines, "\n") + "\n"))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
