package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// TestEnvoyConfigConditions runs the Kubernetes mode for real (an API
// server, the agent without network policy, the xDS server and the builtin
// proxy) and checks that what refuses a CiliumEnvoyConfig is written on
// the object as its Valid condition, with the exact error: a resource the
// builtin proxy cannot run (refused by translation), and a listener the
// proxy cannot bind (its NACK, attributed to the config by the resource's
// name); a good config reads Valid True, and fixing a config clears its
// condition.
func TestEnvoyConfigConditions(t *testing.T) {
	kc := controlplane.ForTest(t, "standard")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	state, err := os.MkdirTemp("", "nm-cec")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	srv := server.New(server.WithLogger(log))
	l, err := server.ListenUnix(filepath.Join(state, "xds.sock"))
	must(t, err)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := agent.New(agent.Config{Publisher: publish.New(srv), AddressPool: testPool, Logger: log})
	must(t, err)
	errc := make(chan error, 4)
	must(t, runKubernetes(ctx, log, a, kc.Kubeconfig, "node-1", "nodemesh.io/gateway-controller", false, errc))
	proxyDone := runProxy(ctx, t, state, "cec-test", log)
	t.Cleanup(func() {
		cancel()
		select {
		case <-proxyDone:
		case <-time.After(10 * time.Second):
			t.Error("the proxy did not stop within 10s")
		}
	})

	// A port something else on the node holds: the proxy's bind fails.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { held.Close() })
	heldPort := held.Addr().(*net.TCPAddr).Port
	free := freePort(t)

	dyn, err := dynamic.NewForConfig(rest.CopyConfig(kc.Config))
	must(t, err)
	res := dyn.Resource(ciliumv2.CiliumEnvoyConfigResource).Namespace("default")
	listener := func(port int) map[string]any {
		return map[string]any{
			"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l",
			"address": map[string]any{"socketAddress": map[string]any{"address": "127.0.0.1", "portValue": port}},
			"filterChains": []any{map[string]any{"filters": []any{map[string]any{
				"name": "envoy.filters.network.tcp_proxy",
				"typedConfig": map[string]any{"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
					"statPrefix": "t", "cluster": "c"}}}}},
		}
	}
	cluster := func(typ string) map[string]any {
		return map[string]any{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c", "type": typ,
			"loadAssignment": map[string]any{"clusterName": "c", "endpoints": []any{map[string]any{"lbEndpoints": []any{map[string]any{
				"endpoint": map[string]any{"address": map[string]any{"socketAddress": map[string]any{"address": "127.0.0.1", "portValue": 9}}}}}}}}}
	}
	cec := func(name string, resources ...any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "cilium.io/v2", "kind": "CiliumEnvoyConfig",
			"metadata": map[string]any{"name": name, "namespace": "default"},
			"spec":     map[string]any{"resources": resources},
		}}
	}
	create := func(o *unstructured.Unstructured) {
		t.Helper()
		if _, err := res.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// valid waits until the config's Valid condition satisfies ok.
	valid := func(name, what string, ok func(ciliumv2.NetworkPolicyCondition) bool) ciliumv2.NetworkPolicyCondition {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var last ciliumv2.NetworkPolicyCondition
		for time.Now().Before(deadline) {
			select {
			case err := <-errc:
				t.Fatalf("the Kubernetes provider stopped: %v", err)
			default:
			}
			u, err := res.Get(ctx, name, metav1.GetOptions{})
			must(t, err)
			var typed ciliumv2.CiliumEnvoyConfig
			must(t, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &typed))
			for _, c := range typed.Status.Conditions {
				if c.Type == ciliumv2.PolicyConditionValid {
					last = c
					if ok(c) && c.ObservedGeneration == u.GetGeneration() {
						return c
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("CiliumEnvoyConfig %s: the Valid condition never showed %s; last %+v", name, what, last)
		return last
	}
	// The good config first: the proxy rejects a response whole, so a
	// rejection is laid on every config whose resources the rejected
	// response brought new (Nack.Changed); the good one must be served
	// before the unbindable one arrives.
	create(cec("good", listener(free), cluster("STATIC")))
	valid("good", "True", func(c ciliumv2.NetworkPolicyCondition) bool {
		return c.Status == metav1.ConditionTrue && c.Reason == "Accepted"
	})
	create(cec("unsupported", cluster("STRICT_DNS")))
	create(cec("unbindable", listener(heldPort), cluster("STATIC")))
	c := valid("unsupported", "the proxy's refusal", func(c ciliumv2.NetworkPolicyCondition) bool { return c.Status == metav1.ConditionFalse })
	if c.Reason != "Unsupported" || !strings.HasPrefix(c.Message, "node node-1: ") || !strings.Contains(c.Message, `resources[0] (Cluster "c")`) ||
		!strings.Contains(c.Message, "STRICT_DNS") {
		t.Fatalf("unsupported: %+v; want Unsupported with the exact error naming resources[0] and STRICT_DNS", c)
	}
	c = valid("unbindable", "the NACK", func(c ciliumv2.NetworkPolicyCondition) bool { return c.Status == metav1.ConditionFalse })
	if c.Reason != "ProxyRejected" || !strings.Contains(c.Message, fmt.Sprintf("127.0.0.1:%d", heldPort)) ||
		!strings.Contains(c.Message, "address already in use") {
		t.Fatalf("unbindable: %+v; want ProxyRejected with the bind error", c)
	}

	// The rejection is not the good config's: it stays True.
	valid("good", "still True", func(c ciliumv2.NetworkPolicyCondition) bool { return c.Status == metav1.ConditionTrue })

	// Fixed: the condition follows.
	u, err := res.Get(ctx, "unsupported", metav1.GetOptions{})
	must(t, err)
	u.Object["spec"] = map[string]any{"resources": []any{cluster("STATIC")}}
	if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	valid("unsupported", "True after the fix", func(c ciliumv2.NetworkPolicyCondition) bool { return c.Status == metav1.ConditionTrue })
}
