package ciliumidentity

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

type cluster struct {
	core kubernetes.Interface
	dyn  func() dynamic.Interface // a fresh client per agent
}

func newCluster(t *testing.T) cluster {
	t.Helper()
	c := controlplane.ForTest(t, "standard")
	core, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cluster{core: core, dyn: func() dynamic.Interface {
		d, err := dynamic.NewForConfig(c.Config)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}}
}

// startAllocator starts an allocator (an agent) until the test ends or
// stop is called.
func startAllocator(t *testing.T, dyn dynamic.Interface, opts ...Option) (*Allocator, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := NewAllocator(dyn, opts...)
	// Start's context is the watch's lifetime.
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a, cancel
}

func labelSet(app string) identity.Labels {
	return identity.NewLabels(identity.Label{Source: "k8s", Key: "app", Value: app},
		identity.Label{Source: "k8s", Key: identity.LabelNamespace, Value: "default"},
		identity.Label{Source: "k8s", Key: identity.LabelCluster, Value: "default"})
}

// stored lists the well-formed identities on the server: label set →
// numbers.
func stored(t *testing.T, dyn dynamic.Interface) map[string][]model.Identity {
	t.Helper()
	l, err := dyn.Resource(ciliumv2.CiliumIdentityResource).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]model.Identity{}
	for i := range l.Items {
		if e := parseObject(&l.Items[i]); e.Err == nil {
			out[e.Labels.String()] = append(out[e.Labels.String()], e.ID)
		}
	}
	return out
}

func mustAllocate(t *testing.T, a *Allocator, sets []identity.Labels) map[string]model.Identity {
	t.Helper()
	got, failed := a.Allocate(sets)
	if len(failed) != 0 {
		t.Fatalf("allocation failed: %v", failed)
	}
	return got
}

