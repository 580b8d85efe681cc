package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/internal/hubble"
	"github.com/nodemesh/nodemesh/internal/metrics"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
)

// Metrics addresses the binaries default to (internal/metrics), each on
// the loopback of its namespace: the node's for agent and proxy, the
// control plane's for the controller.
const (
	agentMetrics      = "127.0.0.1:9962"
	controllerMetrics = "127.0.0.1:9963"
	proxyMetrics      = "127.0.0.1:9964"
)

// TestLabHubbleAndMetrics runs Cilium's Star Wars scenario on two nodes
// in Kubernetes mode (ships on node-1, deathstars on node-2, the L3/L4/L7
// policy applied through the API server) and watches it the way a Cilium
// user would: the real hubble CLI against node-2's agent —
// `hubble observe --follow`, started before the traffic, and `hubble
// observe --protocol http --verdict DROPPED` after it — shows the denied
// PUT /v1/exhaust-port with both Pods' names and the identities the
// cluster gave them (their CiliumIdentity objects), and the datapath's
// L3/L4 drop of the xwing; and the /metrics of node-2's agent and proxy
// and of the controller, at their default addresses, count exactly that
// traffic.
func TestLabHubbleAndMetrics(t *testing.T) {
	hubbleBin := hubble.ForTest(t)
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/starwars-placed.yaml", "../../examples/starwars/sw_l3_l4_l7_policy.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	node2 := l.Nodes[1]
	sock := "unix://" + filepath.Join(node2.StateDir, "hubble.sock")

	// Follow node-2's flows from before the traffic.
	fctx, fcancel := context.WithCancel(ctx)
	follow := exec.CommandContext(fctx, hubbleBin, "observe", "--follow", "-o", "json", "--server", sock)
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var followed []*flowpb.Flow
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readFlows(t, stdout, func(f *flowpb.Flow) {
			mu.Lock()
			followed = append(followed, f)
			mu.Unlock()
		})
	}()
	defer func() {
		fcancel()
		<-readDone
		_ = follow.Wait()
	}()

	curl := func(ship, method, path string, extra ...string) (string, int) {
		argv, err := s.ExecArgv(ctx, "default", ship, "", append([]string{"curl", "-sS", "--max-time", "3", "-X" + method,
			"http://deathstar.default.svc.cluster.local" + path}, extra...))
		if err != nil {
			t.Fatal(err)
		}
		return run(t, argv, "")
	}
	const denied = "Access denied\r\n403"
	exhaust := func() (string, int) { return curl("tiefighter", "PUT", "/v1/exhaust-port", "-w", "%{http_code}") }
	eventually(t, "the exhaust port is denied", time.Minute, func() error {
		if out, code := exhaust(); code != 0 || out != denied {
			return fmt.Errorf("exit %d: %q", code, out)
		}
		return nil
	})
	eventually(t, "tiefighter lands", time.Minute, func() error {
		if out, code := curl("tiefighter", "POST", "/v1/request-landing"); code != 0 || !strings.Contains(out, "Ship landed") {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})

	// The counters before the measured traffic, once the agent has the
	// access-log entries of every denial the proxy counted (they reach it
	// a moment after the response).
	scrape := scraper(t, l)
	var agent0, proxy0 metrics.Families
	eventually(t, "node-2's agent has every denial its proxy counted", 30*time.Second, func() error {
		agent0, proxy0 = scrape(node2.Name, agentMetrics), scrape(node2.Name, proxyMetrics)
		a, _ := agent0.Value("nodemesh_policy_l7_total", "proxy_type", "http", "rule", "denied")
		p, _ := proxy0.Value("nodemesh_proxy_http_requests_total", "code_class", "4xx", "verdict", "dropped")
		if a == 0 || a != p {
			return fmt.Errorf("agent counted %v denials, proxy %v", a, p)
		}
		return nil
	})

	const puts = 3
	for range puts {
		if out, code := exhaust(); code != 0 || out != denied {
			t.Fatalf("PUT /v1/exhaust-port: exit %d: %q", code, out)
		}
	}
	if out, code := curl("xwing", "POST", "/v1/request-landing"); code != 28 {
		t.Fatalf("xwing: exit %d (want 28, a connect timeout): %s", code, out)
	}

	// Identities as the cluster numbered them.
	ids := identities(t, l)
	tiefighterID, deathstarID := ids["tiefighter"], ids["deathstar"]
	if tiefighterID < 256 || deathstarID < 256 || ids["xwing"] < 256 {
		t.Fatalf("CiliumIdentities: %v", ids)
	}
	isDeniedExhaust := func(f *flowpb.Flow) bool {
		h := f.GetL7().GetHttp()
		return f.GetVerdict() == flowpb.Verdict_DROPPED && h.GetMethod() == "PUT" && strings.HasSuffix(h.GetUrl(), "/v1/exhaust-port") &&
			h.GetCode() == 403 && f.GetSource().GetNamespace() == "default" && f.GetSource().GetPodName() == "tiefighter" &&
			strings.HasPrefix(f.GetDestination().GetPodName(), "deathstar-") &&
			f.GetSource().GetIdentity() == tiefighterID && f.GetDestination().GetIdentity() == deathstarID
	}
	isXwingDrop := func(f *flowpb.Flow) bool {
		return f.GetType() == flowpb.FlowType_L3_L4 && f.GetVerdict() == flowpb.Verdict_DROPPED &&
			f.GetDropReasonDesc() == flowpb.DropReason_POLICY_DENIED && f.GetSource().GetPodName() == "xwing" &&
			f.GetSource().GetIdentity() == ids["xwing"] && strings.HasPrefix(f.GetDestination().GetPodName(), "deathstar-") &&
			f.GetL4().GetTCP().GetDestinationPort() == 80
	}
	eventually(t, "hubble observe --follow shows the denied PUT and the xwing's drop", 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		var put, xw bool
		for _, f := range followed {
			put = put || isDeniedExhaust(f)
			xw = xw || isXwingDrop(f)
		}
		if !put || !xw {
			return fmt.Errorf("denied PUT %v, xwing drop %v in:\n%s", put, xw, describeFlows(followed))
		}
		return nil
	})

	// L7 denials only: the PUTs, nothing else.
	out, err := exec.CommandContext(ctx, hubbleBin, "observe", "--server", sock, "--protocol", "http", "--verdict", "DROPPED", "-o", "json").Output()
	if err != nil {
		t.Fatalf("hubble observe --protocol http --verdict DROPPED: %v", err)
	}
	drops := readFlows(t, strings.NewReader(string(out)), nil)
	if len(drops) < puts+1 {
		t.Fatalf("hubble observe --protocol http --verdict DROPPED printed %d flows, want at least %d:\n%s", len(drops), puts+1, describeFlows(drops))
	}
	for _, f := range drops {
		if !isDeniedExhaust(f) {
			t.Fatalf("hubble observe --protocol http --verdict DROPPED printed another flow:\n%s", describeFlows([]*flowpb.Flow{f}))
		}
	}

	// Metrics: node-2's agent counted the L7 denials and the xwing's
	// drops, its proxy the 403s; the controller leads and reconciles.
	eventually(t, "node-2's metrics count the traffic", 30*time.Second, func() error {
		a, p := scrape(node2.Name, agentMetrics), scrape(node2.Name, proxyMetrics)
		moved := func(f0, f1 metrics.Families, name string, labels ...string) float64 {
			v0, _ := f0.Value(name, labels...)
			v1, _ := f1.Value(name, labels...)
			return v1 - v0
		}
		var errs []string
		if d := moved(agent0, a, "nodemesh_policy_l7_total", "proxy_type", "http", "rule", "denied"); d != puts {
			errs = append(errs, fmt.Sprintf("nodemesh_policy_l7_total{rule=denied} moved by %v, want %d", d, puts))
		}
		if d := moved(agent0, a, "hubble_flows_processed_total", "type", "L7", "verdict", "DROPPED"); d != puts {
			errs = append(errs, fmt.Sprintf("hubble_flows_processed_total{type=L7,verdict=DROPPED} moved by %v, want %d", d, puts))
		}
		if d := moved(agent0, a, "hubble_flows_processed_total", "type", "Drop", "subtype", "policy-denied"); d < 1 {
			errs = append(errs, fmt.Sprintf("hubble_flows_processed_total{type=Drop} moved by %v", d))
		}
		if d := moved(agent0, a, "nodemesh_drop_count_total", "reason", "policy-denied", "direction", "ingress"); d < 1 {
			errs = append(errs, fmt.Sprintf("nodemesh_drop_count_total{reason=policy-denied,direction=ingress} moved by %v", d))
		}
		if d := moved(agent0, a, "nodemesh_proxy_redirect_count_total"); d < 1 {
			errs = append(errs, fmt.Sprintf("nodemesh_proxy_redirect_count_total moved by %v", d))
		}
		if v, _ := a.Value("nodemesh_hubble_streams_total", "result", "served"); v < 2 {
			errs = append(errs, fmt.Sprintf("nodemesh_hubble_streams_total{result=served} is %v", v))
		}
		if d := moved(proxy0, p, "nodemesh_proxy_http_requests_total", "code_class", "4xx", "verdict", "dropped"); d != puts {
			errs = append(errs, fmt.Sprintf("nodemesh_proxy_http_requests_total{code_class=4xx,verdict=dropped} moved by %v, want %d", d, puts))
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "\n"))
		}
		return nil
	})
	for _, name := range []string{"nodemesh_xds_acks_total", "nodemesh_xds_connected_proxies"} {
		if v, _ := scrape(node2.Name, agentMetrics).Value(name); v < 1 {
			t.Errorf("node-2's agent: %s is %v", name, v)
		}
	}
	c := scrape("", controllerMetrics)
	if v, _ := c.Value("nodemesh_controller_leader"); v != 1 {
		t.Errorf("nodemesh_controller_leader is %v", v)
	}
	if v, _ := c.Value("nodemesh_controller_reconciles_total", "result", "success"); v < 1 {
		t.Errorf("nodemesh_controller_reconciles_total{result=success} is %v", v)
	}

	// Label, namespace and pod filters, as a Cilium user narrows flows;
	// the endpoints carry their identities' labels.
	observe := func(args ...string) []*flowpb.Flow {
		t.Helper()
		var stderr strings.Builder
		cmd := exec.CommandContext(ctx, hubbleBin, append([]string{"observe", "--server", sock, "-o", "json"}, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("hubble observe %q: %v\n%s", args, err, stderr.String())
		}
		return readFlows(t, strings.NewReader(string(out)), nil)
	}
	each := func(what string, fl []*flowpb.Flow, min int, ok func(*flowpb.Flow) bool) {
		t.Helper()
		if len(fl) < min {
			t.Errorf("%s: %d flows, want at least %d:\n%s", what, len(fl), min, describeFlows(fl))
		}
		for _, f := range fl {
			if !ok(f) {
				t.Errorf("%s printed another flow:\n%s", what, describeFlows([]*flowpb.Flow{f}))
				return
			}
		}
	}
	hasLabel := func(ep *flowpb.Endpoint, l string) bool { return slices.Contains(ep.GetLabels(), l) }
	each("--from-label class=tiefighter --to-label k8s:class=deathstar --protocol http --verdict DROPPED",
		observe("--from-label", "class=tiefighter", "--to-label", "k8s:class=deathstar", "--protocol", "http", "--verdict", "DROPPED"), puts+1,
		func(f *flowpb.Flow) bool {
			return isDeniedExhaust(f) && hasLabel(f.GetSource(), "k8s:org=empire") && hasLabel(f.GetDestination(), "k8s:class=deathstar")
		})
	xwingDrops := observe("--label", "org=alliance", "--verdict", "DROPPED")
	each("--label org=alliance --verdict DROPPED", xwingDrops, 1, func(f *flowpb.Flow) bool {
		return f.GetSource().GetPodName() == "xwing" || f.GetDestination().GetPodName() == "xwing"
	})
	if !slices.ContainsFunc(xwingDrops, isXwingDrop) {
		t.Errorf("--label org=alliance --verdict DROPPED: no L3/L4 drop of the xwing:\n%s", describeFlows(xwingDrops))
	}
	each("--from-namespace default --from-label 'org notin (empire)'", observe("--from-namespace", "default", "--from-label", "org notin (empire)"), 1,
		func(f *flowpb.Flow) bool { return f.GetSource().GetPodName() == "xwing" })
	each("--pod default/tiefighter --protocol http --verdict DROPPED", observe("--pod", "default/tiefighter", "--protocol", "http", "--verdict", "DROPPED"), puts+1,
		isDeniedExhaust)
	// A filter the observer cannot evaluate is an error, not every flow.
	var stderr strings.Builder
	refused := exec.CommandContext(ctx, hubbleBin, "observe", "--server", sock, "--fqdn", "deathstar.example")
	refused.Stderr = &stderr
	if out, err := refused.Output(); err == nil || !strings.Contains(stderr.String(), "InvalidArgument") {
		t.Errorf("hubble observe --fqdn: %v, stderr %q, printed %d bytes", err, stderr.String(), len(out))
	}
}

