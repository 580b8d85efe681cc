package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/mesh/input"
)

func createUnstructured(t *testing.T, c clients, gvr schema.GroupVersionResource, ns string, obj map[string]any) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	res := c.dyn.Resource(gvr)
	var out *unstructured.Unstructured
	var err error
	if ns != "" {
		out, err = res.Namespace(ns).Create(context.Background(), u, metav1.CreateOptions{})
	} else {
		out, err = res.Create(context.Background(), u, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("creating %s: %v", gvr.Resource, err)
	}
	return out
}

func cnp(name string, ingress []any) map[string]any {
	return map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"endpointSelector": map[string]any{"matchLabels": map[string]any{"org": "empire"}},
			"ingress":          ingress,
		},
	}
}

func podsNamed(s *input.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, p := range s.Pods {
		out[p.Name] = true
	}
	return out
}

// TestProviderWatchesPolicy drives a real kube-apiserver with the policy
// kinds: Pods, NetworkPolicies, CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies reach snapshots; a Pod bound to a Node
// that does not exist (or no longer does) is left out, so no agent keeps an
// ipcache row for it; a policy version that does not decode (a field
// nodemesh does not know, kept by the CRD's schema) leaves the last good
// version in the snapshot and is reported; and a provider whose API server
// does not serve a policy kind refuses to start.
func TestProviderWatchesPolicy(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := "sw"
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	mustCreate(t, c.core.CoreV1().ServiceAccounts(ns).Create, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	mustCreate(t, c.core.CoreV1().Nodes().Create, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	mustCreate(t, c.core.CoreV1().Nodes().Create, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2"}})
	pod := func(name, node, ip string) {
		p := mustCreate(t, c.core.CoreV1().Pods(ns).Create, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"org": "empire"}},
			Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x"}}}})
		p.Status.PodIP, p.Status.PodIPs, p.Status.Phase = ip, []corev1.PodIP{{IP: ip}}, corev1.PodRunning
		if _, err := c.core.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("deathstar", "node-2", "10.244.2.5")
	pod("tiefighter", "node-1", "10.244.1.5")
	pod("ghost", "node-9", "10.244.9.5")
	mustCreate(t, c.core.NetworkingV1().NetworkPolicies(ns).Create, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "knp"}, Spec: networkingv1.NetworkPolicySpec{}})
	createUnstructured(t, c, ciliumv2.CiliumNetworkPolicyResource, ns, cnp("l4", []any{
		map[string]any{"fromEndpoints": []any{map[string]any{"matchLabels": map[string]any{"org": "empire"}}},
			"toPorts": []any{map[string]any{"ports": []any{map[string]any{"port": "80", "protocol": "TCP"}}}}},
	}))
	ccnp := cnp("cw", []any{map[string]any{}})
	ccnp["kind"] = "CiliumClusterwideNetworkPolicy"
	createUnstructured(t, c, ciliumv2.CiliumClusterwideNetworkPolicyResource, "", ccnp)

	var got snapshots
	p := New(c.core, c.gw, WithPolicy(c.dyn), WithDebounce(10*time.Millisecond, 100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()
	got.waitFor(t, "pods and policies", func(s *input.Snapshot) bool {
		n := podsNamed(s)
		return n["deathstar"] && n["tiefighter"] && len(s.NetworkPolicies) == 1 &&
			len(s.CiliumNetworkPolicies) == 1 && len(s.CiliumClusterwideNetworkPolicies) == 1
	})
	s := got.waitFor(t, "the same", func(*input.Snapshot) bool { return true })
	if podsNamed(s)["ghost"] {
		t.Fatal("a Pod on a node that does not exist is in the snapshot")
	}
	if r := s.CiliumNetworkPolicies[0]; r.Spec == nil || len(r.Spec.Ingress) != 1 || r.Namespace != ns || r.Name != "l4" {
		t.Fatalf("decoded CNP: %+v", r)
	}

	// The Node of deathstar goes away: its Pod leaves the snapshot.
	if err := c.core.CoreV1().Nodes().Delete(ctx, "node-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, "deathstar gone with its node", func(s *input.Snapshot) bool {
		n := podsNamed(s)
		return !n["deathstar"] && n["tiefighter"]
	})

	// A version with a field nodemesh does not know (the CRD keeps
	// unknown fields under authentication) is not applied; the last good
	// version stays and the problem is reported.
	res := c.dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).Namespace(ns)
	u, err := res.Get(ctx, "l4", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing := u.Object["spec"].(map[string]any)["ingress"].([]any)
	ing[0].(map[string]any)["authentication"] = map[string]any{"mode": "disabled", "strictness": "high"}
	ing[0].(map[string]any)["toPorts"] = []any{map[string]any{"ports": []any{map[string]any{"port": "443", "protocol": "TCP"}}}}
	if _, err := res.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(p.Problems()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	probs := p.Problems()
	if len(probs) != 1 || !strings.Contains(probs[0], "strictness") || !strings.Contains(probs[0], "sw/l4") || !strings.Contains(probs[0], "last good version") {
		t.Fatalf("problems: %q", probs)
	}
	s = got.waitFor(t, "the last good version", func(s *input.Snapshot) bool { return len(s.CiliumNetworkPolicies) == 1 })
	if port := s.CiliumNetworkPolicies[0].Spec.Ingress[0].ToPorts[0].Ports[0].Port; port != "80" {
		t.Fatalf("in force: port %q, want the last good version's 80", port)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}

	// Without the CiliumClusterwideNetworkPolicy kind the provider does not
	// start: enforcing without it would silently drop those policies.
	if err := c.dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Delete(context.Background(), "ciliumclusterwidenetworkpolicies.cilium.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := New(c.core, c.gw, WithPolicy(c.dyn)).Start(sctx)
		scancel()
		if errors.Is(err, ErrNoPolicySource) && strings.Contains(err.Error(), "CiliumClusterwideNetworkPolicies") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Start without the CCNP CRD: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestStatusWriter writes the Valid condition on a real API server, as two
// nodes' agents would: an agreeing verdict writes nothing, another node's
// True does not hide a rejection of the same generation, the rejecting
// node clears it, a long message is cut to the schema's limit, and a
// condition of another type is kept.
func TestStatusWriter(t *testing.T) {
	c := newClients(t)
	ctx := context.Background()
	ns := "st"
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	obj := cnp("p", []any{map[string]any{}})
	obj["status"] = map[string]any{}
	u := createUnstructured(t, c, ciliumv2.CiliumNetworkPolicyResource, ns, obj)
	res := c.dyn.Resource(ciliumv2.CiliumNetworkPolicyResource).Namespace(ns)
	other := []byte(`{"status":{"conditions":[{"type":"Other","status":"True","reason":"X"}]}}`)
	if _, err := res.Patch(ctx, "p", "application/merge-patch+json", other, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	n1, n2 := NewStatusWriter(c.dyn, "node-1", nil), NewStatusWriter(c.dyn, "node-2", nil)
	verdict := PolicyVerdict{Kind: "CiliumNetworkPolicy", Namespace: ns, Name: "p", UID: u.GetUID(), Generation: u.GetGeneration()}
	read := func() (rv string, valid ciliumv2.NetworkPolicyCondition, n int) {
		t.Helper()
		got, err := res.Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var typed ciliumv2.CiliumNetworkPolicy
		if _, err := decodeCilium(got, &typed); err != nil {
			t.Fatal(err)
		}
		for _, c := range typed.Status.Conditions {
			if c.Type == ciliumv2.PolicyConditionValid {
				valid = c
			}
		}
		return got.GetResourceVersion(), valid, len(typed.Status.Conditions)
	}
	sync := func(w *StatusWriter, v PolicyVerdict) {
		t.Helper()
		w.Update([]PolicyVerdict{v})
		if !w.Sync(ctx) {
			t.Fatal("sync failed")
		}
	}

	bad := verdict
	bad.Message = strings.Repeat("é", maxConditionMessage) // two bytes each
	sync(n1, bad)
	rv, cond, n := read()
	if cond.Status != metav1.ConditionFalse || !strings.HasPrefix(cond.Message, "node node-1: ") || len(cond.Message) > maxConditionMessage ||
		cond.ObservedGeneration != verdict.Generation || n != 2 {
		t.Fatalf("after node-1's rejection: %d conditions, %+v", n, cond)
	}
	good := verdict
	good.Valid = true
	sync(n2, good)
	if rv2, cond2, _ := read(); rv2 != rv || cond2.Status != metav1.ConditionFalse {
		t.Fatalf("node-2's True replaced node-1's rejection of the same generation: %+v", cond2)
	}
	sync(n1, good)
	rv, cond, n = read()
	if cond.Status != metav1.ConditionTrue || n != 2 {
		t.Fatalf("node-1 did not clear its rejection: %d conditions, %+v", n, cond)
	}
	// node-2 agrees: nothing is written, now or when asked again.
	n2.Update(nil)
	sync(n2, good)
	if rv2, _, _ := read(); rv2 != rv {
		t.Fatal("an agreeing verdict was written")
	}
	sync(n1, good)
	if rv2, _, _ := read(); rv2 != rv {
		t.Fatal("a verdict already written was written again")
	}
}