// TestConcurrentAgentsAgree: several agents allocating the same label
// sets at the same moment (each starting from an empty cache, the worst
// case) end with one number per set, the same on every agent, and one
// object per set on the server. Some sets share their candidate number
// with an object of other labels, so agents also meet on probing.
func TestConcurrentAgentsAgree(t *testing.T) {
	c := newCluster(t)
	var sets []identity.Labels
	for i := range 40 {
		sets = append(sets, labelSet(fmt.Sprintf("app-%d", i)))
	}
	// Occupy the candidate numbers of the first five sets with other
	// labels: allocation has to move past them, identically everywhere.
	admin := c.dyn().Resource(ciliumv2.CiliumIdentityResource)
	for i, ls := range sets[:5] {
		if _, err := admin.Create(context.Background(), newObject(candidate(ls), labelSet(fmt.Sprintf("squatter-%d", i))), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	const agents = 4
	allocs := make([]*Allocator, agents)
	for i := range allocs {
		allocs[i], _ = startAllocator(t, c.dyn())
	}
	results := make([]map[string]model.Identity, agents)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range allocs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, failed := allocs[i].Allocate(sets)
			if len(failed) != 0 {
				t.Errorf("agent %d: %v", i, failed)
			}
			results[i] = got
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, ls := range sets {
		k := ls.String()
		for i := 1; i < agents; i++ {
			if results[i][k] != results[0][k] {
				t.Errorf("%s: agent 0 has %d, agent %d has %d", k, results[0][k], i, results[i][k])
			}
		}
	}
	for i, ls := range sets[:5] {
		if results[0][ls.String()] == candidate(ls) {
			t.Errorf("set %d took its candidate number %d, which another set holds", i, candidate(ls))
		}
	}
	objs := stored(t, c.dyn())
	for _, ls := range sets {
		if ids := objs[ls.String()]; len(ids) != 1 || ids[0] != results[0][ls.String()] {
			t.Errorf("%s: stored as %v, allocated %d", ls, ids, results[0][ls.String()])
		}
	}
}

// TestRestartKeepsNumbers: an agent that restarts (a new allocator on the
// same cluster) learns every number before allocating and creates
// nothing; identity Managers on two nodes resolve a Pod to the same
// number.
func TestRestartKeepsNumbers(t *testing.T) {
	c := newCluster(t)
	var sets []identity.Labels
	for i := range 20 {
		sets = append(sets, labelSet(fmt.Sprintf("web-%d", i)))
	}
	a1, stop := startAllocator(t, c.dyn())
	before := mustAllocate(t, a1, sets)
	stop()
	count := len(stored(t, c.dyn()))

	a2, _ := startAllocator(t, c.dyn())
	// Asked in another order: numbers must not follow the order.
	rev := append([]identity.Labels(nil), sets...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	after := mustAllocate(t, a2, rev)
	for k, id := range before {
		if after[k] != id {
			t.Errorf("%s: %d before the restart, %d after", k, id, after[k])
		}
	}
	if n := len(stored(t, c.dyn())); n != count {
		t.Errorf("%d identities stored after the restart, %d before", n, count)
	}

	// Two nodes' Managers with the cluster-wide allocator.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p", Labels: map[string]string{"app": "web-3"}},
		Status: corev1.PodStatus{PodIP: "10.0.0.5"}}
	a3, _ := startAllocator(t, c.dyn())
	var nodes []model.Identity
	for i, a := range []*Allocator{a2, a3} {
		st := identity.NewManager(identity.WithAllocator(a)).Resolve(identity.Input{Pods: []*corev1.Pod{pod}})
		if len(st.Endpoints) != 1 {
			t.Fatalf("node %d: endpoints %v, problems %v", i, st.Endpoints, st.Problems)
		}
		nodes = append(nodes, st.Endpoints[0].Identity)
	}
	onServer := stored(t, c.dyn())[identity.NewManager().PodLabels(pod, nil).String()]
	if nodes[0] != nodes[1] || len(onServer) != 1 || nodes[0] != onServer[0] {
		t.Errorf("the nodes resolve the Pod to %v; the server has %v", nodes, onServer)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHostileObjectsAreIgnored: objects that are not well-formed
// identities (names that are not numbers in the cluster range, labels
// without a source, label maps over the bounds) are logged and ignored;
// allocation works around them and never adopts one.
func TestHostileObjectsAreIgnored(t *testing.T) {
	c := newCluster(t)
	res := c.dyn().Resource(ciliumv2.CiliumIdentityResource)
	ls := labelSet("target")
	huge := map[string]any{}
	for i := range MaxLabels + 10 {
		huge[fmt.Sprintf("k8s:l%d", i)] = "v"
	}
	mk := func(name string, labels map[string]any) {
		t.Helper()
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cilium.io/v2", "kind": "CiliumIdentity",
			"metadata": map[string]any{"name": name}, "security-labels": labels}}
		if _, err := res.Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	good := map[string]any{}
	for k, v := range securityLabels(ls) {
		good[k] = v
	}
	mk("not-a-number", good)
	mk("0300", good)
	mk("70000", good)
	mk("7", good)
	mk(strconv.Itoa(int(candidate(ls))), map[string]any{"app": "target"}) // no source, at the candidate
	mk(strconv.Itoa(int(candidate(ls))+1), huge)
	mk(strconv.Itoa(int(candidate(ls))+2), map[string]any{})

	var logs syncBuffer
	a, _ := startAllocator(t, c.dyn(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	got := mustAllocate(t, a, []identity.Labels{ls})
	id := got[ls.String()]
	if id < identity.MinWorkload || id > identity.MaxWorkload {
		t.Fatalf("allocated %d", id)
	}
	for off := range model.Identity(3) {
		if id == candidate(ls)+off {
			t.Errorf("allocated %d, a malformed object's number", id)
		}
	}
	out := logs.String()
	for _, want := range []string{"name=not-a-number", "name=0300", "name=70000", "name=7 ", "is not source:key",
		fmt.Sprintf("more than %d", MaxLabels), "security-labels is empty"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "ignoring CiliumIdentity") {
		t.Errorf("no ignore message:\n%s", out)
	}
}

// TestStartWithoutTheCRD: an API server without the CiliumIdentity CRD
// makes Start fail at once with a clear error instead of waiting for ever.
func TestStartWithoutTheCRD(t *testing.T) {
	c := newCluster(t)
	crds := c.dyn().Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if err := crds.Delete(context.Background(), "ciliumidentities.cilium.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deadline := time.Now().Add(time.Minute)
	for {
		err := NewAllocator(c.dyn(), WithTimeout(5*time.Second)).Start(ctx)
		if err != nil && strings.Contains(err.Error(), "CRD installed") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Start: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the CRD's removal takes a moment to be served
	}
}