// scraper returns a function that scrapes addr inside a node's network
// namespace (node "" : the control plane's).
func scraper(t *testing.T, l *Lab) func(node, addr string) metrics.Families {
	return func(node, addr string) metrics.Families {
		t.Helper()
		dial := l.Network.ControlPlane.Dial
		for i, n := range l.Nodes {
			if n.Name == node {
				dial = l.Network.Nodes[i].Dial
			}
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext:       func(ctx context.Context, network, a string) (net.Conn, error) { return dial(ctx, network, a) },
			DisableKeepAlives: true,
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		f, err := metrics.Scrape(ctx, c, "http://"+addr+"/metrics")
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		return f
	}
}

// identities returns the CiliumIdentity number of each Star Wars class
// (k8s:class label), as the agents allocated them.
func identities(t *testing.T, l *Lab) map[string]uint32 {
	t.Helper()
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	list, err := dyn.Resource(ciliumv2.CiliumIdentityResource).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, u := range list.Items {
		labels, _ := u.Object["security-labels"].(map[string]any)
		class, _ := labels["k8s:class"].(string)
		if class == "" {
			continue
		}
		var id uint32
		if _, err := fmt.Sscan(u.GetName(), &id); err == nil {
			out[class] = id
		}
	}
	return out
}

// readFlows reads the hubble CLI's JSON lines (GetFlowsResponse messages)
// from r, passing each flow to each (when set) as it comes.
func readFlows(t *testing.T, r io.Reader, each func(*flowpb.Flow)) []*flowpb.Flow {
	var out []*flowpb.Flow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var resp observerpb.GetFlowsResponse
		if err := protojson.Unmarshal(sc.Bytes(), &resp); err != nil {
			t.Errorf("hubble printed a line that is not a GetFlowsResponse: %v\n%s", err, sc.Text())
			continue
		}
		if f := resp.GetFlow(); f != nil {
			out = append(out, f)
			if each != nil {
				each(f)
			}
		}
	}
	return out
}

func describeFlows(fs []*flowpb.Flow) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s/%s(%d) -> %s/%s(%d) %s %s\n", f.GetType(), f.GetVerdict(), f.GetSource().GetNamespace(), f.GetSource().GetPodName(),
			f.GetSource().GetIdentity(), f.GetDestination().GetNamespace(), f.GetDestination().GetPodName(), f.GetDestination().GetIdentity(),
			f.GetDropReasonDesc(), f.GetL7().GetHttp())
	}
	return b.String()
}
