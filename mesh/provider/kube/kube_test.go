package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

type clients struct {
	core kubernetes.Interface
	gw   gwclient.Interface
	dyn  dynamic.Interface
}

func newClients(t *testing.T) clients {
	t.Helper()
	c := controlplane.ForTest(t, "standard")
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gwclient.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return clients{core, gw, dyn}
}

// snapshots records what the provider publishes.
type snapshots struct {
	mu   sync.Mutex
	last *input.Snapshot
	n    int
}

func (s *snapshots) put(snap *input.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.n = snap, s.n+1
}

func (s *snapshots) waitFor(t *testing.T, what string, ok func(*input.Snapshot) bool) *input.Snapshot {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		if last != nil && ok(last) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no snapshot with %s", what)
	return nil
}

func mustCreate[T any](t *testing.T, create func(context.Context, T, metav1.CreateOptions) (T, error), obj T) T {
	t.Helper()
	out, err := create(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating %T: %v", obj, err)
	}
	return out
}

// TestProviderFollowsTheAPIServer drives a real kube-apiserver: every kind
// the translation reads shows up in snapshots, deletions disappear, only
// TLS Secrets are watched, and a burst of changes ends in one consistent
// view.
func TestProviderFollowsTheAPIServer(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := "prov"
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})

	var got snapshots
	p := New(c.core, c.gw)
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()

	mustCreate(t, c.gw.GatewayV1().GatewayClasses().Create, &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "nm"}, Spec: gwv1.GatewayClassSpec{ControllerName: "nodemesh.io/gateway-controller"}})
	mustCreate(t, c.gw.GatewayV1().Gateways(ns).Create, &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: "gw"},
		Spec:       gwv1.GatewaySpec{GatewayClassName: "nm", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}})
	mustCreate(t, c.core.CoreV1().Services(ns).Create, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "svc"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}})
	port := int32(3000)
	mustCreate(t, c.core.DiscoveryV1().EndpointSlices(ns).Create, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "svc-1", Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.248.0.1"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: &port}}})
	mustCreate(t, c.core.CoreV1().Secrets(ns).Create, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}})
	mustCreate(t, c.core.CoreV1().Secrets(ns).Create, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, StringData: map[string]string{"k": "v"}})
	mustCreate(t, c.gw.GatewayV1().ReferenceGrants(ns).Create, &gwv1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Name: "rg"},
		Spec: gwv1.ReferenceGrantSpec{
			From: []gwv1.ReferenceGrantFrom{{Group: gwv1.GroupName, Kind: "HTTPRoute", Namespace: "other"}},
			To:   []gwv1.ReferenceGrantTo{{Group: "", Kind: "Service"}}}})
	for i := 0; i < 20; i++ {
		mustCreate(t, c.gw.GatewayV1().HTTPRoutes(ns).Create, &gwv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: "r" + string(rune('a'+i))},
			Spec:       gwv1.HTTPRouteSpec{CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "gw"}}}}})
	}

	snap := got.waitFor(t, "every object", func(s *input.Snapshot) bool {
		return len(s.HTTPRoutes) == 20 && len(s.Gateways) == 1 && len(s.GatewayClasses) == 1 &&
			len(s.Services) >= 1 && len(s.EndpointSlices) >= 1 && len(s.ReferenceGrants) == 1 && len(s.Secrets) >= 1
	})
	for _, s := range snap.Secrets {
		if s.Type != corev1.SecretTypeTLS {
			t.Errorf("secret %s/%s of type %s is in the snapshot; only TLS secrets are watched", s.Namespace, s.Name, s.Type)
		}
	}
	for i := 1; i < len(snap.HTTPRoutes); i++ {
		if snap.HTTPRoutes[i-1].Name >= snap.HTTPRoutes[i].Name {
			t.Fatalf("routes not sorted: %s before %s", snap.HTTPRoutes[i-1].Name, snap.HTTPRoutes[i].Name)
		}
	}
	if len(snap.Namespaces) == 0 {
		t.Error("no namespaces in snapshot")
	}
	if snap.Gateways[0].ManagedFields != nil {
		t.Error("managedFields were kept in the cache")
	}

	// Every object enters with its content hash.
	checkHashes := func(s *input.Snapshot) {
		t.Helper()
		for _, r := range s.HTTPRoutes {
			if h, ok := s.RecordedHash(r); !ok || h != input.HashObject(r) {
				t.Errorf("route %s: recorded hash %x (recorded %v), want %x", r.Name, h, ok, input.HashObject(r))
			}
		}
	}
	checkHashes(snap)
	// An edited route enters with a new hash; the others keep theirs.
	rb, err := c.gw.GatewayV1().HTTPRoutes(ns).Get(ctx, "rb", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb.Spec.Hostnames = []gwv1.Hostname{"edited.example.com"}
	if _, err := c.gw.GatewayV1().HTTPRoutes(ns).Update(ctx, rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	edited := got.waitFor(t, "the edited route", func(s *input.Snapshot) bool {
		return len(s.HTTPRoutes) == 20 && len(s.HTTPRoutes[1].Spec.Hostnames) == 1
	})
	checkHashes(edited)
	for i, r := range edited.HTTPRoutes {
		if same := edited.HashOf(r) == snap.HashOf(snap.HTTPRoutes[i]); same != (r.Name != "rb") {
			t.Errorf("route %s: hash unchanged = %v after editing rb", r.Name, same)
		}
	}

	// A status-only write to a route is not a change translation can see;
	// a deletion is.
	if err := c.gw.GatewayV1().HTTPRoutes(ns).Delete(ctx, "ra", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got.waitFor(t, "the deleted route gone", func(s *input.Snapshot) bool { return len(s.HTTPRoutes) == 19 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

func TestStatusAddresses(t *testing.T) {
	ip := gwv1.IPAddressType
	host := gwv1.HostnameAddressType
	gws := []*gwv1.Gateway{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "ok"}, Status: gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{{Type: &host, Value: "x.example"}, {Type: &ip, Value: "127.0.50.1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "none"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "bad"}, Status: gwv1.GatewayStatus{Addresses: []gwv1.GatewayStatusAddress{{Value: "not-an-ip"}}}},
	}
	addrs, problems := StatusAddresses{}.Assign(gws)
	if a := addrs[input.Key{Namespace: "a", Name: "ok"}]; a.String() != "127.0.50.1" {
		t.Errorf("ok: %v", a)
	}
	if p := problems[input.Key{Namespace: "a", Name: "none"}]; p == "" {
		t.Error("none: no problem reported")
	}
	if p := problems[input.Key{Namespace: "a", Name: "bad"}]; p == "" {
		t.Error("bad: no problem reported")
	}
	if len(addrs) != 1 {
		t.Errorf("addresses: %v", addrs)
	}
}
