package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// flipPolicies are versions of rule1 that differ in what they allow, and
// all deny the tiefighter's PUT /v1/exhaust-port and every xwing
// connection: updates between them change the proxy's HTTP rules, the
// datapath's rows (peers, ports) or both, never the verdict on those two.
var flipPolicies = []string{
	// Cilium's L7 policy.
	`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rule1
spec:
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
`,
	// More HTTP rules, the peer named by class, and a second port.
	`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rule1
spec:
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {class: tiefighter}
    toPorts:
    - ports: [{port: "80", protocol: TCP}, {port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
        - {method: GET, path: /v1/}
`,
	// Two rules: the landing for the empire, reading for the tiefighter.
	`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rule1
spec:
  endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
  - fromEndpoints:
    - matchLabels: {class: tiefighter}
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/v1/.*"}
`,
}

// TestLabPolicyUpdateUnderLoad: while the policy of the deathstars (on
// node-2) is updated again and again through the API server, clients on
// node-1 keep sending, each request on a new connection through the
// deathstar ClusterIP: the tiefighter PUT /v1/exhaust-port, which every
// version denies at L7, and the xwing, which every version drops. Not one
// of those requests may be answered by the deathstar, whatever moment of
// an update it meets; the tiefighter's landings, which every version
// allows, keep being answered.
func TestLabPolicyUpdateUnderLoad(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/starwars-placed.yaml"}); err != nil {
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
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := l.Client.CoreV1().Services("default").Get(ctx, "deathstar", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + svc.Spec.ClusterIP
	// client sends from a Pod's namespace, one connection per request (a
	// policy judges new connections).
	client := func(pod string) *http.Client {
		p, err := l.Client.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name := network.PodNamespace(l.ID, string(p.UID))
		ns := &testbed.Namespace{Name: name, Path: filepath.Join("/run/netns", name)}
		d := &net.Dialer{Timeout: time.Second}
		return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return ns.DialWith(ctx, d, network, addr)
			},
		}}
	}
	tie, xwing := client("tiefighter"), client("xwing")
	do := func(c *http.Client, method, path string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b), nil
	}
	apply := func(i int) {
		t.Helper()
		if err := controlplane.Apply(ctx, l.Config, []byte(flipPolicies[i%len(flipPolicies)])); err != nil {
			t.Fatal(err)
		}
	}
	// The first version in force before the load starts.
	apply(0)
	if err := WaitPolicies(ctx, *s, l.Client, dyn, time.Minute); err != nil {
		t.Fatal(err)
	}

	// Each version shows in what it lets the tiefighter read: GET /v1/
	// (denied by the first only) and GET /v1/plans (allowed by the third
	// only). The next update is made once the proxy judges by the current
	// one, so every version is in force in turn.
	inForce := func(i int) error {
		v := i % len(flipPolicies)
		index, _, err := do(tie, "GET", "/v1/")
		if err != nil {
			return err
		}
		plans, _, err := do(tie, "GET", "/v1/plans")
		if err != nil {
			return err
		}
		if (index == http.StatusForbidden) != (v == 0) || (plans == http.StatusForbidden) != (v != 2) {
			return fmt.Errorf("version %d: GET /v1/ answered %d, GET /v1/plans %d", v, index, plans)
		}
		return nil
	}
	eventually(t, "the first version in force", time.Minute, func() error { return inForce(0) })

	var (
		leaks                                   []string
		mu                                      sync.Mutex
		denied, other, landed, lost, xwingTries atomic.Int64
	)
	leak := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		if len(leaks) < 20 {
			leaks = append(leaks, what)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				fn()
			}
		}()
	}
	for i := 0; i < 2; i++ {
		loop(func() {
			code, body, err := do(tie, "PUT", "/v1/exhaust-port")
			switch {
			case err != nil:
			case code == http.StatusForbidden:
				denied.Add(1)
			case code/100 == 2 || strings.Contains(body, "Panic"):
				// The deathstar answered: the request got through.
				leak(fmt.Sprintf("tiefighter PUT /v1/exhaust-port answered %d %q", code, strings.TrimSpace(body)))
			default:
				other.Add(1)
			}
		})
	}
	for i := 0; i < 3; i++ {
		loop(func() {
			xwingTries.Add(1)
			// Every version drops the xwing: any answer at all is a leak.
			if code, body, err := do(xwing, "POST", "/v1/request-landing"); err == nil {
				leak(fmt.Sprintf("xwing landing answered %d %q", code, strings.TrimSpace(body)))
			}
		})
	}
	loop(func() {
		code, body, err := do(tie, "POST", "/v1/request-landing")
		if err == nil && code == http.StatusOK {
			landed.Add(1)
			return
		}
		// Not a leak, but worth seeing: an allowed request that failed
		// while the policy changed.
		if lost.Add(1) <= 5 {
			t.Logf("a landing failed during the updates: %d %q %v", code, strings.TrimSpace(body), err)
		}
	})

	// Drops by reason on both nodes, before and after the updates: a
	// landing that failed shows where its packets went.
	scrape := scraper(t, l)
	drops := func() map[string]float64 {
		out := map[string]float64{}
		for _, n := range l.Nodes {
			fam := scrape(n.Name, agentMetrics)["nodemesh_drop_count_total"]
			if fam == nil {
				continue
			}
			for _, m := range fam.Metric {
				key := n.Name
				for _, lp := range m.Label {
					key += " " + lp.GetName() + "=" + lp.GetValue()
				}
				out[key] += m.Counter.GetValue()
			}
		}
		return out
	}
	dropsBefore := drops()

	const updates = 30
	start := time.Now()
	for i := 1; i <= updates; i++ {
		apply(i)
		deadline := time.Now().Add(time.Minute)
		for err := inForce(i); err != nil; err = inForce(i) {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("update %d not in force after a minute: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	for k, v := range drops() {
		if d := v - dropsBefore[k]; d > 0 {
			t.Logf("drops during the updates: %s: %.0f", k, d)
		}
	}
	t.Logf("%d policy updates in %s under load: %d exhaust-port requests denied (%d other answers, none 2xx), %d xwing attempts, %d landings (%d failed)",
		updates, time.Since(start).Round(time.Millisecond), denied.Load(), other.Load(), xwingTries.Load(), landed.Load(), lost.Load())
	if len(leaks) > 0 {
		t.Fatalf("denied requests got through during policy updates:\n%s", strings.Join(leaks, "\n"))
	}
	if denied.Load() < updates || landed.Load() == 0 {
		t.Fatalf("too little load to judge: %d denied, %d landed", denied.Load(), landed.Load())
	}
}
