package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/internal/echo"
)

// TestLabGatewayHostNetwork: with the chart's gatewayAPI.hostNetwork on
// and a node selector, a Gateway gets no Service; its status.addresses
// lists the address of the one selected node, a client outside the
// cluster reaches the Gateway at that address and the listener's port
// (the backend, on the other node, seeing the client's address), and the
// unselected node does not listen. Selecting the second node by label
// adds its address and it starts serving. A newer Gateway on the same
// port is told so on its listener (PortUnavailable).
func TestLabGatewayHostNetwork(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2, ChartValues: map[string]any{"gatewayAPI": edgeHostNetwork()}})
	ctx := context.Background()
	n1, n2 := l.Network.Nodes[0], l.Network.Nodes[1]
	labelEdge(t, l, n1.Name)
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/gateway-hostnetwork.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	gwc, err := gwclient.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	waitAddresses := func(want ...netip.Addr) {
		t.Helper()
		eventually(t, fmt.Sprintf("status.addresses %v and Programmed", want), time.Minute, func() error {
			gw, err := gwc.GatewayV1().Gateways("default").Get(ctx, "edge", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var got []netip.Addr
			for _, a := range gw.Status.Addresses {
				if a.Type == nil || *a.Type != gwv1.IPAddressType {
					return fmt.Errorf("status.addresses %v: want IPAddress entries", gw.Status.Addresses)
				}
				got = append(got, netip.MustParseAddr(a.Value))
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("status.addresses %v", got)
			}
			if c := meta.FindStatusCondition(gw.Status.Conditions, "Programmed"); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("Programmed %+v", c)
			}
			return nil
		})
	}
	waitAddresses(n1.IP)
	if _, err := l.Client.CoreV1().Services("default").Get(ctx, controller.ServiceName("edge"), metav1.GetOptions{}); err == nil {
		t.Fatal("host-network mode created the Gateway's Service")
	}

	client := netip.MustParseAddr("10.250.0.241")
	ext, err := l.Network.AddExternal("client", client)
	if err != nil {
		t.Fatal(err)
	}
	curl := func(addr netip.Addr) (string, int) {
		return run(t, []string{"ip", "netns", "exec", ext.Name, "curl", "-sS", "--max-time", "5", "http://" + addr.String() + ":8080/hello"}, "")
	}
	reach := func(n netip.Addr) {
		t.Helper()
		var got echo.Response
		eventually(t, "the Gateway at "+n.String()+":8080", time.Minute, func() error {
			out, code := curl(n)
			if code != 0 {
				return fmt.Errorf("curl exit %d: %s", code, out)
			}
			return json.Unmarshal([]byte(out), &got)
		})
		if got.Backend != "echo" || got.Path != "/hello" {
			t.Fatalf("at %s: answer %+v, want the echo Pod's for /hello", n, got)
		}
		if xff := got.Headers["x-forwarded-for"]; !slices.Contains(xff, client.String()) {
			t.Fatalf("at %s: X-Forwarded-For %v, want the client's address %s", n, xff, client)
		}
	}
	reach(n1.IP)
	// The unselected node has nothing on the port: the connection is
	// refused (curl exit 7), not served and not left hanging.
	if out, code := curl(n2.IP); code != 7 {
		t.Fatalf("unselected %s: curl exit %d (%s), want 7 (connection refused)", n2.Name, code, out)
	}

	labelEdge(t, l, n2.Name)
	waitAddresses(n1.IP, n2.IP)
	reach(n2.IP)

	later := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "later"}, Spec: gwv1.GatewaySpec{
		GatewayClassName: "nodemesh",
		Listeners:        []gwv1.Listener{{Name: "http", Port: 8080, Protocol: gwv1.HTTPProtocolType}},
	}}
	if _, err := gwc.GatewayV1().Gateways("default").Create(ctx, later, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the newer Gateway's port clash", time.Minute, func() error {
		gw, err := gwc.GatewayV1().Gateways("default").Get(ctx, "later", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(gw.Status.Listeners) != 1 {
			return fmt.Errorf("listeners %+v", gw.Status.Listeners)
		}
		c := meta.FindStatusCondition(gw.Status.Listeners[0].Conditions, "Accepted")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "PortUnavailable" {
			return fmt.Errorf("listener Accepted %+v, want False/PortUnavailable", c)
		}
		return nil
	})
	// The older Gateway keeps serving.
	reach(n1.IP)
}

// edgeHostNetwork is the chart's hostNetwork values (of gatewayAPI or
// ingressController) selecting the nodes labelled role=edge.
func edgeHostNetwork() map[string]any {
	return map[string]any{"hostNetwork": map[string]any{
		"enabled": true,
		"nodes":   map[string]any{"matchLabels": map[string]any{"role": "edge"}},
	}}
}

// labelEdge labels a node role=edge, selecting it for host-network mode.
func labelEdge(t *testing.T, l *Lab, node string) {
	t.Helper()
	patch := []byte(`{"metadata":{"labels":{"role":"edge"}}}`)
	if _, err := l.Client.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
