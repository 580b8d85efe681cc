package lab

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// exampleDir holds Cilium's CiliumEnvoyConfig examples, which these tests
// apply unchanged.
const exampleDir = "../../examples/envoyconfig"

// binomialBounds returns the range a Binomial(n, p) count falls outside
// of with probability at most alpha (alpha/2 in each tail), from the
// exact distribution: a split that leaves it is not the configured one,
// beyond reasonable doubt, and a correct split fails the test about once
// in 1/alpha runs.
func binomialBounds(n int, p, alpha float64) (lo, hi int) {
	logPMF := func(k int) float64 {
		a, _ := math.Lgamma(float64(n + 1))
		b, _ := math.Lgamma(float64(k + 1))
		c, _ := math.Lgamma(float64(n - k + 1))
		return a - b - c + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
	}
	lo, hi = 0, n
	for k, cum := 0, 0.0; k <= n; k++ {
		if cum += math.Exp(logPMF(k)); cum > alpha/2 {
			lo = k
			break
		}
	}
	for k, cum := n, 0.0; k >= 0; k-- {
		if cum += math.Exp(logPMF(k)); cum > alpha/2 {
			hi = k
			break
		}
	}
	return lo, hi
}

func TestBinomialBounds(t *testing.T) {
	lo, hi := binomialBounds(400, 0.9, 1e-6)
	// Mean 360, standard deviation 6: the bounds sit about 4.9 of them out.
	if lo < 325 || lo > 335 || hi < 385 || hi > 395 {
		t.Fatalf("bounds %d-%d", lo, hi)
	}
	if lo, hi := binomialBounds(10, 0.5, 0.01); lo != 1 || hi != 9 {
		t.Fatalf("bounds for 10 fair coins at 1%%: %d-%d, want 1-9", lo, hi)
	}
}

