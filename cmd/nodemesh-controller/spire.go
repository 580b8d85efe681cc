package main

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/spire"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// Retry pacing of a node whose sync failed: from spireRetryMin, doubling,
// at most the full-pass interval.
const spireRetryMin = 500 * time.Millisecond

// spireRegistration keeps the SPIRE server's registration entries in line
// with where identities run: for every Node, one entry per identity of a
// Pod bound to it, parented on the node's alias
// (spiffe://<td>/nodemesh/node/<name>, see auth/spire), so each node's
// SPIRE agent delivers to nodemesh's agent exactly the identities it
// hosts. Identities are the cluster's CiliumIdentity numbers (looked up,
// never allocated: the agents allocate).
//
// A Pod, Node or Namespace change syncs only the nodes whose identities
// it changed (each node's wanted set is computed from the informers'
// caches, which costs no request); every interval, a full pass syncs
// every node (entries changed on SPIRE's side are put right, and an
// identity the agents just created is picked up). A node whose sync
// failed stays known with what was last synced, and is retried on its
// own backoff, so a Node deleted meanwhile still has its entries deleted.
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
	// state is every node whose entries were synced or attempted; only
	// Run's goroutine touches it.
	state map[string]*nodeSync
}

// nodeSync is what the registration knows of one node's entries.
type nodeSync struct {
	// ids were synced last (sorted); after a failure, the last
	// successful sync's (what is under the node on SPIRE's side is then
	// unknown: the node is synced again at retryAt whatever it wants).
	ids     []auth.Identity
	failed  bool
	retryAt time.Time
	backoff time.Duration
}

// newSPIRERegistration registers its informers (Pods, Nodes, Namespaces)
// on f, the controller's shared core factory; the caller starts f.
func newSPIRERegistration(f informers.SharedInformerFactory, reg *spire.Registrar, td spiffeid.TrustDomain,
	lookup func(identity.Labels) (model.Identity, bool), podLabels func(*corev1.Pod, map[string]string) identity.Labels,
	every time.Duration, log *slog.Logger) *spireRegistration {
	r := &spireRegistration{reg: reg, td: td, lookup: lookup, podLabels: podLabels, every: every, log: log,
		wake: make(chan struct{}, 1), state: map[string]*nodeSync{}}
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
	return r
}

func (r *spireRegistration) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run syncs until ctx ends: a full pass at the start and every interval,
// a pass of the changed nodes on every wake-up, failed nodes when their
// retry is due.
func (r *spireRegistration) Run(ctx context.Context) error {
	t := time.NewTicker(r.every)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	full := true
	for {
		next := r.pass(ctx, full, time.Now())
		retry.Stop()
		var due <-chan time.Time
		if !next.IsZero() {
			retry.Reset(max(time.Until(next), 0))
			due = retry.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
			full = false
		case <-due:
			full = false
		case <-t.C:
			full = true
		}
	}
}

// pass computes every node's identities from the caches and syncs the
// nodes that need it: all of them on a full pass; otherwise those whose
// identities differ from what was synced and failed ones whose retry is
// due. It returns the earliest retry still pending (zero: none).
func (r *spireRegistration) pass(ctx context.Context, full bool, now time.Time) time.Time {
	want, nodes, ok := r.wanted()
	if !ok {
		return now.Add(r.every) // the caches failed: try again later
	}
	for name := range r.state {
		if _, ok := want[name]; !ok {
			want[name] = nil // the node went: its entries go
		}
	}
	var next time.Time
	for _, name := range slices.Sorted(maps.Keys(want)) {
		ids := want[name]
		st := r.state[name]
		switch {
		case full, st == nil:
		case st.failed:
			if now.Before(st.retryAt) {
				next = earliest(next, st.retryAt)
				continue
			}
		case slices.Equal(st.ids, ids):
			continue
		}
		parent, err := spiffeid.FromSegments(r.td, "nodemesh", "node", name)
		if err != nil {
			r.log.Error("node name is no SPIFFE ID path segment; its identities are not registered", "node", name, "error", err)
			continue
		}
		ch, err := r.reg.Sync(ctx, parent, ids)
		if err != nil {
			if st == nil {
				st = &nodeSync{}
				r.state[name] = st
			}
			st.failed = true
			st.backoff = min(max(2*st.backoff, spireRetryMin), r.every)
			st.retryAt = now.Add(st.backoff)
			next = earliest(next, st.retryAt)
			r.log.Error("syncing SPIRE entries; retrying", "node", name, "in", st.backoff, "error", err)
			continue
		}
		if ch != (spire.Changes{}) {
			r.log.Info("SPIRE entries synced", "node", name, "identities", len(ids), "created", ch.Created, "updated", ch.Updated, "deleted", ch.Deleted)
		}
		if len(ids) == 0 && !slices.ContainsFunc(nodes, func(n *corev1.Node) bool { return n.Name == name }) {
			delete(r.state, name) // gone, and its entries with it
			continue
		}
		r.state[name] = &nodeSync{ids: ids}
	}
	return next
}

// wanted maps every Node to the sorted identities of its Pods.
func (r *spireRegistration) wanted() (map[string][]auth.Identity, []*corev1.Node, bool) {
	nodes, err := r.nodes()
	if err != nil {
		r.log.Error("listing Nodes for SPIRE registration", "error", err)
		return nil, nil, false
	}
	pods, err := r.pods()
	if err != nil {
		r.log.Error("listing Pods for SPIRE registration", "error", err)
		return nil, nil, false
	}
	nss, err := r.nss()
	if err != nil {
		r.log.Error("listing Namespaces for SPIRE registration", "error", err)
		return nil, nil, false
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
			continue // not allocated yet: a later pass
		}
		if ids := want[p.Spec.NodeName]; !slices.Contains(ids, auth.Identity(id)) {
			want[p.Spec.NodeName] = append(ids, auth.Identity(id))
		}
	}
	for _, ids := range want {
		slices.Sort(ids)
	}
	return want, nodes, true
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}
