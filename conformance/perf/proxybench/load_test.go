package main

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// TestH2loadErrorsMakeARunInvalid runs the real h2load against an h2c
// server that answers every tenth request with another status: such a run
// is reported as invalid, with the statuses as its errors, and prints no
// rate (h2load counts 3xx as succeeded and its req/s counts every answer,
// so these rates would have passed as throughput). A server that answers
// only 200 gives a valid run.
func TestH2loadErrorsMakeARunInvalid(t *testing.T) {
	cpus := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	for _, tc := range []struct {
		name   string
		status int // every tenth answer; 0: all 200
		want   string
	}{
		{"all 200", 0, ""},
		{"503s", http.StatusServiceUnavailable, "5xx"},
		{"302s", http.StatusFound, "3xx"},
		{"404s", http.StatusNotFound, "4xx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.status != 0 && n.Add(1)%10 == 0 {
					w.Header().Set("Location", "/")
					w.WriteHeader(tc.status)
				}
				w.Write([]byte("hello"))
			})
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })

			r, err := runH2load(t.TempDir(), cpus, "http://"+l.Addr().String()+"/", 2, 4, time.Second)
			if err != nil {
				t.Fatalf("runH2load: %v", err)
			}
			row := formatRow("target", 2, r, 1000, false, time.Second)
			if tc.want == "" {
				if r.invalid || r.rate <= 0 || r.p50 == "" || r.errors != "none" {
					t.Fatalf("a run of 200s: %+v", r)
				}
				return
			}
			if !r.invalid || !strings.Contains(r.errors, tc.want) {
				t.Fatalf("a run with %d answers: %+v, want it invalid with %s in its errors", tc.status, r, tc.want)
			}
			if !strings.Contains(row, "invalid") || strings.Contains(row, fmt.Sprintf("%.0f", r.rate)) || strings.Contains(row, "×") {
				t.Errorf("an invalid run printed as %q", row)
			}
			if r.throughput() != 0 {
				t.Errorf("an invalid run's throughput is %v, want none to compare with", r.throughput())
			}
		})
	}
}

// TestWrkNon2xxMakesARunInvalid is the same for wrk: its Requests/sec
// counts every answer, so a run with non-2xx answers is invalid.
func TestWrkNon2xxMakesARunInvalid(t *testing.T) {
	cpus := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	for _, status := range []int{0, http.StatusBadGateway} {
		var n atomic.Int64
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if status != 0 && n.Add(1)%10 == 0 {
				w.WriteHeader(status)
			}
			w.Write([]byte("hello"))
		})}
		go srv.Serve(l)
		r, err := runWrk(cpus, 1, "http://"+l.Addr().String()+"/", 2, time.Second)
		srv.Close()
		if err != nil {
			t.Fatalf("runWrk: %v", err)
		}
		if got := r.invalid; got != (status != 0) || (status != 0 && !strings.Contains(r.errors, "Non-2xx")) {
			t.Errorf("status %d every tenth answer: %+v", status, r)
		}
	}
}
