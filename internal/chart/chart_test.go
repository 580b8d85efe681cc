package chart

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nodemesh/nodemesh/internal/golden"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// helm returns the cached helm binary, building it on first use. A missing
// toolchain or module fails the test: it never skips.
func helm(t *testing.T, root string) string {
	t.Helper()
	bin, err := Helm(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %q: %v\n%s", args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

func TestChartGolden(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := helm(t, root)
	chart := filepath.Join(root, "charts", "nodemesh")
	run(t, bin, "lint", "--strict", chart)
	for _, tc := range []struct {
		name string
		set  []string
	}{
		{"default", nil},
		{"envoy", []string{"--set", "proxy.engine=envoy"}},
		{"ingress", []string{"--set", "ingressController.className=cilium,ingressController.default=true,ingressController.loadbalancerMode=shared,ingressController.enforceHttps=true," +
			"ingressController.defaultSecretNamespace=kube-system,ingressController.defaultSecretName=wildcard"}},
		{"no-ingress", []string{"--set", "ingressController.enabled=false"}},
		// Neither policy nor datapath: the agent runs without --policy and
		// its role drops what only policy reads and writes.
		{"no-policy", []string{"--set", "agent.policy.enabled=false,agent.datapath.enabled=false"}},
		{"host-network", []string{"--set", "gatewayAPI.hostNetwork.enabled=true,gatewayAPI.hostNetwork.nodes.matchLabels.role=edge," +
			"gatewayAPI.hostNetwork.nodes.matchLabels.example\\.com/zone=a"}},
		// Ingresses on the node addresses while Gateways keep their
		// load-balancer Services.
		{"ingress-host-network", []string{"--set", "ingressController.hostNetwork.enabled=true,ingressController.hostNetwork.sharedListenerPort=18080," +
			"ingressController.hostNetwork.nodes.matchLabels.role=edge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "nodemesh", chart, "--namespace", "kube-system", "--include-crds"}, tc.set...)
			golden.Check(t, filepath.Join("testdata", tc.name+".yaml"), run(t, bin, args...))
		})
	}
}

// TestChartRejectsBadValues checks the schema and the template guards.
func TestChartRejectsBadValues(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := helm(t, root)
	chart := filepath.Join(root, "charts", "nodemesh")
	for _, set := range []string{
		"proxy.engine=nginx",
		"proxy.adminAddress=0.0.0.0:9901",
		"addressPool=not-a-prefix",
		"controller.replicas=2,controller.leaderElection.enabled=false",
		"agent.typo=1",
		"agent.prometheus.port=70000",
		"controller.prometheus.enabled=yes",
		"ingressController.loadbalancerMode=per-node",
		"ingressController.defaultSecretName=wildcard",
		"ingressController.defaultSecretNamespace=kube-system",
		"ingressController.defaultSecretNamespace=Kube_System,ingressController.defaultSecretName=x",
		"ingressController.enforceHttps=yes",
		"ingressController.className=Not_A_Name",
		"ingressController.className=",
		"kubeConfigPath=relative/kubeconfig",
		"agent.nodeIPs={not-an-ip}",
		"gatewayAPI.hostNetwork.enabled=yes",
		"gatewayAPI.hostNetwork.nodes.matchLabels.role=not a value",
		"gatewayAPI.hostNetwork.typo=1",
		"ingressController.hostNetwork.enabled=yes",
		"ingressController.hostNetwork.sharedListenerPort=0",
		"ingressController.hostNetwork.sharedListenerPort=65536",
		"ingressController.hostNetwork.sharedListenerPort=http",
		"ingressController.hostNetwork.nodes.matchLabels.role=not a value",
		"ingressController.hostNetwork.typo=1",
	} {
		if out, err := exec.Command(bin, "template", "x", chart, "--set", set).CombinedOutput(); err == nil {
			t.Errorf("--set %s rendered:\n%.200s", set, out)
		}
	}
}

// TestChartCRDsAreGenerated fails when charts/nodemesh/crds differs from
// the generated api/crds (run `make generate`).
func TestChartCRDsAreGenerated(t *testing.T) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(root, "api", "crds", "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(root, "charts", "nodemesh", "crds", "*.yaml"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("chart has %d CRD files, api/crds %d; run make generate", len(got), len(want))
	}
	for _, w := range want {
		a, err := os.ReadFile(w)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, "charts", "nodemesh", "crds", filepath.Base(w)))
		if err != nil {
			t.Fatalf("%v; run make generate", err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/nodemesh/crds/%s differs from api/crds; run make generate", filepath.Base(w))
		}
	}
}
