package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rounds: a load run on a shared virtual machine moves by more than the
// differences between the proxies (two 10 s runs of nginx at 128
// connections read 39 500 and 29 200 req/s, under a minute apart, with
// nothing else running). Each connection count is therefore measured in
// -rounds rounds, every target once per round, in the orders of a
// balanced Latin square (roundOrder): a target's position changes from
// round to round and, with four or more targets, so does the target run
// just before it in each of the first three rounds (three targets need
// six rounds for that: their first three are a rotation). A row prints the
// rate, p50 and p99 each as the median over its rounds (they may come
// from different rounds), the ratio to nginx as the median of the
// per-round ratios (each round's run against the same round's nginx run,
// under a minute apart), CPU per request over all rounds, and every
// round's rate, so the spread is in the table too.

// series is one target's runs at one connection count, one per round.
type series struct {
	runs []result
	cpu  time.Duration // summed over the runs
}

// roundOrder is the order of targets 0..n-1 in round r: row r mod n of a
// Williams design. Over n rounds every target runs once in every
// position, and, for an even n, right after every other target exactly
// once; for an odd n the rounds n..2n-1 run the rows reversed, which
// completes that balance over 2n rounds.
func roundOrder(n, r int) []int {
	if n <= 0 {
		return nil
	}
	out := make([]int, n)
	for j := range n {
		k := 0 // offsets 0, 1, n-1, 2, n-2, ...
		if j%2 == 1 {
			k = (j + 1) / 2
		} else if j > 0 {
			k = n - j/2
		}
		out[j] = (r%n + k) % n
	}
	if n%2 == 1 && (r/n)%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// runRounds runs every target (0..n-1) once per round in roundOrder and
// returns each target's series, its runs in round order. run measures
// target i in round r and returns the result and the CPU it used.
func runRounds(n, rounds int, run func(i, r int) (result, time.Duration)) []series {
	all := make([]series, n)
	for r := range rounds {
		for _, i := range roundOrder(n, r) {
			res, cpu := run(i, r)
			all[i].runs = append(all[i].runs, res)
			all[i].cpu += cpu
		}
	}
	return all
}

// summary is the row a series prints.
type summary struct {
	invalid   bool
	errors    string
	rate      float64 // median over the rounds
	p50, p99  string  // medians over the rounds, formatted as wrk does
	ratio     float64 // median of the per-round ratios to nginx; 0: none
	cpuPerReq float64 // µs per request over every round; 0: not measured
	rates     []float64
}

// summarize reduces a series; ref is nginx's series at the same
// connection count (nil for nginx itself and when nginx is not measured).
// A series with an invalid run is invalid as a whole: its rates count
// error answers.
func summarize(s series, ref *series) summary {
	var out summary
	var errs []string
	var p50s, p99s []time.Duration
	var requests int64
	for _, r := range s.runs {
		if r.invalid {
			out.invalid = true
			errs = append(errs, r.errors)
			continue
		}
		out.rates = append(out.rates, r.rate)
		p50s, p99s = append(p50s, parseWrkDur(r.p50)), append(p99s, parseWrkDur(r.p99))
		requests += r.requests
	}
	if out.invalid || len(s.runs) == 0 {
		out.invalid, out.errors = true, strings.Join(errs, "; ")
		return out
	}
	out.errors = "none"
	out.rate = median(out.rates)
	out.p50, out.p99 = fmtDur(median(p50s)), fmtDur(median(p99s))
	if s.cpu > 0 && requests > 0 {
		out.cpuPerReq = float64(s.cpu.Microseconds()) / float64(requests)
	}
	if ref != nil && len(ref.runs) == len(s.runs) {
		var ratios []float64
		for i, r := range s.runs {
			if base := ref.runs[i].throughput(); base > 0 {
				ratios = append(ratios, r.rate/base)
			}
		}
		if len(ratios) == len(s.runs) {
			out.ratio = median(ratios)
		}
	}
	return out
}

// formatSummary prints a summary as a table row (see wrkTable's header).
func formatSummary(name string, conns int, s summary) string {
	if s.invalid {
		return fmt.Sprintf("| %s | %d | **invalid** | — | — | — | — | — | %s |", name, conns, s.errors)
	}
	ratio, cpu := "—", "—"
	if s.ratio > 0 {
		ratio = fmt.Sprintf("%.2f×", s.ratio)
	}
	if s.cpuPerReq > 0 {
		cpu = fmt.Sprintf("%.1f", s.cpuPerReq)
	}
	rates := make([]string, len(s.rates))
	for i, r := range s.rates {
		rates[i] = strconv.FormatFloat(r, 'f', 0, 64)
	}
	return fmt.Sprintf("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s |",
		name, conns, s.rate, s.p50, s.p99, ratio, cpu, strings.Join(rates, " / "), s.errors)
}

// median of values (the mean of the middle two for an even count).
func median[T float64 | time.Duration](values []T) T {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// parseWrkDur reads a latency as wrk prints it ("25.00us", "1.11ms",
// "2.00s", "3.00m"); 0 when it is not one.
func parseWrkDur(s string) time.Duration {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 {
				return 0
			}
			return time.Duration(v * float64(u.unit))
		}
	}
	return 0
}
