package nodereport

import (
	"context"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

type clients struct {
	core kubernetes.Interface
	dyn  dynamic.Interface
}

// newClients starts (or reuses) a real API server with the project's CRDs.
func newClients(t *testing.T) clients {
	t.Helper()
	c := controlplane.ForTest(t, "standard")
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return clients{core, dyn}
}

// cannedStatus stands in for the agent: the reporter only reads its status.
type cannedStatus struct {
	mu sync.Mutex
	st AgentStatus
}

func (c *cannedStatus) get() AgentStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *cannedStatus) set(st AgentStatus) {
	c.mu.Lock()
	c.st = st
	c.mu.Unlock()
}

func gatewayWith(ns, name string, gen int64, status metav1.ConditionStatus, reason, msg string) gateway.GatewayStatus {
	return gateway.GatewayStatus{Key: input.Key{Namespace: ns, Name: name}, Status: gwv1.GatewayStatus{Conditions: []metav1.Condition{
		{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: gen},
		{Type: "Programmed", Status: status, Reason: reason, Message: msg, ObservedGeneration: gen},
	}}}
}

func TestReporterWritesNodeProxyStatus(t *testing.T) {
	c := newClients(t)
	ctx := context.Background()
	src := &cannedStatus{}
	src.set(AgentStatus{
		Gateways: []gateway.GatewayStatus{gatewayWith("a", "gw", 3, metav1.ConditionTrue, "Programmed", "programmed on 1 proxies")},
		Proxies:  []dataplane.Proxy{{Node: "proxy-1", Connected: true}},
	})
	now := time.Unix(1_800_000_000, 0)
	r := NewReporter(c.dyn, c.core, "node-1", "nodemesh.io/gateway-controller", src.get)
	r.now = func() time.Time { return now }

	read := func() *v1alpha1.NodeProxyStatus {
		t.Helper()
		u, err := c.dyn.Resource(v1alpha1.NodeProxyStatusResource).Get(ctx, "node-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := FromUnstructured(u)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := read()
	if len(got.Status.Gateways) != 1 || got.Status.Gateways[0] != (v1alpha1.GatewayProgramming{
		Namespace: "a", Name: "gw", ObservedGeneration: 3, Status: metav1.ConditionTrue, Reason: "Programmed", Message: "programmed on 1 proxies",
	}) {
		t.Fatalf("gateways: %+v", got.Status.Gateways)
	}
	if got.Status.ControllerName != "nodemesh.io/gateway-controller" || !got.Status.HeartbeatTime.Time.Equal(now) {
		t.Fatalf("status: %+v", got.Status)
	}
	rv := got.ResourceVersion

	// Nothing changed and the heartbeat is not due: no write.
	now = now.Add(time.Second)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if read().ResourceVersion != rv {
		t.Fatal("an unchanged report was rewritten")
	}

	// A NACK reaches the report with the proxy's message.
	src.set(AgentStatus{
		Gateways: []gateway.GatewayStatus{gatewayWith("a", "gw", 3, metav1.ConditionFalse, "Invalid", "proxy proxy-1 rejected Listener version 7: bad field")},
		Proxies: []dataplane.Proxy{{Node: "proxy-1", Connected: true, Types: []dataplane.TypeState{
			{Type: "Listener", Sent: "7", Acked: "6", Nack: &dataplane.Nack{Version: "7", Message: "bad field"}}}}},
	})
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got = read()
	if g := got.Status.Gateways[0]; g.Reason != "Invalid" || g.Message != "proxy proxy-1 rejected Listener version 7: bad field" {
		t.Fatalf("gateway after NACK: %+v", g)
	}
	if p := got.Status.Proxies[0]; p.Rejected != "Listener version 7: bad field" {
		t.Fatalf("proxy after NACK: %+v", p)
	}

	// The heartbeat is rewritten when due even without changes.
	rv = got.ResourceVersion
	now = now.Add(time.Minute)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.ResourceVersion == rv || !got.Status.HeartbeatTime.Time.Equal(now) {
		t.Fatalf("heartbeat not refreshed: %v", got.Status.HeartbeatTime)
	}

	// Someone deleting the object (e.g. an administrator) does not wedge
	// the reporter: it recreates it.
	if err := c.dyn.Resource(v1alpha1.NodeProxyStatusResource).Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	src.set(AgentStatus{})
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got.Status.Gateways) != 0 {
		t.Fatalf("recreated report: %+v", got.Status)
	}
}
