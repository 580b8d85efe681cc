package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/lab/network"
)

// nodemesh runs the nodemesh command with the lab's state directory and
// returns its combined output and exit status.
func nodemesh(t *testing.T, bin, state, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "nodemesh"), args...)
	cmd.Env = append(os.Environ(), "NODEMESH_LAB_STATE_DIR="+state)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("nodemesh %v: %v", args, err)
	}
	return out.String(), 0
}

// TestLabCommand drives `nodemesh lab` as a user does: up with two nodes,
// the Star Wars app (deathstar placed on node-2, the ships on node-1) and
// Cilium's L3/L4 policy, enforced by default; a landing request from the
// tiefighter through the deathstar's DNS name and ClusterIP, the xwing's
// dropped at once, exit status and stdin through exec, kubectl; then the
// lab's process is killed with -9, the next up sweeps what it left (its
// namespaces and a process a Pod left running), and down removes
// everything.
func TestLabCommand(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root: it creates network namespaces")
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	controlplane.BinariesForTest(t, root)
	bin, err := BuildMesh(root)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "lab")
	t.Cleanup(func() { _ = Down(state, 30*time.Second) })

	start := time.Now()
	out, code := nodemesh(t, bin, state, "", "lab", "up", "--nodes=2", "--bin-dir="+bin, "-f", "testdata/starwars-placed.yaml", "-f", "../../examples/starwars/sw_l3_l4_policy.yaml")
	if code != 0 || !strings.Contains(out, "lab is up: 2 node(s)") {
		t.Fatalf("lab up: exit %d\n%s", code, out)
	}
	t.Logf("nodemesh lab up --nodes 2 -f starwars-placed.yaml -f sw_l3_l4_policy.yaml took %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	s, err := LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		want := "node-1"
		if p.Labels["class"] == "deathstar" {
			want = "node-2"
		}
		if p.Spec.NodeName != want {
			t.Fatalf("%s runs on %q, want %s", p.Name, p.Spec.NodeName, want)
		}
	}
	svc, err := client.CoreV1().Services("default").Get(ctx, "deathstar", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"deathstar.default.svc.cluster.local", svc.Spec.ClusterIP} {
		out, code = nodemesh(t, bin, state, "", "lab", "exec", "tiefighter", "--", "curl", "-sS", "--max-time", "5", "-XPOST", target+"/v1/request-landing")
		if code != 0 || out != "Ship landed\n" {
			t.Fatalf("landing at %s: exit %d: %q", target, code, out)
		}
	}
	// The lab enforces policy by default, and up returned once every node
	// enforced the one applied: the very first landing attempt of the
	// xwing is dropped (curl's connect timeout, exit 28).
	if out, code = nodemesh(t, bin, state, "", "lab", "exec", "xwing", "--", "curl", "-sS", "--max-time", "3", "-XPOST", "deathstar.default.svc.cluster.local/v1/request-landing"); code != 28 {
		t.Fatalf("xwing landing under the L3/L4 policy: exit %d (want 28): %q", code, out)
	}
	if out, code = nodemesh(t, bin, state, "", "lab", "exec", "xwing", "-c", "spaceship", "--", "sh", "-c", "echo refused >&2; exit 3"); code != 3 || out != "refused\n" {
		t.Fatalf("exit status: %d, %q", code, out)
	}
	if out, code = nodemesh(t, bin, state, "the plans", "lab", "exec", "xwing", "--", "cat"); code != 0 || out != "the plans" {
		t.Fatalf("stdin: %d, %q", code, out)
	}
	if out, code = nodemesh(t, bin, state, "", "lab", "exec", "nobody", "--", "true"); code != 1 || !strings.Contains(out, "nobody") {
		t.Fatalf("exec into a missing Pod: %d, %q", code, out)
	}
	if out, code = nodemesh(t, bin, state, "", "lab", "kubectl", "get", "pods", "-o", "wide"); code != 0 || !strings.Contains(out, "tiefighter") || !strings.Contains(out, "node-2") {
		t.Fatalf("kubectl: %d\n%s", code, out)
	}

	// Kill the lab's process: its children die with it, but the process
	// the orphan-maker Pod started in a session of its own does not.
	orphanPod, err := client.CoreV1().Pods("default").Get(ctx, "orphan-maker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podNS := &testbed.Namespace{Name: network.PodNamespace(s.ID, string(orphanPod.UID)), Path: filepath.Join("/run/netns", network.PodNamespace(s.ID, string(orphanPod.UID)))}
	var before []int
	eventually(t, "the orphan-maker's processes", 10*time.Second, func() error {
		if before, err = podNS.Pids(); err != nil || len(before) < 2 {
			return errors.New("not yet two processes")
		}
		return nil
	})
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lab's process gone", 10*time.Second, func() error {
		if s.Running() {
			return errors.New("still running")
		}
		return nil
	})
	left, err := podNS.Pids()
	if err != nil || len(left) == 0 {
		t.Fatalf("nothing was left to sweep (%v, %v): the test no longer tests the sweep", left, err)
	}

	out, code = nodemesh(t, bin, state, "", "lab", "up", "--nodes=1", "--bin-dir="+bin)
	if code != 0 {
		t.Fatalf("lab up after a kill: exit %d\n%s", code, out)
	}
	t.Logf("nodemesh lab up --nodes 1 (after sweeping a killed lab): %s", lastLine(out, "lab is up"))
	assertGone(t, s.ID, before...)
	s2, err := LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	out, code = nodemesh(t, bin, state, "", "lab", "down")
	if code != 0 || !strings.Contains(out, "lab stopped and removed") {
		t.Fatalf("lab down: %d, %q", code, out)
	}
	assertGone(t, s2.ID, s2.PID)
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state directory left: %v", err)
	}
	if out, code = nodemesh(t, bin, state, "", "lab", "exec", "tiefighter", "--", "true"); code != 1 || !strings.Contains(out, "no lab is running") {
		t.Fatalf("exec without a lab: %d, %q", code, out)
	}
	if out, code = nodemesh(t, bin, state, "", "lab", "down"); code != 0 || !strings.Contains(out, "no lab was running") {
		t.Fatalf("second down: %d, %q", code, out)
	}
}

func lastLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
