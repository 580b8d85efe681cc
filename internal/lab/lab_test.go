package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/internal/echo"
)

// run runs argv (an ExecArgv result) with stdin and returns its output
// and exit status.
func run(t *testing.T, argv []string, stdin string) (string, int) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running %v: %v", argv, err)
	}
	return out.String(), 0
}

func eventually(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestLabTwoNodes brings up a two-node lab and checks what tests rely on:
// Pods get addresses from their node's Pod CIDR and are placed as asked
// (nodeName, nodeSelector) or spread; a Pod reaches another node's Pod by
// Pod IP, by ClusterIP (kube-proxy) and by DNS name (the cluster DNS
// behind its own ClusterIP, with the namespace search path); exec passes
// stdin, output and exit status through, and so does exec through the
// API server and the kubelet (checkExec); an unknown image waits with a
// reason; Close leaves no namespace, /etc/netns entry or process behind.
func TestLabTwoNodes(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/two-nodes.yaml"}); err != nil {
		t.Fatal(err)
	}
	pods, err := WaitSettled(ctx, l.Client, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	byName := map[string]PodSummary{}
	perNode := map[string]int{}
	for _, p := range pods {
		byName[p.Name] = p
		perNode[p.Node]++
	}
	for name, node := range map[string]string{"server-1": "node-1", "server-2": "node-2", "client": "node-1"} {
		if byName[name].Node != node || !byName[name].Ready {
			t.Fatalf("%s: %+v, want Ready on %s", name, byName[name], node)
		}
	}
	if d := perNode["node-1"] - perNode["node-2"]; d > 1 || d < -1 {
		t.Fatalf("pods are not spread: %v", perNode)
	}
	for _, n := range l.Nodes {
		node, err := l.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil || node.Spec.PodCIDR != n.PodCIDR.String() {
			t.Fatalf("node %s: podCIDR %q, %v", n.Name, node.Spec.PodCIDR, err)
		}
		for _, p := range pods {
			if p.Name == "mystery" {
				continue // never ran, so it has no address
			}
			if ip, err := netip.ParseAddr(p.IP); p.Node == n.Name && (err != nil || !n.PodCIDR.Contains(ip)) {
				t.Fatalf("pod %s on %s has %s, outside %s", p.Name, n.Name, p.IP, n.PodCIDR)
			}
		}
	}
	if m := byName["mystery"]; m.Ready || !strings.HasPrefix(m.Reason, "ImageNotRunnable") || !strings.Contains(m.Reason, "example.com/mystery:1") {
		t.Fatalf("mystery: %+v", m)
	}

	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	argv := func(cmd ...string) []string {
		a, err := s.ExecArgv(ctx, "default", "client", "", cmd)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	svc, err := l.Client.CoreV1().Services("default").Get(ctx, "echo-two", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{
		"http://" + byName["server-2"].IP + ":8080/by-pod-ip",
		"http://" + svc.Spec.ClusterIP + "/by-cluster-ip",
		"http://echo-two.default.svc.cluster.local/by-name",
		"http://echo-two/by-short-name",
	} {
		eventually(t, "client -> "+target, 30*time.Second, func() error {
			out, code := run(t, argv("curl", "-sS", "--max-time", "5", target), "")
			var got echo.Response
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
				return fmt.Errorf("curl exit %d: %s", code, out)
			}
			if got.Backend != "server-2" {
				return fmt.Errorf("answered by %q", got.Backend)
			}
			return nil
		})
	}
	if out, code := run(t, argv("sh", "-c", "cat; exit 7"), "through stdin"); code != 7 || out != "through stdin" {
		t.Fatalf("exec: exit %d, output %q", code, out)
	}
	checkExec(t, s, byName)
	if _, err := s.ExecArgv(ctx, "default", "client", "nope", []string{"true"}); err == nil {
		t.Fatal("exec into a container the Pod does not have")
	}
	if _, err := s.ExecArgv(ctx, "default", "mystery", "", []string{"true"}); err == nil || !strings.Contains(err.Error(), "ImageNotRunnable") {
		t.Fatalf("exec into a Pod that does not run: %v", err)
	}
	// An Event says why mystery does not run.
	evs, err := l.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=mystery"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs.Items {
		found = found || e.Type == corev1.EventTypeWarning && e.Reason == "ImageNotRunnable"
	}
	if !found {
		t.Fatalf("no ImageNotRunnable event: %+v", evs.Items)
	}

	clientPod, err := l.Client.CoreV1().Pods("default").Get(ctx, "client", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	if cs := clientPod.Status.ContainerStatuses; len(cs) == 1 {
		fmt.Sscanf(cs[0].ContainerID, "nodemesh://%d", &pid)
	}
	if pid == 0 {
		t.Fatalf("client container id %+v", clientPod.Status.ContainerStatuses)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l.ID, pid)
}

// assertGone checks that nothing of the lab with this namespace prefix
// remains: no network namespace, no /etc/netns entry, and none of pids.
func assertGone(t *testing.T, id string, pids ...int) {
	t.Helper()
	for _, dir := range []string{"/run/netns", "/etc/netns"} {
		left, _ := filepath.Glob(filepath.Join(dir, id+"-*"))
		if len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
	// The lab's bpf filesystem (where the nodes' datapaths pin).
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mounts), "/"+id+" ") {
		t.Errorf("the bpf filesystem of lab %s is still mounted", id)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if !strings.Contains(string(stat), ") Z") {
				t.Errorf("process %d still runs: %s", pid, stat)
			}
		}
	}
}
