package kube

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// TestProviderSharesTheInformerFactory checks that a provider given a
// shared factory watches Namespaces (and its other core kinds) through
// the factory's informers, the ones another user of the factory gets, so
// the process lists and watches each kind once; and that what the shared
// informer sees reaches the provider's snapshots.
func TestProviderSharesTheInformerFactory(t *testing.T) {
	c := newClients(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := informers.NewSharedInformerFactoryWithOptions(c.core, 0, informers.WithTransform(stripManagedFields))
	p := New(c.core, c.gw, WithInformerFactory(f))
	for name, inf := range map[string]cache.SharedIndexInformer{
		"Namespaces": f.Core().V1().Namespaces().Informer(),
		"Services":   f.Core().V1().Services().Informer(),
		"Ingresses":  f.Networking().V1().Ingresses().Informer(),
	} {
		if !slices.Contains(p.listers.informers, inf) {
			t.Errorf("the provider does not watch %s through the shared factory's informer", name)
		}
	}

	var got snapshots
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, got.put) }()
	mustCreate(t, c.core.CoreV1().Namespaces().Create, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}})
	got.waitFor(t, "the namespace", func(s *input.Snapshot) bool {
		return slices.ContainsFunc(s.Namespaces, func(n *corev1.Namespace) bool { return n.Name == "shared" })
	})
	nss := f.Core().V1().Namespaces().Lister()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := nss.Get("shared"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shared factory's Namespace informer never saw the namespace")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
