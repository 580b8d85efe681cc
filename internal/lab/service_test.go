package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// TestLabEgressPolicyThroughClusterIP applies egress policy to a client
// that dials Services by their ClusterIPs, on two nodes with
// socket-level Service translation in the nodes' Pod cgroups: tiefighter
// (node-1) may reach the deathstar's Pods (node-2) and nothing else. The
// ClusterIP connect must reach the datapath as a connection to a deathstar
// Pod, or the egress lookup (by destination identity) and the L7 redirect
// would judge the ClusterIP instead. First L3/L4: landing works, the
// outpost Service is dropped, xwing (no egress policy) still reaches it;
// then the same rule with an HTTP rule: the proxy answers the allowed
// path with the deathstar's 200 and another path with 403.
func TestLabEgressPolicyThroughClusterIP(t *testing.T) {
	// The lab's defaults: the datapath on every node with the uplink as
	// its netdev (from_netdev hands the replies to the proxy's upstream
	// connections, which leave from the client's address, back to the
	// proxy) and socket-level Service translation in the Pod cgroup.
	l := ForTest(t, Options{Nodes: 2})
	if l.Nodes[0].Cgroup == "" {
		if os.Getenv(controlplane.IntegrationEnv) == "1" {
			t.Fatal("no cgroup v2 hierarchy for the lab's Pods: socket-level Service translation cannot be tested")
		}
		t.Skip("no cgroup v2 hierarchy on this machine: socket-level Service translation cannot be attached")
	}
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/starwars-placed.yaml", "testdata/outpost.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := func(name string) string {
		svc, err := l.Client.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Spec.ClusterIP
	}
	deathstar, outpost := clusterIP("deathstar"), clusterIP("outpost")

	// request runs curl in a ship's Pod and returns the HTTP status (0
	// when no response came) and the body.
	request := func(ship, method, url string) (int, string) {
		argv, err := s.ExecArgv(ctx, "default", ship, "", []string{"curl", "-sS", "--max-time", "3", "-X" + method,
			"-w", "\n%{http_code}", url})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := run(t, argv, "")
		out = strings.TrimRight(out, "\n")
		i := strings.LastIndexByte(out, '\n')
		var code int
		fmt.Sscanf(out[i+1:], "%d", &code)
		if i < 0 {
			return code, ""
		}
		return code, out[:i]
	}
	expect := func(ship, method, url string, want int, body string) func() error {
		return func() error {
			code, out := request(ship, method, url)
			if code != want || !strings.Contains(out, body) {
				return fmt.Errorf("%s: %s %s: got %d %q, want %d with %q", ship, method, url, code, out, want, body)
			}
			return nil
		}
	}
	land := "http://" + deathstar + "/v1/request-landing"
	exhaust := "http://" + deathstar + "/v1/exhaust-port"
	echo := "http://" + outpost + "/"

	// Without policy: both Services answer through their ClusterIPs, and
	// by name (the cluster DNS is a Service too: its answers must come
	// back from the address the resolver asked).
	eventually(t, "tiefighter lands by name", time.Minute, expect("tiefighter", "POST",
		"http://deathstar.default.svc.cluster.local/v1/request-landing", 200, "Ship landed"))
	eventually(t, "tiefighter reaches the outpost", time.Minute, expect("tiefighter", "GET", echo, 200, ""))

	apply := func(file string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ApplyPaths(ctx, l.Config, []string{path}); err != nil {
			t.Fatal(err)
		}
	}
	denied := func(ship, url string) func() error {
		return func() error {
			if code, out := request(ship, "GET", url); code != 0 {
				return fmt.Errorf("%s reaches %s: %d %q", ship, url, code, out)
			}
			return nil
		}
	}

	apply(egressPolicy(""))
	eventually(t, "tiefighter's egress to the outpost is denied", time.Minute, denied("tiefighter", echo))
	for i := 0; i < 3; i++ {
		if err := expect("tiefighter", "POST", land, 200, "Ship landed")(); err != nil {
			t.Fatalf("L3/L4 egress rule: %v", err)
		}
		if err := denied("tiefighter", echo)(); err != nil {
			t.Fatal(err)
		}
		if err := expect("xwing", "GET", echo, 200, "")(); err != nil {
			t.Fatalf("a client without egress policy: %v", err)
		}
	}

	apply(egressPolicy(`
      rules:
        http:
        - method: POST
          path: /v1/request-landing`))
	eventually(t, "the proxy denies the exhaust port", time.Minute, expect("tiefighter", "PUT", exhaust, 403, "Access denied"))
	for i := 0; i < 3; i++ {
		if err := expect("tiefighter", "POST", land, 200, "Ship landed")(); err != nil {
			t.Fatalf("L7 egress rule: %v", err)
		}
		if err := expect("tiefighter", "PUT", exhaust, 403, "Access denied")(); err != nil {
			t.Fatal(err)
		}
		if err := denied("tiefighter", echo)(); err != nil {
			t.Fatal(err)
		}
	}

	// The rows the agent wrote are the Services' (nodemesh status shows
	// the policy enforced on both nodes).
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := BuildMesh(root)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "nodemesh status --nodes", 30*time.Second, func() error {
		out, code := run(t, []string{filepath.Join(bin, "nodemesh"), "status", "--nodes", "--kubeconfig", l.Kubeconfig}, "")
		if code != 0 || !strings.Contains(out, "Every policy is enforced") {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
}

// egressPolicy lets tiefighter reach the deathstar's Pods on port 80 and
// nothing else; l7 is appended to the port rule.
func egressPolicy(l7 string) string {
	return `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: tiefighter-egress
spec:
  endpointSelector:
    matchLabels:
      org: empire
      class: tiefighter
  egress:
  - toEndpoints:
    - matchLabels:
        org: empire
        class: deathstar
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP` + l7 + "\n"
}
