// Package echo is a small HTTP backend that describes the request it
// received as JSON. The quickstart runs it as its demo backends and the
// end-to-end tests run it in-process, so both see routing, header edits and
// rewrites from the backend's side.
//
// The response body is one JSON object (Response). Two paths are special:
// "/status/<code>" answers with that status code, and any request with the
// header "X-Echo-Delay: <duration>" waits that long first (bounded to 10 s),
// which lets tests hold requests in flight across configuration changes.
package echo

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Response is what the backend answers.
type Response struct {
	Backend string              `json:"backend"`
	Method  string              `json:"method"`
	Host    string              `json:"host"`
	Path    string              `json:"path"`
	Query   string              `json:"query,omitempty"`
	Proto   string              `json:"proto"`
	Headers map[string][]string `json:"headers"`
	// BodyBytes counts the request body bytes received.
	BodyBytes int64 `json:"bodyBytes"`
}

const maxDelay = 10 * time.Second

// Handler returns the echo handler for a backend called name.
func Handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.Header.Get("X-Echo-Delay")); err == nil && d > 0 {
			select {
			case <-time.After(min(d, maxDelay)):
			case <-r.Context().Done():
				return
			}
		}
		n, _ := io.Copy(io.Discard, r.Body)
		status := http.StatusOK
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			if c, err := strconv.Atoi(code); err == nil && c >= 200 && c <= 599 {
				status = c
			}
		}
		resp := Response{
			Backend:   name,
			Method:    r.Method,
			Host:      r.Host,
			Path:      r.URL.Path,
			Query:     r.URL.RawQuery,
			Proto:     r.Proto,
			Headers:   map[string][]string{},
			BodyBytes: n,
		}
		for k, v := range r.Header {
			resp.Headers[strings.ToLower(k)] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Backend", name)
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	})
}
