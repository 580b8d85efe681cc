package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/chart"
)

func TestExpandVars(t *testing.T) {
	env := map[string]string{"NODE_NAME": "node-1", "EMPTY": ""}
	for _, tc := range []struct{ in, want string }{
		{"--node-name=$(NODE_NAME)", "--node-name=node-1"},
		{"$(NODE_NAME)/$(NODE_NAME)", "node-1/node-1"},
		{"--x=$(UNSET)", "--x=$(UNSET)"},
		{"--x=$$(NODE_NAME)", "--x=$(NODE_NAME)"},
		{"--x=$$$(NODE_NAME)", "--x=$node-1"},
		{"--x=$(EMPTY)!", "--x=!"},
		{"--x=$(NODE_NAME", "--x=$(NODE_NAME"},
		{"a$b$", "a$b$"},
		{"$", "$"},
	} {
		if got := expandVars(tc.in, env); got != tc.want {
			t.Errorf("expandVars(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// renderForTest renders the chart with values, as the lab does.
func renderForTest(t *testing.T, values map[string]any) *chart.Rendered {
	t.Helper()
	root, err := chart.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := chart.Helm(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	r, err := chart.Render(context.Background(), helm, filepath.Join(root, chart.Dir), chartRelease, chartNamespace,
		filepath.Join(t.TempDir(), "values.json"), values)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestContainerProcess checks that the rendered containers become the
// processes kubelet would start (downward API and $(VAR) resolved, the
// program found by name, hostPaths created), and that what the lab cannot
// run is refused rather than started without it.
func TestContainerProcess(t *testing.T) {
	bin := t.TempDir()
	for _, p := range []string{"nodemesh-agent", "nodemesh-proxy", "nodemesh-controller"} {
		if err := os.WriteFile(filepath.Join(bin, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(t.TempDir(), "nodes", "node-1")
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	values := map[string]any{"stateDir": state, "kubeConfigPath": kubeconfig,
		"agent": map[string]any{"datapath": map[string]any{"enabled": false}, "policy": map[string]any{"enabled": false}}}
	host := pod{name: "nodemesh-agent-node-1", namespace: chartNamespace, nodeName: "node-1", hostIP: "10.250.0.10", podIP: "10.250.0.10"}

	agent, err := containerProcess(renderForTest(t, values), agentWorkload, host, bin)
	if err != nil {
		t.Fatal(err)
	}
	if agent.path != filepath.Join(bin, "nodemesh-agent") {
		t.Errorf("agent program %s", agent.path)
	}
	for _, want := range []string{"--kubernetes", "--kubeconfig=" + kubeconfig, "--node-name=node-1", "--state-dir=" + state} {
		if !slices.Contains(agent.args, want) {
			t.Errorf("agent args %q lack %q", agent.args, want)
		}
	}
	if slices.Contains(agent.args, "--policy") || slices.ContainsFunc(agent.args, func(a string) bool { return strings.Contains(a, "$(") }) {
		t.Errorf("agent args %q", agent.args)
	}
	if !slices.Contains(agent.env, "NODE_NAME=node-1") || slices.ContainsFunc(agent.env, func(e string) bool { return strings.HasPrefix(e, "KUBECONFIG=") }) {
		t.Errorf("agent env %q", agent.env)
	}
	if fi, err := os.Stat(state); err != nil || !fi.IsDir() {
		t.Errorf("the state hostPath was not created: %v", err)
	}

	ctl, err := containerProcess(renderForTest(t, values), controllerWorkload, pod{name: "nodemesh-controller-0", namespace: chartNamespace}, bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--leader-elect", "--leader-election-namespace=kube-system", "--kubeconfig=" + kubeconfig} {
		if !slices.Contains(ctl.args, want) {
			t.Errorf("controller args %q lack %q", ctl.args, want)
		}
	}
	if !slices.Contains(ctl.env, "POD_NAME=nodemesh-controller-0") {
		t.Errorf("controller env %q", ctl.env)
	}

	for _, tc := range []struct {
		name   string
		values map[string]any
		w      rendered
		bin    string
		want   string
	}{
		{"envoy", map[string]any{"proxy": map[string]any{"engine": "envoy"}}, proxyWorkload, bin, "init containers"},
		{"missing program", nil, agentWorkload, t.TempDir(), "nodemesh-agent"},
		{"no such workload", nil, rendered{kind: "DaemonSet", name: "nodemesh-other", container: "x"}, bin, "no DaemonSet nodemesh-other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := containerProcess(renderForTest(t, mergeValues(values, tc.values)), tc.w, host, tc.bin)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestLabRunsTheChart changes chart values and finds the change in the
// running mesh: the agent serves its metrics on the port the chart was
// given (and not on the default), and the controller holds the Lease the
// chart names, as the Pod name the downward API gave it.
func TestLabRunsTheChart(t *testing.T) {
	const port, lease = "9972", "lab-chart-lease"
	l := ForTest(t, Options{Nodes: 1, NoPolicy: true, ChartValues: map[string]any{
		"agent":      map[string]any{"prometheus": map[string]any{"port": 9972}},
		"controller": map[string]any{"leaderElection": map[string]any{"leaseName": lease}},
	}})
	n := l.Nodes[0]
	// Start returned once the node's proxy was connected to its agent.
	f := scraper(t, l)(n.Name, "127.0.0.1:"+port)
	if v, ok := f.Value("nodemesh_xds_connected_proxies"); !ok || v != 1 {
		t.Errorf("the agent's metrics on port %s: nodemesh_xds_connected_proxies %v (present %v), want 1", port, v, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := l.Network.Nodes[0].Dial(ctx, "tcp", agentMetrics); err == nil {
		c.Close()
		t.Errorf("something still serves %s on %s", agentMetrics, n.Name)
	}
	var holder string
	eventually(t, "the controller holds the chart's Lease", 30*time.Second, func() error {
		le, err := l.Client.CoordinationV1().Leases(chartNamespace).Get(ctx, lease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if le.Spec.HolderIdentity != nil {
			holder = *le.Spec.HolderIdentity
		}
		if holder != chartRelease+"-controller-0" {
			return fmt.Errorf("holder %q", holder)
		}
		return nil
	})
	manifest, err := os.ReadFile(filepath.Join(l.Dir, "chart", n.Name, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(manifest), "--metrics-address=:"+port) {
		t.Errorf("the kept manifest does not show the agent's port")
	}
}
