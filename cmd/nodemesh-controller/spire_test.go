package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/spiretest"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/provider/kube/ciliumidentity"
)

// TestControllerRegistersSPIREEntries runs the controller binary against a
// real API server and a real SPIRE server: a Pod on node-a whose identity
// the cluster numbered (as an agent does) gets an entry
// spiffe://cluster.local/identity/<n> parented on node-a's alias, and
// loses it when the Pod goes.
func TestControllerRegistersSPIREEntries(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	srv := spiretest.ForTest(t, spiretest.ServerOptions{TrustDomain: td})
	c := controlplane.ForTest(t, "standard")
	bin := filepath.Join(t.TempDir(), "nodemesh-controller")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the controller: %v\n%s", err, out)
	}
	ctx := context.Background()
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	no := false
	pod, err := core.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a", AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "c", Image: "example.com/web:1"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Number the Pod's identity as node-a's agent would.
	ns, err := core.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alloc := ciliumidentity.NewAllocator(dyn)
	if err := alloc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ls := identity.NewManager().PodLabels(pod, ns.Labels)
	got, failed := alloc.Allocate([]identity.Labels{ls})
	if len(failed) != 0 {
		t.Fatal(failed)
	}
	id := got[ls.String()]

	// The API server's own watches of Pods (its node authorizer's), so
	// the controller's can be told apart.
	baseWatches, err := podWatches(ctx, core)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig="+c.Kubeconfig, "--address-pool=192.0.2.0/24",
		"--spire-server-socket="+srv.Socket, "--spire-sync-interval=500ms")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("controller log:\n%s", logs.String())
		}
	}()
	entries := func() (map[string]string, error) {
		resp, err := srv.Entries().ListEntries(ctx, &entryv1.ListEntriesRequest{})
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, e := range resp.Entries {
			out[e.SpiffeId.Path] = e.ParentId.Path
		}
		return out, nil
	}
	want := fmt.Sprintf("/identity/%d", id)
	wait := func(what string, ok func(map[string]string) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			es, err := entries()
			if err == nil && ok(es) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: entries %v (%v)", what, es, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("the Pod's identity is registered on node-a", func(es map[string]string) bool { return es[want] == "/nodemesh/node/node-a" })
	// The identity collector and the SPIRE registration share one Pod
	// informer: the controller holds one watch of Pods.
	if n, err := podWatches(ctx, core); err != nil || n-baseWatches != 1 {
		t.Errorf("the controller holds %d watches of Pods, want 1 (%v)", n-baseWatches, err)
	}
	if err := core.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	wait("the entry goes with the Pod", func(es map[string]string) bool { _, ok := es[want]; return !ok })
}

// podWatches reads from the API server's metrics how many watches of
// Pods are open.
func podWatches(ctx context.Context, core kubernetes.Interface) (int, error) {
	raw, err := core.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_longrunning_requests{") || !strings.Contains(line, `resource="pods"`) ||
			!strings.Contains(line, `verb="WATCH"`) || strings.Contains(line, `subresource="`) && !strings.Contains(line, `subresource=""`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("parsing %q: %w", line, err)
		}
		n += int(v)
	}
	return n, nil
}
