package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/internal/metrics"
)

// TestControllerCollectsIdentities runs the controller binary against a
// real API server with a short grace period: a CiliumIdentity no Pod uses
// is deleted, which shows the collector is wired and takes its flags. Its
// /metrics (--metrics-address) then shows it leading and reconciling.
func TestControllerCollectsIdentities(t *testing.T) {
	c := controlplane.ForTest(t, "standard")
	bin := filepath.Join(t.TempDir(), "nodemesh-controller")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the controller: %v\n%s", err, out)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	res := dyn.Resource(ciliumv2.CiliumIdentityResource)
	ctx := context.Background()
	_, err = res.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
		"metadata": map[string]any{"name": "4242"}, "security-labels": map[string]any{"k8s:app": "nobody"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig="+c.Kubeconfig, "--address-pool=192.0.2.0/24",
		"--identity-gc-interval=200ms", "--identity-gc-grace=1s", "--metrics-address="+metricsAddr)
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := res.Get(ctx, "4242", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("identity 4242 still there (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The controller synced and reconciled at least once, and leads
	// (no --leader-elect: it always runs).
	for {
		f, err := metrics.Scrape(ctx, http.DefaultClient, "http://"+metricsAddr+"/metrics")
		if err == nil {
			ok, _ := f.Value("nodemesh_controller_reconciles_total", "result", "success")
			samples, _ := f.Value("nodemesh_controller_reconcile_duration_seconds")
			leader, _ := f.Value("nodemesh_controller_leader")
			if ok >= 1 && samples >= ok && leader == 1 {
				return
			}
			err = fmt.Errorf("reconciles %v, duration samples %v, leader %v", ok, samples, leader)
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller metrics: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
