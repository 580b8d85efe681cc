package main

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/spiretest"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// faultConn is a connection to the real SPIRE server that counts the
// registrar's ListEntries per parent (one per Sync) and fails those of
// the parents set in fail.
type faultConn struct {
	grpc.ClientConnInterface
	mu    sync.Mutex
	fail  map[string]bool
	lists map[string]int
}

func (c *faultConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if req, ok := args.(*entryv1.ListEntriesRequest); ok {
		p := req.GetFilter().GetByParentId().GetPath()
		c.mu.Lock()
		c.lists[p]++
		fail := c.fail[p]
		c.mu.Unlock()
		if fail {
			return status.Error(codes.Unavailable, "injected failure")
		}
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

func (c *faultConn) setFail(node string, on bool) {
	c.mu.Lock()
	c.fail["/nodemesh/node/"+node] = on
	c.mu.Unlock()
}

func (c *faultConn) syncs(node string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lists["/nodemesh/node/"+node]
}

// cluster is the registration's view of the API server (what its
// informers' caches would hold), changed by the test.
type cluster struct {
	mu    sync.Mutex
	nodes map[string]bool
	pods  map[string]*corev1.Pod
}

func (c *cluster) setNode(name string, on bool) {
	c.mu.Lock()
	c.nodes[name] = on
	c.mu.Unlock()
}

func (c *cluster) setPod(name, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node == "" {
		delete(c.pods, name)
		return
	}
	c.pods[name] = &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: node}}
}

// TestSPIRERegistrationSyncsPerNode runs the registration against a real
// SPIRE server whose answers for some nodes fail: a Pod change syncs only
// the node it changed (not every node); a node whose sync failed is
// retried on its own, with no event and long before the full pass; and a
// node deleted while its syncs fail still has its entries deleted once
// SPIRE answers again.
func TestSPIRERegistrationSyncsPerNode(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	srv := spiretest.ForTest(t, spiretest.ServerOptions{TrustDomain: td})
	conn, err := spire.DialServer(srv.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fc := &faultConn{ClientConnInterface: conn, fail: map[string]bool{}, lists: map[string]int{}}
	log := slog.New(slog.DiscardHandler)
	reg, err := spire.NewRegistrar(fc, td, spire.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	// Identity n+1000 for the Pod whose app label is "web-<n>".
	podLabels := identity.NewManager().PodLabels
	lookup := func(ls identity.Labels) (model.Identity, bool) {
		v, ok := ls.Lookup("k8s", "app")
		if !ok || len(v) < 5 {
			return 0, false
		}
		n, err := strconv.Atoi(v[4:])
		return model.Identity(1000 + n), err == nil
	}
	cl := &cluster{nodes: map[string]bool{}, pods: map[string]*corev1.Pod{}}
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		cl.setNode(n, true)
	}
	cl.setPod("web-1", "node-a")
	cl.setPod("web-2", "node-b")
	cl.setPod("web-3", "node-c")
	// The full pass would come only after an hour: what the test sees
	// is the registration's reaction to events and failures.
	r := newSPIRERegistration(newTestFactory(t), reg, td, lookup, podLabels, time.Hour, log)
	r.nodes = func() ([]*corev1.Node, error) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		var out []*corev1.Node
		for n, on := range cl.nodes {
			if on {
				out = append(out, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
			}
		}
		return out, nil
	}
	r.pods = func() ([]*corev1.Pod, error) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		var out []*corev1.Pod
		for _, p := range cl.pods {
			out = append(out, p)
		}
		return out, nil
	}
	r.nss = func() ([]*corev1.Namespace, error) { return nil, nil }
	fc.setFail("node-b", true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	entries := func() map[string]string {
		resp, err := srv.Entries().ListEntries(ctx, &entryv1.ListEntriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, e := range resp.Entries {
			out[e.SpiffeId.Path] = e.ParentId.Path
		}
		return out
	}
	wait := func(what string, ok func(map[string]string) bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			es := entries()
			if ok(es) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: entries %v", what, es)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("node-a and node-c are registered, node-b's sync fails", func(es map[string]string) bool {
		return es["/identity/1001"] == "/nodemesh/node/node-a" && es["/identity/1003"] == "/nodemesh/node/node-c" && fc.syncs("node-b") > 0
	})

	// A Pod added on node-a syncs node-a, and not node-c.
	before := fc.syncs("node-c")
	cl.setPod("web-4", "node-a")
	r.poke()
	wait("the new Pod's identity is registered on node-a", func(es map[string]string) bool { return es["/identity/1004"] == "/nodemesh/node/node-a" })
	if n := fc.syncs("node-c"); n != before {
		t.Errorf("a Pod change on node-a synced the unchanged node-c %d times", n-before)
	}

	// node-b's SPIRE answers again: it is retried without any event.
	fc.setFail("node-b", false)
	wait("node-b is registered on retry", func(es map[string]string) bool { return es["/identity/1002"] == "/nodemesh/node/node-b" })

	// node-c goes while its syncs fail: once SPIRE answers, its entries go.
	fc.setFail("node-c", true)
	cl.setNode("node-c", false)
	cl.setPod("web-3", "")
	r.poke()
	deadline := time.Now().Add(60 * time.Second)
	for fc.syncs("node-c") < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("node-c's deletion was not attempted (and retried)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	fc.setFail("node-c", false)
	wait("the deleted node-c's entries are deleted", func(es map[string]string) bool { _, ok := es["/identity/1003"]; return !ok })
	if es := entries(); es["/identity/1001"] != "/nodemesh/node/node-a" || es["/identity/1002"] != "/nodemesh/node/node-b" {
		t.Errorf("other nodes' entries changed: %v", es)
	}
}

// newTestFactory is a core informer factory that is never started: the
// test replaces the registration's listers with its own view.
func newTestFactory(t *testing.T) informers.SharedInformerFactory {
	t.Helper()
	core, err := kubernetes.NewForConfig(&rest.Config{Host: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return informers.NewSharedInformerFactory(core, 0)
}