// TestLabEnvoyConfigExamples applies Cilium's CiliumEnvoyConfig examples
// unchanged (examples/envoyconfig) on two nodes and checks that each
// behaves as its documentation says, with a client on node-1 dialling the
// Services by name: the traffic shift sends 90% of helloworld's requests
// to v1 and 10% to v2; the load-balancing example splits echo-service-1's
// requests 50/50 over both echo Services and rewrites /foo... to /; the
// circuit breaker answers 503 (overflow) to requests beyond 2 in flight
// and 1 pending, and none while requests come one at a time. Splits are
// judged with exact binomial bounds, not a fixed tolerance.
func TestLabEnvoyConfigExamples(t *testing.T) {
	l, s := envoyConfigLab(t)
	ctx := context.Background()
	var paths []string
	for _, f := range []string{"traffic-shifting.yaml", "traffic-management.yaml", "circuit-breaker.yaml", "prometheus-listener.yaml"} {
		paths = append(paths, filepath.Join(exampleDir, f))
	}
	if err := ApplyPaths(ctx, l.Config, paths); err != nil {
		t.Fatal(err)
	}
	// curl runs one curl in the client Pod over one connection for all
	// urls (extra arguments go first) and returns, per response, the
	// status, the backend and the server header.
	type result struct{ code, backend, server string }
	curl := func(args []string, urls ...string) []result {
		argv := append([]string{"curl", "-sS", "--no-progress-meter", "--max-time", "60", "-w", "%{http_code} %header{x-echo-backend} %header{server}\\n"}, args...)
		for _, u := range urls {
			argv = append(argv, "-o", "/dev/null", u)
		}
		full, err := s.ExecArgv(ctx, "default", "client", "", argv)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := run(t, full, "")
		var rs []result
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			for len(f) < 3 {
				f = append(f, "")
			}
			rs = append(rs, result{f[0], f[1], f[2]})
		}
		return rs
	}
	many := func(url string, n int) []string {
		us := make([]string, n)
		for i := range us {
			us[i] = url
		}
		return us
	}
	proxied := func(url string) func() error {
		return func() error {
			r := curl(nil, url)
			if len(r) != 1 || r[0].code != "200" || r[0].server != "envoy" {
				return fmt.Errorf("got %+v, want a 200 through the proxy (server: envoy)", r)
			}
			return nil
		}
	}
	const alpha = 1e-6

	t.Run("traffic shifting 90/10", func(t *testing.T) {
		eventually(t, "helloworld through the proxy", 2*time.Minute, proxied("http://helloworld.default.svc.cluster.local:5000/"))
		const n = 400
		counts := map[string]int{}
		for _, r := range curl(nil, many("http://helloworld.default.svc.cluster.local:5000/", n)...) {
			if r.code != "200" {
				t.Fatalf("response %+v", r)
			}
			counts[r.backend]++
		}
		lo, hi := binomialBounds(n, 0.9, alpha)
		if v1 := counts["helloworld-v1"]; v1+counts["helloworld-v2"] != n || v1 < lo || v1 > hi {
			t.Fatalf("%v of %d requests; want helloworld-v1 within %d-%d (90%%) and the rest on helloworld-v2", counts, n, lo, hi)
		}
		t.Logf("helloworld: %v", counts)
	})

	t.Run("load balancing 50/50 with a rewrite", func(t *testing.T) {
		eventually(t, "echo-service-1 through the proxy", 2*time.Minute, proxied("http://echo-service-1.default.svc.cluster.local:8080/"))
		const n = 200
		counts := map[string]int{}
		for _, r := range curl(nil, many("http://echo-service-1.default.svc.cluster.local:8080/foo", n)...) {
			if r.code != "200" {
				t.Fatalf("response %+v", r)
			}
			counts[r.backend]++
		}
		lo, hi := binomialBounds(n, 0.5, alpha)
		if e1 := counts["echo-1"]; e1+counts["echo-2"] != n || e1 < lo || e1 > hi {
			t.Fatalf("%v of %d requests to echo-service-1; want echo-1 within %d-%d (50%%) and the rest on echo-2", counts, n, lo, hi)
		}
		// The backend sees the rewritten path.
		full, err := s.ExecArgv(ctx, "default", "client", "", []string{"curl", "-sS", "--max-time", "10", "http://echo-service-2.default.svc.cluster.local:8080/foo/bar?x=1"})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := run(t, full, "")
		if !strings.Contains(out, `"path": "/"`) {
			t.Fatalf("/foo/bar reached the backend as:\n%s\nwant path /", out)
		}
		t.Logf("echo-service-1: %v", counts)
	})

	t.Run("prometheus listener", func(t *testing.T) {
		// On every node, port 9090 serves the node proxy's metrics at
		// /metrics, through the proxy's own envoy-admin cluster.
		for _, n := range l.Nodes {
			url := "http://" + netip.AddrPortFrom(n.IP, 9090).String() + "/metrics"
			eventually(t, "the metrics of "+n.Name+"'s proxy on "+url, 2*time.Minute, func() error {
				full, err := s.ExecArgv(ctx, "default", "client", "", []string{"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", url})
				if err != nil {
					return err
				}
				out, _ := run(t, full, "")
				if !strings.HasSuffix(strings.TrimSpace(out), "\n200") || !strings.Contains(out, "nodemesh_proxy_xds_connected 1") {
					return fmt.Errorf("got %.300q, want a 200 with the proxy's metrics", out)
				}
				return nil
			})
		}
		// Its Valid condition says it is accepted.
		dyn, err := dynamic.NewForConfig(l.Config)
		if err != nil {
			t.Fatal(err)
		}
		u, err := dyn.Resource(ciliumv2.CiliumClusterwideEnvoyConfigResource).Get(ctx, "envoy-prometheus-metrics-listener", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		if len(conds) != 1 || conds[0].(map[string]any)["status"] != "True" {
			t.Fatalf("conditions %v, want Valid True", conds)
		}
	})

	t.Run("circuit breaker", func(t *testing.T) {
		eventually(t, "echo-service through the proxy", 2*time.Minute, proxied("http://echo-service.default.svc.cluster.local:8080/"))
		// One at a time: never beyond the limits.
		for _, r := range curl([]string{"-H", "X-Echo-Delay: 20ms"}, many("http://echo-service.default.svc.cluster.local:8080/", 20)...) {
			if r.code != "200" {
				t.Fatalf("sequential request answered %+v", r)
			}
		}
		// Four in flight, each held 300 ms by the backend: beyond
		// max_requests 2 and max_pending_requests 1, some overflow.
		rs := curl([]string{"-Z", "--parallel-max", "4", "--parallel-immediate", "-H", "X-Echo-Delay: 300ms"},
			many("http://echo-service.default.svc.cluster.local:8080/", 20)...)
		codes := map[string]int{}
		for _, r := range rs {
			codes[r.code]++
		}
		if codes["503"] == 0 || codes["200"] == 0 || codes["200"]+codes["503"] != 20 {
			t.Fatalf("status codes %v of 20 requests 4 at a time; want some 200 and some 503 from the circuit breaker", codes)
		}
		t.Logf("circuit breaker: %v", codes)
	})
}

