package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/internal/chart"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

var xmeshResource = schema.GroupVersionResource{Group: "gateway.networking.x-k8s.io", Version: "v1alpha1", Resource: "xmeshes"}

// TestLabChartRBAC runs the mesh under the chart's ServiceAccounts and
// roles and checks both sides of least privilege: the components do their
// job (the controller accepts an XMesh of the experimental channel,
// which needs its list, get and status update; ForTest fails the test on
// any request the roles refused, in either component's log), and they
// cannot do what their roles leave out: neither the agent's nor the
// controller's credentials delete a Secret or create a Pod, and the
// proxy gets no credentials at all.
func TestLabChartRBAC(t *testing.T) {
	l := ForTest(t, Options{Nodes: 1, GatewayChannel: "experimental"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	mesh := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.x-k8s.io/v1alpha1", "kind": "XMesh",
		"metadata": map[string]any{"name": "nodemesh"},
		"spec":     map[string]any{"controllerName": "nodemesh.io/gateway-controller"},
	}}
	if _, err := dyn.Resource(xmeshResource).Create(ctx, mesh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the controller accepts the XMesh", 60*time.Second, func() error {
		u, err := dyn.Resource(xmeshResource).Get(ctx, "nodemesh", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Accepted" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", conds)
	})

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "keep-me", Namespace: "default"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("x"), corev1.TLSPrivateKeyKey: []byte("y")}}
	if _, err := l.Client.CoreV1().Secrets("default").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, component := range []string{"agent", "controller"} {
		t.Run(component, func(t *testing.T) {
			cfg := rest.CopyConfig(l.Config)
			cfg.BearerToken = ""
			cfg.BearerTokenFile = filepath.Join(filepath.Dir(l.componentKubeconfig(component)), "token")
			c, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// What the role grants: the TLS Secrets the translation reads.
			if _, err := c.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("listing Secrets with the %s's credentials: %v", component, err)
			}
			err = c.CoreV1().Secrets("default").Delete(ctx, "keep-me", metav1.DeleteOptions{})
			if !apierrors.IsForbidden(err) {
				t.Errorf("deleting a Secret with the %s's credentials: %v, want forbidden", component, err)
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "intruder", Namespace: "default"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
			if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
				t.Errorf("creating a Pod with the %s's credentials: %v, want forbidden", component, err)
			}
		})
	}
	if _, err := l.Client.CoreV1().Secrets("default").Get(ctx, "keep-me", metav1.GetOptions{}); err != nil {
		t.Errorf("the Secret: %v", err)
	}

	// The proxy talks to its agent only: no token, no kubeconfig.
	manifest, err := os.ReadFile(filepath.Join(l.Dir, "chart", l.Nodes[0].Name, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := controlplane.Decode(manifest)
	if err != nil {
		t.Fatal(err)
	}
	r := &chart.Rendered{Manifest: manifest, Objects: objs}
	spec, err := r.PodSpec(proxyWorkload.kind, proxyWorkload.name)
	if err != nil {
		t.Fatal(err)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("the proxy's Pod mounts a ServiceAccount token")
	}
	for _, c := range spec.Containers {
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--kubeconfig") {
				t.Errorf("the proxy gets %s", a)
			}
		}
	}
}
