package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestLabPolicyAcrossNodes runs Cilium's Star Wars L3/L4 scenario on two
// nodes with nodemesh's datapath in Kubernetes mode: the ships on node-1,
// the deathstar on node-2, every request dialled through the deathstar's
// ClusterIP (kube-proxy translates it on node-1). The policy is applied
// through the API server only. node-2's agent can judge the ships only if
// it learnt the Pods of node-1 (ipcache rows for remote Pods): tiefighter
// (org=empire) still lands, xwing is dropped. Each agent marks the policy
// Valid and reports it Enforced in its NodeProxyStatus; a policy nodemesh
// rejects gets Valid=False naming the node and the field.
func TestLabPolicyAcrossNodes(t *testing.T) {
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
	curl := func(ship, method, path string, extra ...string) (string, int) {
		argv, err := s.ExecArgv(ctx, "default", ship, "", append([]string{"curl", "-sS", "--max-time", "3", "-X" + method,
			"http://deathstar.default.svc.cluster.local" + path}, extra...))
		if err != nil {
			t.Fatal(err)
		}
		return run(t, argv, "")
	}
	land := func(ship string) (string, int) { return curl(ship, "POST", "/v1/request-landing") }
	lands := func(ship string) func() error {
		return func() error {
			if out, code := land(ship); code != 0 || !strings.Contains(out, "Ship landed") {
				return fmt.Errorf("%s: exit %d: %s", ship, code, out)
			}
			return nil
		}
	}
	// Without a policy both ships land.
	eventually(t, "tiefighter lands", time.Minute, lands("tiefighter"))
	eventually(t, "xwing lands", time.Minute, lands("xwing"))

	if err := ApplyPaths(ctx, l.Config, []string{"../../examples/starwars/sw_l3_l4_policy.yaml"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "xwing is denied", time.Minute, func() error {
		if out, code := land("xwing"); code == 0 {
			return fmt.Errorf("xwing still lands: %s", out)
		}
		return nil
	})
	// Every later attempt is denied too, and tiefighter keeps landing.
	for i := 0; i < 3; i++ {
		if out, code := land("xwing"); code == 0 {
			t.Fatalf("xwing landed after the policy was enforced: %s", out)
		}
		if err := lands("tiefighter")(); err != nil {
			t.Fatal(err)
		}
	}

	// The L7 policy: node-2's datapath redirects the tiefighter's
	// connections (from node-1, already translated by node-1's kube-proxy)
	// to node-2's proxy, which lets only POST /v1/request-landing through;
	// the xwing is still dropped by the datapath.
	if err := ApplyPaths(ctx, l.Config, []string{"../../examples/starwars/sw_l3_l4_l7_policy.yaml"}); err != nil {
		t.Fatal(err)
	}
	// The proxy answers a denied request 403 "Access denied" (with CRLF,
	// as Cilium's Envoy does).
	const denied = "Access denied\r\n403"
	exhaust := func() (string, int) { return curl("tiefighter", "PUT", "/v1/exhaust-port", "-w", "%{http_code}") }
	eventually(t, "the exhaust port is denied", time.Minute, func() error {
		if out, code := exhaust(); code != 0 || out != denied {
			return fmt.Errorf("exit %d: %q", code, out)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if out, code := exhaust(); code != 0 || out != denied {
			t.Fatalf("PUT /v1/exhaust-port after the L7 policy was enforced: exit %d: %q", code, out)
		}
		if err := lands("tiefighter")(); err != nil {
			t.Fatal(err)
		}
		if out, code := land("xwing"); code != 28 {
			t.Fatalf("xwing under the L7 policy: exit %d (want 28, a connect timeout): %s", code, out)
		}
	}
	// The deathstars' node judged it: node-2's proxy recorded the denied
	// request with the tiefighter's identity and Pod address (after
	// node-1's kube-proxy translated the ClusterIP), node-1's none.
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildMesh(root)
	if err != nil {
		t.Fatal(err)
	}
	tiefighter, err := l.Client.CoreV1().Pods("default").Get(ctx, "tiefighter", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	flows := func(n Node) string {
		out, code := run(t, []string{filepath.Join(bin, "nodemesh"), "flows", "--socket", filepath.Join(n.StateDir, "agent.sock"),
			"-o", "json", "--verdict", "DROPPED", "--workload", "default/tiefighter"}, "")
		if code != 0 {
			t.Fatalf("nodemesh flows on %s: exit %d: %s", n.Name, code, out)
		}
		return out
	}
	if out := flows(l.Nodes[1]); !strings.Contains(out, "/v1/exhaust-port") || !strings.Contains(out, tiefighter.Status.PodIP) {
		t.Fatalf("node-2 recorded no denied exhaust-port request from %s:\n%s", tiefighter.Status.PodIP, out)
	}
	if out := flows(l.Nodes[0]); strings.Contains(out, "/v1/exhaust-port") {
		t.Fatalf("node-1 judged the request too:\n%s", out)
	}

	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	cnps := dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).Namespace("default")
	valid := func(name string) (map[string]any, error) {
		u, err := cnps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Valid" {
				return m, nil
			}
		}
		return nil, fmt.Errorf("%s has no Valid condition: %v", name, u.Object["status"])
	}
	eventually(t, "rule1 is Valid", 30*time.Second, func() error {
		c, err := valid("rule1")
		if err == nil && c["status"] != "True" {
			err = fmt.Errorf("rule1: %v", c)
		}
		return err
	})

	// Every node reports rule1 enforced in its NodeProxyStatus.
	for _, n := range l.Nodes {
		eventually(t, "rule1 enforced on "+n.Name, 30*time.Second, func() error {
			u, err := dyn.Resource(v1alpha1.NodeProxyStatusResource).Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			pols, _, _ := unstructured.NestedSlice(u.Object, "status", "policy", "policies")
			for _, p := range pols {
				if m, ok := p.(map[string]any); ok && m["name"] == "rule1" && m["kind"] == "CiliumNetworkPolicy" {
					if m["state"] != "Enforced" {
						return fmt.Errorf("%s: %v", n.Name, m)
					}
					return nil
				}
			}
			return fmt.Errorf("%s reports no rule1: %v", n.Name, u.Object["status"])
		})
	}

	// nodemesh status --nodes says the same from the reports.
	eventually(t, "nodemesh status --nodes", 30*time.Second, func() error {
		out, code := run(t, []string{filepath.Join(bin, "nodemesh"), "status", "--nodes", "--kubeconfig", l.Kubeconfig}, "")
		if code != 0 || !strings.Contains(out, "node-1") || !strings.Contains(out, "node-2") || !strings.Contains(out, "Every policy is enforced") {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})

	bad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": "fqdn"},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"class": "xwing"}},
			"egress":           []any{map[string]any{"toFQDNs": []any{map[string]any{"matchName": "example.com"}}}},
		},
	}}
	if _, err := cnps.Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fqdn is rejected", 30*time.Second, func() error {
		c, err := valid("fqdn")
		if err != nil {
			return err
		}
		msg, _ := c["message"].(string)
		if c["status"] != "False" || !strings.HasPrefix(msg, "node node-") || !strings.Contains(msg, "toFQDNs") {
			return fmt.Errorf("fqdn: %v", c)
		}
		return nil
	})
}
