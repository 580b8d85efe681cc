package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestServeReadsLiveValues: a Func collector's value is read at every
// scrape over a real socket, next to the Go and process collectors.
func TestServeReadsLiveValues(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var n atomic.Uint64
	desc := NewDesc("test_things_total", "Things.", "kind")
	reg := NewRegistry()
	reg.MustRegister(Func{Descs: []*prometheus.Desc{desc}, Read: func(ch chan<- prometheus.Metric) {
		ch <- Counter(desc, float64(n.Load()), "a")
	}})
	l, err := Listen("127.0.0.1:0", false, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, reg, log) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	url := "http://" + l.Addr().String() + "/metrics"
	scrape := func() float64 {
		t.Helper()
		fams, err := Scrape(ctx, http.DefaultClient, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fams.Value("go_goroutines"); !ok {
			t.Fatal("the Go collector is missing")
		}
		if _, ok := fams.Value("process_cpu_seconds_total"); !ok {
			t.Fatal("the process collector is missing")
		}
		v, ok := fams.Value("test_things_total", "kind", "a")
		if !ok {
			t.Fatal("test_things_total is missing")
		}
		return v
	}
	if v := scrape(); v != 0 {
		t.Fatalf("before: %v", v)
	}
	n.Add(3)
	if v := scrape(); v != 3 {
		t.Fatalf("after 3: %v", v)
	}
	// Only GET /metrics is served.
	resp, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

// TestListenDefaultTaken: a taken default address turns metrics off; a
// taken address the user asked for fails; an empty one is off.
func TestListenDefaultTaken(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	if l, err := Listen(addr, true, log); err != nil || l != nil {
		t.Fatalf("default address taken: %v, %v", l, err)
	}
	if _, err := Listen(addr, false, log); err == nil {
		t.Fatal("an explicit address that is taken was accepted")
	}
	if l, err := Listen("", false, log); err != nil || l != nil {
		t.Fatalf("empty address: %v, %v", l, err)
	}
}
