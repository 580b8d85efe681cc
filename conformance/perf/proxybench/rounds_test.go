package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRoundOrderIsBalanced: over n rounds every target runs once in every
// position; over n rounds for an even n, and 2n for an odd n, every target
// runs right after every other target equally often; and, from four
// targets on, no target keeps its position or its predecessor through all
// of the first three rounds (three targets cannot: see rounds.go).
func TestRoundOrderIsBalanced(t *testing.T) {
	for n := 2; n <= 7; n++ {
		rounds := n
		if n%2 == 1 {
			rounds = 2 * n
		}
		pos := make([][]int, n)   // pos[target][position]
		after := make([][]int, n) // after[prev][next]
		for i := range n {
			pos[i], after[i] = make([]int, n), make([]int, n)
		}
		for r := range rounds {
			order := roundOrder(n, r)
			seen := map[int]bool{}
			for j, x := range order {
				seen[x] = true
				pos[x][j]++
				if j > 0 {
					after[order[j-1]][x]++
				}
			}
			if len(order) != n || len(seen) != n {
				t.Fatalf("n=%d round %d is no permutation: %v", n, r, order)
			}
		}
		first := make([][]int, n) // positions over the first n rounds alone
		for i := range n {
			first[i] = make([]int, n)
		}
		for r := range n {
			for j, x := range roundOrder(n, r) {
				first[x][j]++
			}
		}
		for x := range n {
			for j := range n {
				if first[x][j] != 1 {
					t.Errorf("n=%d: target %d ran %d times at position %d over the first %d rounds, want once", n, x, first[x][j], j, n)
				}
				if want := rounds / n; pos[x][j] != want {
					t.Errorf("n=%d: target %d ran %d times at position %d over %d rounds, want %d", n, x, pos[x][j], j, rounds, want)
				}
			}
			for y := range n {
				if want := rounds / n; x != y && after[x][y] != want {
					t.Errorf("n=%d: %d ran right after %d %d times over %d rounds, want %d", n, y, x, after[x][y], rounds, want)
				}
			}
		}
		if n >= 4 {
			for x := range n {
				var positions, prevs []int
				for r := range 3 {
					order := roundOrder(n, r)
					j := slices.Index(order, x)
					prev := -1
					if j > 0 {
						prev = order[j-1]
					}
					positions, prevs = append(positions, j), append(prevs, prev)
				}
				if positions[0] == positions[1] && positions[1] == positions[2] {
					t.Errorf("n=%d: target %d runs at position %d in each of the first three rounds", n, x, positions[0])
				}
				if prevs[0] == prevs[1] && prevs[1] == prevs[2] {
					t.Errorf("n=%d: target %d runs after %d in each of the first three rounds", n, x, prevs[0])
				}
			}
		}
	}
	if roundOrder(0, 3) != nil {
		t.Error("no targets: want no order")
	}
}

// TestRunRoundsKeepsEachTargetsRuns: each round runs its targets in
// roundOrder, and series i holds target i's runs in round order, and its
// CPU.
func TestRunRoundsKeepsEachTargetsRuns(t *testing.T) {
	const n, rounds = 4, 3
	var calls []int
	all := runRounds(n, rounds, func(i, r int) (result, time.Duration) {
		calls = append(calls, i)
		return result{rate: float64(100*i + r)}, time.Duration(i+1) * time.Millisecond
	})
	if len(calls) != n*rounds || len(all) != n {
		t.Fatalf("%d calls, %d series", len(calls), len(all))
	}
	for r := range rounds {
		if got, want := calls[r*n:(r+1)*n], roundOrder(n, r); !slices.Equal(got, want) {
			t.Errorf("round %d ran %v, want %v", r, got, want)
		}
	}
	for i, s := range all {
		if len(s.runs) != rounds {
			t.Fatalf("target %d: %d runs", i, len(s.runs))
		}
		for r, res := range s.runs {
			if res.rate != float64(100*i+r) {
				t.Errorf("target %d round %d holds the run of rate %v", i, r, res.rate)
			}
		}
		if s.cpu != time.Duration(rounds*(i+1))*time.Millisecond {
			t.Errorf("target %d: CPU %v", i, s.cpu)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"nodemesh-proxy --workers 2":    "nodemesh-proxy-workers-2",
		"nodemesh-proxy GOMAXPROCS=1":   "nodemesh-proxy-GOMAXPROCS-1",
		"nodemesh-proxy baseline build": "nodemesh-proxy-baseline-build",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
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
	if got, want := formatSummary("nginx", 16, summarize(nginx, nil)), "| nginx | 16 | 80 | 1.50ms | 6.00ms | — | — | 100 / 50 / 80 | none |"; got != want {
		t.Errorf("nginx's own row (no ratio, no CPU measured)\n got %s\nwant %s", got, want)
	}
	direct := series{runs: []result{run(200, "0.50ms", "1.00ms"), run(300, "0.40ms", "0.90ms")}}
	if got, want := formatSummary("direct", 16, summarize(direct, nil)), "| direct | 16 | 250 | 450.00us | 950.00us | — | — | 200 / 300 | none |"; got != want {
		t.Errorf("an even number of rounds takes the mean of the middle two\n got %s\nwant %s", got, want)
	}
}

// TestNoRatioWithoutEveryNginxRound: a ratio needs nginx's run of every
// round; an nginx round with error answers (its rate counts them) or a
// missing one leaves the other rows without a ratio.
func TestNoRatioWithoutEveryNginxRound(t *testing.T) {
	ok := func(rate float64) result {
		return result{rate: rate, requests: 1000, p50: "1.00ms", p99: "2.00ms", errors: "none"}
	}
	proxy := series{runs: []result{ok(90), ok(95), ok(100)}}
	badNginx := series{runs: []result{ok(100), {rate: 500, requests: 5000, errors: "Non-2xx or 3xx responses: 9", invalid: true}, ok(100)}}
	if s := summarize(proxy, &badNginx); s.ratio != 0 || strings.Contains(formatSummary("p", 1, s), "×") {
		t.Errorf("ratio %.2f against an nginx series with an invalid round", s.ratio)
	}
	short := series{runs: []result{ok(100), ok(100)}}
	if s := summarize(proxy, &short); s.ratio != 0 {
		t.Errorf("ratio %.2f against an nginx series missing a round", s.ratio)
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