// envoyConfigLab starts a two-node lab with the examples' workloads.
func envoyConfigLab(t *testing.T) (*Lab, *State) {
	t.Helper()
	l := ForTest(t, Options{Nodes: 2})
	if l.Nodes[0].Cgroup == "" {
		if os.Getenv(controlplane.IntegrationEnv) == "1" {
			t.Fatal("no cgroup v2 hierarchy for the lab's Pods: Services cannot be redirected at the socket")
		}
		t.Skip("no cgroup v2 hierarchy on this machine: Services cannot be redirected at the socket")
	}
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/envoyconfig-apps.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := WaitServices(ctx, *s, l.Client, time.Minute); err != nil {
		t.Fatal(err)
	}
	return l, s
}

// grpcClientEnv makes the test binary a gRPC client (TestLabGRPCClient):
// the lab runs it inside the client Pod, in the Pod's cgroup, where the
// datapath redirects its connection.
const grpcClientEnv = "NODEMESH_LAB_GRPC_TARGET"

// TestLabGRPCClient is not a test of its own: with grpcClientEnv set it
// makes 100 unary calls on one connection to that target and prints the
// backend of each (the grpc-echo's echo-backend header).
func TestLabGRPCClient(t *testing.T) {
	target := os.Getenv(grpcClientEnv)
	if target == "" {
		t.Skip("a helper the lab tests run inside a Pod")
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 100 {
		var hdr metadata.MD
		in, out := &rawBytes{b: []byte("\x0a\x02hi")}, &rawBytes{}
		if err := conn.Invoke(ctx, "/lab.Echo/Say", in, out, grpc.ForceCodec(rawCodec{}), grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("backend %s\n", strings.Join(hdr.Get("echo-backend"), ","))
	}
}

type rawBytes struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*rawBytes).b, nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	v.(*rawBytes).b = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestLabServiceLBGRPC annotates the grpc-echo Service (a backend on each
// node) with service.cilium.io/lb-l7: enabled and makes 100 gRPC calls
// over one connection from the client Pod: without the annotation every
// call reaches the backend the connection was made to; with it, the node
// proxy balances each call (round robin), so both backends answer, each
// within binomial bounds of half.
func TestLabServiceLBGRPC(t *testing.T) {
	l, s := envoyConfigLab(t)
	ctx := context.Background()
	svc, err := l.Client.CoreV1().Services("default").Get(ctx, "grpc-echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	calls := func() (map[string]int, error) {
		full, err := s.ExecArgv(ctx, "default", "client", "", []string{"env", grpcClientEnv + "=" + svc.Spec.ClusterIP + ":50051",
			self, "-test.run=^TestLabGRPCClient$", "-test.count=1", "-test.v"})
		if err != nil {
			t.Fatal(err)
		}
		out, code := run(t, full, "")
		if code != 0 {
			return nil, fmt.Errorf("gRPC client failed (%d):\n%s", code, out)
		}
		counts := map[string]int{}
		for _, line := range strings.Split(out, "\n") {
			if b, ok := strings.CutPrefix(line, "backend "); ok {
				counts[b]++
			}
		}
		return counts, nil
	}
	// One connection, one backend: the Service is balanced per
	// connection.
	c, err := calls()
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 1 || c["grpc-1"]+c["grpc-2"] != 100 {
		t.Fatalf("without lb-l7: %v, want all 100 calls on one backend", c)
	}
	svc.Annotations = map[string]string{"service.cilium.io/lb-l7": "enabled"}
	if _, err := l.Client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	lo, hi := binomialBounds(n, 0.5, 1e-6)
	var last map[string]int
	eventually(t, "calls over one connection spread over both backends", 2*time.Minute, func() error {
		if last, err = calls(); err != nil {
			return err
		}
		if last["grpc-1"]+last["grpc-2"] != n || last["grpc-1"] < lo || last["grpc-1"] > hi {
			return fmt.Errorf("%v, want grpc-1 within %d-%d of %d and the rest on grpc-2", last, lo, hi, n)
		}
		return nil
	})
	t.Logf("with lb-l7: %v", last)
}
