package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is one load run against one target.
type result struct {
	rate     float64
	requests int64
	p50, p99 string
	errors   string
	// invalid marks a run in which a request failed or was answered with
	// anything but 2xx: its rate counts error answers (often cheaper than
	// real ones), so it is no throughput and is printed as invalid.
	invalid bool
}

// throughput is the run's rate, or 0 for an invalid run (nothing to
// compare with).
func (r result) throughput() float64 {
	if r.invalid {
		return 0
	}
	return r.rate
}

// runWrk runs wrk (HTTP/1.1 keep-alive) with threads threads on cpus.
func runWrk(cpus string, threads int, url string, conns int, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", "-c", cpus, "wrk", "-t"+strconv.Itoa(threads),
		"-c"+strconv.Itoa(max(conns, threads)), "-d"+strconv.Itoa(max(int(d.Seconds()), 1))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%v: %s", err, out)
	}
	r := result{errors: "none"}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case len(f) == 2 && f[0] == "Requests/sec:":
			r.rate, _ = strconv.ParseFloat(f[1], 64)
		case len(f) == 2 && f[0] == "50%":
			r.p50 = f[1]
		case len(f) == 2 && f[0] == "99%":
			r.p99 = f[1]
		case strings.HasPrefix(strings.TrimSpace(line), "Non-2xx"), strings.HasPrefix(strings.TrimSpace(line), "Socket errors"):
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	if len(errs) > 0 {
		r.errors = strings.Join(errs, "; ")
		r.invalid = true
	}
	if r.rate == 0 {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	return r, nil
}

// runH2load runs h2load (HTTP/2: h2c with prior knowledge for http://,
// TLS with ALPN h2 for https://) with one thread on cpus: conns
// connections, streams concurrent streams on each. h2load prints no
// percentiles, so the per-request log it writes (start, status, µs to the
// end of the response) gives them.
func runH2load(dir, cpus, url string, conns, streams int, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	logFile := filepath.Join(dir, "h2load.log")
	_ = os.Remove(logFile)
	out, err := exec.CommandContext(ctx, "taskset", "-c", cpus, "h2load", "-t1", "-c"+strconv.Itoa(conns),
		"-m"+strconv.Itoa(streams), "-D", strconv.Itoa(max(int(d.Seconds()), 1)), "--warm-up-time=1",
		"--log-file="+logFile, url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("%v: %s", err, out)
	}
	r, err := parseH2load(string(out))
	if err != nil || r.invalid {
		return r, err
	}
	lat, err := readH2loadLog(logFile)
	if err != nil {
		return r, err
	}
	r.p50, r.p99 = fmtDur(quantile(lat, 0.50)), fmtDur(quantile(lat, 0.99))
	return r, nil
}

// parseH2load reads h2load's summary. h2load counts a 3xx answer as
// succeeded and its rate counts every finished request, so the status
// codes line decides: any answer but 2xx, or any failed, errored or timed
// out request, makes the run invalid.
func parseH2load(out string) (result, error) {
	r := result{errors: "none"}
	var problems []string
	sawRequests, sawStatus := false, false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(strings.ReplaceAll(line, ",", ""))
		switch {
		case len(f) >= 5 && f[0] == "finished" && f[4] == "req/s":
			r.rate, _ = strconv.ParseFloat(f[3], 64)
		case len(f) >= 15 && f[0] == "requests:":
			// requests: T total, S started, D done, OK succeeded, F failed, E errored, O timeout
			sawRequests = true
			r.requests, _ = strconv.ParseInt(f[5], 10, 64) // done
			for i := 9; i+1 < len(f); i += 2 {
				if f[i] != "0" {
					problems = append(problems, f[i]+" "+f[i+1])
				}
			}
		case len(f) >= 2 && f[0] == "status" && f[1] == "codes:":
			// status codes: N 2xx, N 3xx, N 4xx, N 5xx
			sawStatus = true
			for i := 2; i+1 < len(f); i += 2 {
				if f[i+1] != "2xx" && f[i] != "0" {
					problems = append(problems, f[i]+" "+f[i+1])
				}
			}
		}
	}
	if !sawRequests || !sawStatus || r.rate == 0 || r.requests == 0 {
		return r, fmt.Errorf("no finished requests in h2load output: %s", out)
	}
	if len(problems) > 0 {
		r.errors, r.invalid = strings.Join(problems, ", "), true
	}
	return r, nil
}

// readH2loadLog returns the latencies of the successful requests in an
// h2load --log-file.
func readH2loadLog(path string) ([]time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading h2load's request log: %w", err)
	}
	defer f.Close()
	var lat []time.Duration
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) < 3 || fields[1] != "200" {
			continue
		}
		us, err := strconv.ParseInt(strings.TrimSpace(fields[2]), 10, 64)
		if err == nil {
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lat) == 0 {
		return nil, fmt.Errorf("h2load's request log %s holds no successful request", path)
	}
	slices.Sort(lat)
	return lat, nil
}

// quantile of sorted latencies.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}

// fmtDur prints a latency the way wrk does (two decimals, µs/ms/s).
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fus", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// waitH2 waits until one HTTP/2 request to url succeeds under h2load.
func waitH2(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		out, err := exec.Command("h2load", "-n1", "-c1", url).CombinedOutput()
		if err == nil && strings.Contains(string(out), "status codes: 1 2xx") {
			return nil
		}
		last = fmt.Errorf("%v: %s", err, out)
		time.Sleep(200 * time.Millisecond)
	}
	return last
}
