package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// hopRate is the request rate of BenchmarkPolicyHop: low enough that
// neither path queues, so the latency difference is the hop's own cost.
const hopRate = 1000

// BenchmarkPolicyHop measures what the L7 policy hop adds to a request's
// latency: a client workload sends HTTP/1.1 keep-alive requests to a
// server workload of the test bed at a fixed 1k req/s, first allowed by an
// L3/L4 policy (the packets pass the eBPF datapath, no proxy), then under
// a CiliumNetworkPolicy with an HTTP rule (the datapath redirects each
// connection to nodemesh-proxy, which checks the rule and forwards). Each
// b.N iteration is one request (-benchtime 20000x is 20 s per variant).
// It reports p50/p99/p999 of each variant and, for the L7 one, what it
// adds over direct, each latency counted from the request's scheduled send
// slot (see hopLoad). The server and the client are the same in both, so
// their cost cancels out.
//
// Needs root (network namespaces, eBPF) like the other policy tests.
func BenchmarkPolicyHop(b *testing.B) {
	n := startPolicyNode(b, 2)
	client, web := n.bed.Workloads[0], n.bed.Workloads[1]
	body := bytes.Repeat([]byte("x"), 64)
	serveHTTP(b, web, 80, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	pods := pod("client", client, map[string]string{"app": "client"}) + pod("web", web, map[string]string{"app": "web"})
	l4 := `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-ingress}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
`
	addr := net.JoinHostPort(web.IPv4.String(), "80")
	var direct hopResult
	for _, v := range []struct{ name, policy string }{
		{"direct", l4},
		{"l7-policy", l4 + "      rules:\n        http: [{method: GET, path: \"/bench\"}]\n"},
	} {
		n.apply(pods + v.policy)
		// The L7 variant really goes through the proxy: it denies what the
		// rule does not allow.
		if resp, err := httpClient(client).Get("http://" + addr + "/denied"); err != nil {
			b.Fatal(err)
		} else if resp.Body.Close(); (resp.StatusCode == http.StatusForbidden) != (v.name != "direct") {
			b.Fatalf("%s: GET /denied answered %d", v.name, resp.StatusCode)
		}
		b.Run(v.name, func(b *testing.B) {
			r := runHop(b, func(ctx context.Context) (net.Conn, error) {
				return client.DialWith(ctx, &net.Dialer{}, "tcp", addr)
			}, b.N)
			b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
			b.ReportMetric(float64(r.p999.Microseconds()), "p999-µs")
			b.ReportMetric(float64(r.late), "late-starts")
			if v.name == "direct" {
				direct = r
				return
			}
			if direct.p50 > 0 {
				b.ReportMetric(float64((r.p50 - direct.p50).Microseconds()), "added-p50-µs")
				b.ReportMetric(float64((r.p99 - direct.p99).Microseconds()), "added-p99-µs")
				b.ReportMetric(float64((r.p999 - direct.p999).Microseconds()), "added-p999-µs")
			}
		})
	}
}

type hopResult struct {
	p50, p99, p999 time.Duration
	late           int // requests that started more than 1 ms after their slot
}

// runHop runs hopLoad with the benchmark's settings: 16 keep-alive
// connections at hopRate.
func runHop(b *testing.B, dial func(context.Context) (net.Conn, error), n int) hopResult {
	r, err := hopLoad{dial: dial, n: n, workers: 16, rate: hopRate, started: b.ResetTimer}.run()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// hopLoad sends n GET /bench requests at rate per second, open loop: a
// pacer hands out send slots and the workers' keep-alive connections take
// them, so one slow response does not delay the schedule. A request's
// latency runs from its scheduled slot, not from its write, to the end of
// its response: when every connection is busy, the requests waiting for
// one are late because the path is slow, and timing them from their write
// would hide exactly that wait (coordinated omission).
type hopLoad struct {
	dial    func(context.Context) (net.Conn, error)
	n       int
	workers int
	rate    int
	started func() // called when the first slot is handed out; may be nil
}

func (l hopLoad) run() (hopResult, error) {
	slots := make(chan time.Time, l.n)
	var (
		mu      sync.Mutex
		lats    []time.Duration
		late    int
		firstEr error
		wg      sync.WaitGroup
	)
	req := []byte("GET /bench HTTP/1.1\r\nHost: web\r\nUser-Agent: hop\r\n\r\n")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range l.workers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := l.dial(ctx)
		cancel()
		if err != nil {
			return hopResult{}, fmt.Errorf("connecting: %w", err)
		}
		conns = append(conns, c)
		// One request per connection first: the L7 variant's proxy then
		// holds an upstream connection for each before timing starts.
		if err := hopRequest(c, bufio.NewReader(c), req); err != nil {
			return hopResult{}, fmt.Errorf("first request: %w", err)
		}
	}
	if l.started != nil {
		l.started()
	}
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReaderSize(c, 4096)
			var mine []time.Duration
			myLate := 0
			var err error
			for slot := range slots {
				if time.Since(slot) > time.Millisecond {
					myLate++
				}
				// The slots channel holds every slot, so a worker that
				// stops leaves the pacer unblocked and the rest to others.
				if err = hopRequest(c, br, req); err != nil {
					break
				}
				mine = append(mine, time.Since(slot))
			}
			mu.Lock()
			lats = append(lats, mine...)
			late += myLate
			if err != nil && firstEr == nil {
				firstEr = fmt.Errorf("request: %w", err)
			}
			mu.Unlock()
		}()
	}
	start := time.Now()
	for i := range l.n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(l.rate))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		slots <- at
	}
	close(slots)
	wg.Wait()
	if firstEr != nil {
		return hopResult{}, firstEr
	}
	if len(lats) == 0 {
		return hopResult{}, fmt.Errorf("no request completed")
	}
	slices.Sort(lats)
	q := func(p float64) time.Duration { return lats[min(int(p*float64(len(lats))), len(lats)-1)] }
	return hopResult{p50: q(0.50), p99: q(0.99), p999: q(0.999), late: late}, nil
}

// hopRequest writes req and reads one 200 response with a Content-Length
// body.
func hopRequest(c net.Conn, br *bufio.Reader, req []byte) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	cl := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		const name = "content-length:"
		if len(line) > len(name) && bytes.EqualFold(line[:len(name)], []byte(name)) {
			cl, _ = strconv.Atoi(string(bytes.TrimSpace(line[len(name):])))
		}
	}
	if cl < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err = br.Discard(cl)
	return err
}
