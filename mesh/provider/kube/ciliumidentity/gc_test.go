package ciliumidentity

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond with a generous deadline (watch caches catch up
// asynchronously).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCollectorDeletesOnlyUnusedIdentities: with a real API server, the
// collector keeps identities Pods use, deletes an unused one only after
// it has been seen unused for the grace period, deletes a duplicate of a
// used set, leaves malformed objects alone, and collects a Pod's
// identity once the Pod is gone for the grace period.
func TestCollectorDeletesOnlyUnusedIdentities(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Labels: map[string]string{"team": "a"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager runs, so the ServiceAccount admission needs
	// the default account made by hand.
	if _, err := c.core.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := c.core.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mgr := identity.NewManager()
	used := mgr.PodLabels(pod, map[string]string{"team": "a", identity.LabelNamespaceName: "shop"})
	unused := labelSet("gone")

	a, _ := startAllocator(t, c.dyn())
	got := mustAllocate(t, a, []identity.Labels{used, unused})
	usedID, unusedID := got[used.String()], got[unused.String()]
	// The agent's next update no longer needs the unused set (an agent
	// re-creates a deleted identity it still hands out).
	mustAllocate(t, a, []identity.Labels{used})
	// A duplicate of the used set at a higher number (a race lost long
	// ago), and a malformed object nobody uses.
	res := c.dyn().Resource(ciliumv2.CiliumIdentityResource)
	dupID := model.Identity(identity.MaxWorkload)
	if usedID == dupID {
		dupID--
	}
	if _, err := res.Create(ctx, newObject(dupID, used), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := newObject(300, unused)
	bad.Object["security-labels"] = map[string]any{"nosource": "x"}
	if usedID == 300 || unusedID == 300 {
		bad.SetName("301")
	}
	if _, err := res.Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	const grace = time.Minute
	col := NewCollector(c.core, c.dyn(), mgr.PodLabels, WithGrace(grace), WithClock(clock.now))
	if err := col.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the collector to see every identity", func() bool { return len(col.ids.GetStore().List()) == 4 })
	exists := func(id model.Identity) bool {
		_, err := res.Get(ctx, name(id), metav1.GetOptions{})
		return err == nil
	}
	pass := func() []model.Identity {
		t.Helper()
		d, err := col.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	// First sight of an unused identity: it may belong to a Pod being
	// created, so nothing is deleted, nor before the grace period ends.
	if d := pass(); len(d) != 0 {
		t.Fatalf("deleted %v on first sight", d)
	}
	clock.add(grace - time.Second)
	if d := pass(); len(d) != 0 {
		t.Fatalf("deleted %v before the grace period ended", d)
	}
	clock.add(time.Second)
	d := pass()
	slices.Sort(d)
	want := []model.Identity{unusedID, dupID}
	slices.Sort(want)
	if !slices.Equal(d, want) {
		t.Fatalf("deleted %v, want the unused %d and the duplicate %d", d, unusedID, dupID)
	}
	if !exists(usedID) || exists(unusedID) || exists(dupID) || !exists(model.Identity(mustParse(t, bad.GetName()))) {
		t.Fatalf("after collection: used %v, unused %v, duplicate %v, malformed %v", exists(usedID), exists(unusedID), exists(dupID), exists(300))
	}

	// The Pod goes (and the agent's next update drops it): its identity
	// is collected one grace period later.
	mustAllocate(t, a, nil)
	if err := c.core.CoreV1().Pods("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the collector to see the Pod go", func() bool { return len(col.pods.GetStore().List()) == 0 })
	clock.add(time.Hour)
	if d := pass(); len(d) != 0 {
		t.Fatalf("deleted %v on first sight", d)
	}
	clock.add(grace)
	if d := pass(); !slices.Equal(d, []model.Identity{usedID}) {
		t.Fatalf("deleted %v, want the Pod's %d", d, usedID)
	}
}

// TestDeletedIdentityInUseIsRecreated: when an identity an agent handed
// out is deleted under it (the collector deciding in the instant before
// it sees a new Pod), the agent puts it back with the same number.
func TestDeletedIdentityInUseIsRecreated(t *testing.T) {
	c := newCluster(t)
	a, _ := startAllocator(t, c.dyn())
	ls := labelSet("kept")
	id := mustAllocate(t, a, []identity.Labels{ls})[ls.String()]
	res := c.dyn().Resource(ciliumv2.CiliumIdentityResource)
	waitFor(t, "the allocator to see its identity", func() bool { _, ok := a.Lookup(ls); return ok })
	if err := res.Delete(context.Background(), name(id), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the identity to be re-created", func() bool {
		u, err := res.Get(context.Background(), name(id), metav1.GetOptions{})
		return err == nil && parseObject(u).Labels.Equal(ls)
	})
	// A set no longer allocated is not re-created.
	other := labelSet("other")
	oid := mustAllocate(t, a, []identity.Labels{other})[other.String()]
	waitFor(t, "the allocator to see the other identity", func() bool { _, ok := a.Lookup(other); return ok })
	if err := res.Delete(context.Background(), name(id), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the allocator to see the delete", func() bool { _, ok := a.Lookup(ls); return !ok })
	time.Sleep(100 * time.Millisecond)
	if _, err := res.Get(context.Background(), name(id), metav1.GetOptions{}); err == nil {
		t.Fatalf("identity %d re-created though no longer in use (in use: %d)", id, oid)
	}
}

func mustParse(t *testing.T, s string) model.Identity {
	id, err := parseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
