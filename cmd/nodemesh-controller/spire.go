package main

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// spireRegistration keeps the SPIRE server's registration entries in line
// with where identities run: for every Node, one entry per identity of a
// Pod bound to it, parented on the node's alias
// (spiffe://<td>/nodemesh/node/<name>, see auth/spire), so each node's
// SPIRE agent delivers to nodemesh's agent exactly the identities it
// hosts. Identities are the cluster's CiliumIdentity numbers (looked up,
// never allocated: the agents allocate). A pass runs on every Pod, Node
// and Namespace change and every interval (an identity the agents just
// created is picked up there); a Node that went is synced empty once.
type spireRegistration struct {
	reg       *spire.Registrar
	td        spiffeid.TrustDomain
	lookup    func(identity.Labels) (model.Identity, bool)
	podLabels func(*corev1.Pod, map[string]string) identity.Labels
	every     time.Duration
	log       *slog.Logger

	pods  func() ([]*corev1.Pod, error)
	nodes func() ([]*corev1.Node, error)
	nss   func() ([]*corev1.Namespace, error)
	wake  chan struct{}
	// synced are the nodes whose entries were synced, so a node that
	// goes has its entries deleted.
	synced map[string][]auth.Identity
}

func newSPIRERegistration(core kubernetes.Interface, reg *spire.Registrar, td spiffeid.TrustDomain,
	lookup func(identity.Labels) (model.Identity, bool), podLabels func(*corev1.Pod, map[string]string) identity.Labels,
	every time.Duration, log *slog.Logger) (*spireRegistration, informers.SharedInformerFactory) {
	f := informers.NewSharedInformerFactory(core, 0)
	r := &spireRegistration{reg: reg, td: td, lookup: lookup, podLabels: podLabels, every: every, log: log,
		wake: make(chan struct{}, 1), synced: map[string][]auth.Identity{}}
	pods, nodes, nss := f.Core().V1().Pods(), f.Core().V1().Nodes(), f.Core().V1().Namespaces()
	r.pods = func() ([]*corev1.Pod, error) { return pods.Lister().List(labels.Everything()) }
	r.nodes = func() ([]*corev1.Node, error) { return nodes.Lister().List(labels.Everything()) }
	r.nss = func() ([]*corev1.Namespace, error) { return nss.Lister().List(labels.Everything()) }
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.poke() },
		UpdateFunc: func(any, any) { r.poke() },
		DeleteFunc: func(any) { r.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), nodes.Informer(), nss.Informer()} {
		_, _ = inf.AddEventHandler(h)
	}
	return r, f
}

func (r *spireRegistration) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends. A failed pass is retried at the next wake-up
// or interval; entries stay as they were meanwhile.
func (r *spireRegistration) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		r.pass(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-t.C:
		}
	}
}

// pass computes every node's identities and syncs every node: Sync is a
// full, idempotent reconcile, so entries changed on SPIRE's side are put
// right too.
func (r *spireRegistration) pass(ctx context.Context) {
	nodes, err := r.nodes()
	if err != nil {
		r.log.Error("listing Nodes for SPIRE registration", "error", err)
		return
	}
	pods, err := r.pods()
	if err != nil {
		r.log.Error("listing Pods for SPIRE registration", "error", err)
		return
	}
	nss, err := r.nss()
	if err != nil {
		r.log.Error("listing Namespaces for SPIRE registration", "error", err)
		return
	}
	nsLabels := make(map[string]map[string]string, len(nss))
	for _, ns := range nss {
		nsLabels[ns.Name] = ns.Labels
	}
	want := make(map[string][]auth.Identity, len(nodes))
	for _, n := range nodes {
		want[n.Name] = nil
	}
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if _, ok := want[p.Spec.NodeName]; !ok {
			continue // its node is gone
		}
		id, ok := r.lookup(r.podLabels(p, nsLabels[p.Namespace]))
		if !ok {
			continue // not allocated yet: the next pass
		}
		if ids := want[p.Spec.NodeName]; !slices.Contains(ids, auth.Identity(id)) {
			want[p.Spec.NodeName] = append(ids, auth.Identity(id))
		}
	}
	for name := range r.synced {
		if _, ok := want[name]; !ok {
			want[name] = nil // the node went: its entries go once
		}
	}
	for name, ids := range want {
		slices.Sort(ids)
		parent, err := spiffeid.FromSegments(r.td, "nodemesh", "node", name)
		if err != nil {
			r.log.Error("node name is no SPIFFE ID path segment; its identities are not registered", "node", name, "error", err)
			continue
		}
		ch, err := r.reg.Sync(ctx, parent, ids)
		if err != nil {
			r.log.Error("syncing SPIRE entries", "node", name, "error", err)
			delete(r.synced, name)
			continue
		}
		if ch != (spire.Changes{}) {
			r.log.Info("SPIRE entries synced", "node", name, "identities", len(ids), "created", ch.Created, "updated", ch.Updated, "deleted", ch.Deleted)
		}
		if len(ids) == 0 && !nodeExists(nodes, name) {
			delete(r.synced, name)
		} else {
			r.synced[name] = ids
		}
	}
}

func nodeExists(nodes []*corev1.Node, name string) bool {
	return slices.ContainsFunc(nodes, func(n *corev1.Node) bool { return n.Name == name })
}
