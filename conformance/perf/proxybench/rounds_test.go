package main

import (
	"strings"
	"testing"
	"time"
)

func TestRoundOrderRotates(t *testing.T) {
	targets := []string{"direct", "nginx", "haproxy", "nodemesh"}
	firsts := map[string]bool{}
	for r := range len(targets) {
		order := roundOrder(targets, r)
		if len(order) != len(targets) {
			t.Fatalf("round %d: %v", r, order)
		}
		seen := map[string]bool{}
		for _, o := range order {
			seen[o] = true
		}
		if len(seen) != len(targets) {
			t.Fatalf("round %d runs a target twice or misses one: %v", r, order)
		}
		firsts[order[0]] = true
	}
	if len(firsts) != len(targets) {
		t.Errorf("over %d rounds every target should run first once; first ones: %v", len(targets), firsts)
	}
	if got := roundOrder(targets, 5); strings.Join(got, ",") != "nginx,haproxy,nodemesh,direct" {
		t.Errorf("round 5: %v", got)
	}
	if roundOrder([]string(nil), 3) != nil {
		t.Error("no targets: want no order")
	}
}

func TestParseWrkDur(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"25.00us": 25 * time.Microsecond,
		"1.11ms":  1110 * time.Microsecond,
		"2.00s":   2 * time.Second,
		"1.50m":   90 * time.Second,
		"":        0,
		"fast":    0,
		"-1.00ms": 0,
	} {
		if got := parseWrkDur(in); got != want {
			t.Errorf("parseWrkDur(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestSummarizeTakesMediansAndPairsRatios: the rate, p50 and p99 of a row
// are each the median over the rounds, and the ratio to nginx is the
// median of the ratios within each round, not the ratio of the medians.
func TestSummarizeTakesMediansAndPairsRatios(t *testing.T) {
	run := func(rate float64, p50, p99 string) result {
		return result{rate: rate, requests: int64(rate) * 10, p50: p50, p99: p99, errors: "none"}
	}
	nginx := series{runs: []result{run(100, "1.00ms", "5.00ms"), run(50, "2.00ms", "9.00ms"), run(80, "1.50ms", "6.00ms")}}
	proxy := series{runs: []result{run(90, "1.10ms", "4.00ms"), run(60, "1.90ms", "8.00ms"), run(84, "1.40ms", "7.00ms")},
		cpu: 2340 * time.Microsecond * 10} // 23 400 µs over 2 340 requests
	s := summarize(proxy, &nginx)
	if s.invalid || s.rate != 84 || s.p50 != "1.40ms" || s.p99 != "7.00ms" {
		t.Fatalf("summary %+v", s)
	}
	// Per-round ratios 0.90, 1.20, 1.05: median 1.05.
	if s.ratio < 1.049 || s.ratio > 1.051 {
		t.Errorf("ratio %.3f, want 1.05", s.ratio)
	}
	if s.cpuPerReq < 9.99 || s.cpuPerReq > 10.01 {
		t.Errorf("CPU per request %.2f µs, want 10", s.cpuPerReq)
	}
	proxy.runs[1].rate = 40 // per-round ratios 0.90, 0.80, 1.05: median 0.90; medians' ratio 84/80
	if s := summarize(proxy, &nginx); s.ratio < 0.899 || s.ratio > 0.901 {
		t.Errorf("ratio %.3f, want the per-round median 0.90", s.ratio)
	}
	row := formatSummary("nodemesh-proxy", 16, summarize(proxy, &nginx))
	if !strings.Contains(row, "| 90 / 40 / 84 |") || !strings.Contains(row, "0.90×") {
		t.Errorf("row %q should list every round's rate and the ratio", row)
	}
	if s := summarize(nginx, nil); s.ratio != 0 || !strings.Contains(formatSummary("nginx", 16, s), "| — |") {
		t.Errorf("nginx's own row has a ratio: %+v", s)
	}
}

// TestSummarizeInvalidRoundInvalidatesRow: a round with error answers
// makes the whole row invalid, without a rate.
func TestSummarizeInvalidRoundInvalidatesRow(t *testing.T) {
	s := series{runs: []result{
		{rate: 100, requests: 1000, p50: "1.00ms", p99: "2.00ms", errors: "none"},
		{rate: 300, requests: 3000, errors: "Non-2xx or 3xx responses: 7", invalid: true},
	}}
	sum := summarize(s, nil)
	row := formatSummary("nodemesh-proxy", 16, sum)
	if !sum.invalid || !strings.Contains(row, "**invalid**") || !strings.Contains(row, "Non-2xx") || strings.Contains(row, "300") {
		t.Errorf("row %q from %+v", row, sum)
	}
	if !summarize(series{}, nil).invalid {
		t.Error("a series without runs must not print a rate")
	}
}
