package lab

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// echoPolicy admits, on the echo Pod's port 8080, what from selects (a
// CiliumNetworkPolicy ingress peer, YAML).
const echoPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: echo
spec:
  endpointSelector:
    matchLabels:
      app: echo
  ingress:
  - %s
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
`

// TestLabGatewayIngressIdentity: the node proxy's connections to a
// Gateway's backends carry the reserved ingress identity (8), as Cilium's
// do, so the backend's policy judges Gateway traffic as ingress and not as
// the node (which always reaches its workloads): a policy admitting
// fromEntities [ingress] lets Gateway requests through, one admitting
// only the client Pod refuses them while that client still gets in.
func TestLabGatewayIngressIdentity(t *testing.T) {
	testGatewayIngressIdentity(t, 1, "testdata/gateway-ingress.yaml")
}

// TestLabGatewayIngressIdentityAcrossNodes: the same with the Gateway's
// proxy on node-1 and its backends on node-2, where the proxy's mark does
// not reach: its connections leave from node-1's ingress address, which
// node-2 maps to the ingress identity, so fromEntities [ingress] admits
// Gateway traffic and not the client Pod (also on node-1), and a policy
// admitting only the client refuses Gateway traffic (it does not arrive
// as node-1 either).
func TestLabGatewayIngressIdentityAcrossNodes(t *testing.T) {
	testGatewayIngressIdentity(t, 2, "testdata/gateway-ingress-placed.yaml")
}

// testGatewayIngressIdentity runs the Gateway identity scenario on a lab
// of the given size; requests go to node-1's proxy.
func testGatewayIngressIdentity(t *testing.T, nodes int, manifest string) {
	l := ForTest(t, Options{Nodes: nodes})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{manifest}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	gwRes := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	var addr string
	eventually(t, "the Gateway's address", time.Minute, func() error {
		u, err := dyn.Resource(gwRes).Namespace("default").Get(ctx, "gw", metav1.GetOptions{})
		if err != nil {
			return err
		}
		addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
		for _, a := range addrs {
			if m, ok := a.(map[string]any); ok {
				if v, _ := m["value"].(string); v != "" {
					addr = v
					return nil
				}
			}
		}
		return fmt.Errorf("no address yet: %v", u.Object["status"])
	})
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	echo, err := l.Client.CoreV1().Pods("default").Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's connect timeout is 5 s: a dropped connection to the
	// backend comes back as a 503 within that, or curl gives up.
	gatewayPath := func(path string) (string, int) {
		return run(t, []string{"ip", "netns", "exec", l.Nodes[0].Netns, "curl", "-sS", "--max-time", "8", "-o", "/dev/null",
			"-w", "%{http_code}", "http://" + addr + path}, "")
	}
	viaGateway := func() (string, int) { return gatewayPath("/") }
	fromClient := func() (string, int) {
		argv, err := s.ExecArgv(ctx, "default", "client", "", []string{"curl", "-sS", "--max-time", "3", "-o", "/dev/null",
			"-w", "%{http_code}", "http://" + echo.Status.PodIP + ":8080/"})
		if err != nil {
			t.Fatal(err)
		}
		return run(t, argv, "")
	}
	passes := func(what string, f func() (string, int)) func() error {
		return func() error {
			if out, code := f(); code != 0 || out != "200" {
				return fmt.Errorf("%s: exit %d: %s", what, code, out)
			}
			return nil
		}
	}
	refused := func(what string, f func() (string, int)) func() error {
		return func() error {
			if out, code := f(); code == 0 && out == "200" {
				return fmt.Errorf("%s still gets through", what)
			}
			return nil
		}
	}
	// The Gateway is programmed once it serves the backend no policy
	// selects.
	eventually(t, "the Gateway serves /free", time.Minute, passes("gateway /free", func() (string, int) { return gatewayPath("/free") }))

	apply := func(from string) {
		t.Helper()
		if err := controlplane.Apply(ctx, l.Config, []byte(fmt.Sprintf(echoPolicy, from))); err != nil {
			t.Fatal(err)
		}
		if err := WaitPolicies(ctx, *s, l.Client, dyn, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Policy judges new connections only, and the proxy keeps its
	// upstream connections open between requests: no request goes
	// through the Gateway before the first policy, so each verdict below
	// is about connections the proxy opens under it.
	//
	// A policy without the ingress entity refuses Gateway traffic: the
	// proxy's connection is not the node's (which would always get in).
	apply("fromEndpoints: [{matchLabels: {app: client}}]")
	eventually(t, "the client gets in", time.Minute, passes("client", fromClient))
	for i := 0; i < 2; i++ {
		out, code := viaGateway()
		if code == 0 && out == "200" || !strings.HasPrefix(out, "503") && code != 28 {
			t.Fatalf("gateway under fromEndpoints [client]: exit %d: %s (want a 503 or a timeout)", code, out)
		}
	}
	// Gateway traffic admitted as ingress; the client, not named, is not.
	apply("fromEntities: [ingress]")
	eventually(t, "the Gateway forwards", time.Minute, passes("gateway", viaGateway))
	eventually(t, "the client is refused", time.Minute, refused("client", fromClient))
	for i := 0; i < 3; i++ {
		if err := passes("gateway under fromEntities [ingress]", viaGateway)(); err != nil {
			t.Fatal(err)
		}
	}
}
