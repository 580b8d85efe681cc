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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/gateway/controller"
	"github.com/nodemesh/nodemesh/internal/echo"
)

// TestLabGatewayClassConfig: a GatewayClass whose parametersRef names a
// CiliumGatewayClassConfig shapes its Gateways' Services. With
// externalTrafficPolicy Local, single-stack IPv4 and PreferClose, the
// config and the class are Accepted, the Gateway's Service in the API
// server carries those fields, and a client outside the cluster reaches
// the Gateway at its load-balancer address. A config asking for what
// nodemesh does not honour (loadBalancerSourceRanges, then type
// NodePort) makes the config and the class Accepted=False with reason
// InvalidParameters naming the field; back to a valid config with a
// loadBalancerClass, both are Accepted again and the Service is replaced
// by one of that class (the field is immutable).
func TestLabGatewayClassConfig(t *testing.T) {
	l := ForTest(t, Options{Nodes: 1})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/gateway-classconfig.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	gwc, err := gwclient.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	cgccs := dyn.Resource(ciliumv2alpha1.CiliumGatewayClassConfigResource).Namespace("default")

	// accepted waits for the config's and the class's Accepted condition
	// (at the config's current generation) to have status want and, when
	// False, reason InvalidParameters with a message holding field.
	accepted := func(want metav1.ConditionStatus, field string) {
		t.Helper()
		check := func(what string, c *metav1.Condition) error {
			if c == nil || c.Status != want {
				return fmt.Errorf("%s Accepted %+v, want %s", what, c, want)
			}
			if want == metav1.ConditionFalse && (c.Reason != "InvalidParameters" || !strings.Contains(c.Message, field)) {
				return fmt.Errorf("%s Accepted %+v, want reason InvalidParameters naming %s", what, c, field)
			}
			return nil
		}
		eventually(t, fmt.Sprintf("the config and class Accepted=%s %s", want, field), time.Minute, func() error {
			u, err := cgccs.Get(ctx, "edge-params", metav1.GetOptions{})
			if err != nil {
				return err
			}
			var cfg ciliumv2alpha1.CiliumGatewayClassConfig
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cfg); err != nil {
				return err
			}
			c := meta.FindStatusCondition(cfg.Status.Conditions, "Accepted")
			if c != nil && c.ObservedGeneration != cfg.Generation {
				return fmt.Errorf("config Accepted at generation %d, config at %d", c.ObservedGeneration, cfg.Generation)
			}
			if err := check("config", c); err != nil {
				return err
			}
			gc, err := gwc.GatewayV1().GatewayClasses().Get(ctx, "nodemesh-local", metav1.GetOptions{})
			if err != nil {
				return err
			}
			return check("GatewayClass", meta.FindStatusCondition(gc.Status.Conditions, "Accepted"))
		})
	}
	// service waits for the Gateway's Service to have the wanted
	// externalTrafficPolicy and loadBalancerClass and returns it.
	service := func(etp corev1.ServiceExternalTrafficPolicy, class string) *corev1.Service {
		t.Helper()
		var svc *corev1.Service
		eventually(t, fmt.Sprintf("the Gateway's Service with externalTrafficPolicy %s, loadBalancerClass %q", etp, class), time.Minute, func() error {
			var err error
			svc, err = l.Client.CoreV1().Services("default").Get(ctx, controller.ServiceName("edge"), metav1.GetOptions{})
			if err != nil {
				return err
			}
			got := ""
			if svc.Spec.LoadBalancerClass != nil {
				got = *svc.Spec.LoadBalancerClass
			}
			if svc.Spec.ExternalTrafficPolicy != etp || got != class {
				return fmt.Errorf("externalTrafficPolicy %q, loadBalancerClass %v", svc.Spec.ExternalTrafficPolicy, svc.Spec.LoadBalancerClass)
			}
			return nil
		})
		return svc
	}
	patch := func(body string) {
		t.Helper()
		if _, err := cgccs.Patch(ctx, "edge-params", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	accepted(metav1.ConditionTrue, "")
	svc := service(corev1.ServiceExternalTrafficPolicyLocal, "")
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer ||
		!slices.Equal(svc.Spec.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) ||
		svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack ||
		svc.Spec.TrafficDistribution == nil || *svc.Spec.TrafficDistribution != corev1.ServiceTrafficDistributionPreferClose {
		t.Fatalf("Service spec %+v, want type LoadBalancer, IPv4 SingleStack, trafficDistribution PreferClose", svc.Spec)
	}

	pool := netip.MustParsePrefix(DefaultLoadBalancerPool)
	var addr netip.Addr
	eventually(t, "the Gateway's load-balancer address, Programmed", time.Minute, func() error {
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
		if c := meta.FindStatusCondition(gw.Status.Conditions, "Programmed"); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Programmed %+v", c)
		}
		addr = a
		return nil
	})
	client := netip.MustParseAddr("10.250.0.242")
	ext, err := l.Network.AddExternal("client", client)
	if err != nil {
		t.Fatal(err)
	}
	n := l.Network.Nodes[0]
	mac, err := n.Namespace.Run(ctx, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := ext.Run(ctx, "ip", "neigh", "replace", addr.String(), "lladdr", strings.TrimSpace(mac), "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var got echo.Response
	eventually(t, "the Gateway at "+addr.String(), time.Minute, func() error {
		out, code := run(t, []string{"ip", "netns", "exec", ext.Name, "curl", "-sS", "--max-time", "5", "http://" + addr.String() + "/hello"}, "")
		if code != 0 {
			return fmt.Errorf("curl exit %d: %s", code, out)
		}
		return json.Unmarshal([]byte(out), &got)
	})
	if got.Backend != "echo" || got.Path != "/hello" {
		t.Fatalf("answer %+v, want the echo Pod's for /hello", got)
	}

	// Source ranges the node proxies would not enforce: refused, not
	// ignored (the Gateway would be open to every source).
	patch(`{"spec":{"service":{"loadBalancerSourceRanges":["10.250.0.0/24"]}}}`)
	accepted(metav1.ConditionFalse, "spec.service.loadBalancerSourceRanges")
	patch(`{"spec":{"service":{"loadBalancerSourceRanges":null,"type":"NodePort"}}}`)
	accepted(metav1.ConditionFalse, "spec.service.type: NodePort")

	// Valid again, now with a loadBalancerClass: neither the first
	// config nor the Service defaults have one, and the field is
	// immutable, so the Service is replaced to follow.
	patch(`{"spec":{"service":{"type":"LoadBalancer","loadBalancerClass":"example.com/other-lb"}}}`)
	accepted(metav1.ConditionTrue, "")
	service(corev1.ServiceExternalTrafficPolicyLocal, "example.com/other-lb")
}
