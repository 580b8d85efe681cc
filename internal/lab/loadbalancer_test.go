package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/internal/echo"
)

// TestLabGatewayLoadBalancer: a Gateway gets a LoadBalancer Service
// (nodemesh-gateway-<name>, owned by the Gateway, with its
// infrastructure labels and annotations), the lab's load balancer gives
// that Service an address on the lab network, the Gateway's
// status.addresses shows it, and a client outside the cluster (a host on
// the lab network that is not a node) reaches the Gateway at that address
// through either node, the backend (on node-2) seeing the client's own
// address in X-Forwarded-For.
func TestLabGatewayLoadBalancer(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/gateway-loadbalancer.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	gwc, err := gwclient.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	pool := netip.MustParsePrefix(DefaultLoadBalancerPool)
	var addr netip.Addr
	eventually(t, "the Gateway's load-balancer address", time.Minute, func() error {
		gw, err := gwc.GatewayV1().Gateways("default").Get(ctx, "edge", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(gw.Status.Addresses) != 1 {
			return fmt.Errorf("status.addresses %v", gw.Status.Addresses)
		}
		a, err := netip.ParseAddr(gw.Status.Addresses[0].Value)
		if err != nil || !pool.Contains(a) {
			return fmt.Errorf("status.addresses %v: not in the load balancer's pool %s", gw.Status.Addresses, pool)
		}
		addr = a
		return nil
	})
	svc, err := l.Client.CoreV1().Services("default").Get(ctx, controller.ServiceName("edge"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != "LoadBalancer" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 {
		t.Fatalf("Service spec %+v, want type LoadBalancer with port 80", svc.Spec)
	}
	if svc.Labels["team"] != "edge" || svc.Labels["gateway.networking.k8s.io/gateway-name"] != "edge" || svc.Annotations["example.com/owner"] != "edge-team" {
		t.Fatalf("Service labels %v annotations %v, want the Gateway's infrastructure ones and its name", svc.Labels, svc.Annotations)
	}
	if len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].Kind != "Gateway" || svc.OwnerReferences[0].Name != "edge" {
		t.Fatalf("Service owners %v, want the Gateway", svc.OwnerReferences)
	}
	if ing := svc.Status.LoadBalancer.Ingress; len(ing) != 1 || ing[0].IP != addr.String() {
		t.Fatalf("Service load-balancer status %v, want %s", ing, addr)
	}

	client := netip.MustParseAddr("10.250.0.240")
	ext, err := l.Network.AddExternal("client", client)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Network.Nodes {
		// Pin the address to this node's interface, as an announcement
		// electing that node would: every node must serve it.
		mac, err := n.Namespace.Run(ctx, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		if out, err := ext.Run(ctx, "ip", "neigh", "replace", addr.String(), "lladdr", strings.TrimSpace(mac), "dev", "eth0", "nud", "permanent"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var got echo.Response
		eventually(t, "the Gateway through "+n.Name, time.Minute, func() error {
			out, code := run(t, []string{"ip", "netns", "exec", ext.Name, "curl", "-sS", "--max-time", "5", "http://" + addr.String() + "/hello"}, "")
			if code != 0 {
				return fmt.Errorf("curl exit %d: %s", code, out)
			}
			return json.Unmarshal([]byte(out), &got)
		})
		if got.Backend != "echo" || got.Path != "/hello" {
			t.Fatalf("through %s: answer %+v, want the echo Pod's for /hello", n.Name, got)
		}
		if xff := got.Headers["x-forwarded-for"]; !slices.Contains(xff, client.String()) {
			t.Fatalf("through %s: X-Forwarded-For %v, want the client's address %s", n.Name, xff, client)
		}
	}
}
