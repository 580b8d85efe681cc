package ciliumidentity

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// Collector defaults: an identity is deleted once it has been seen
// unused for DefaultGrace, checked every DefaultInterval.
const (
	DefaultGrace    = 5 * time.Minute
	DefaultInterval = time.Minute
)

// WithGrace sets how long an identity must be seen unused before the
// collector deletes it.
func WithGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithInterval sets how often Run collects.
func WithInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// WithClock sets the collector's clock (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithInformerFactory makes the collector watch Pods and Namespaces
// through f, a factory the process shares (so each kind is listed and
// watched once), instead of a factory of its own. Start starts f.
func WithInformerFactory(f informers.SharedInformerFactory) Option {
	return func(o *options) { o.factory = f }
}

// Collector deletes CiliumIdentities no Pod uses any more. Create it with
// NewCollector; call Run, or Start and then Pass.
type Collector struct {
	res       dynamic.ResourceInterface
	ids       cache.SharedIndexInformer
	factory   informers.SharedInformerFactory
	pods      cache.SharedIndexInformer
	nss       cache.SharedIndexInformer
	podLabels func(*corev1.Pod, map[string]string) identity.Labels
	o         options

	mu sync.Mutex
	// unusedSince is when each identity (by name) was first seen unused
	// in an unbroken run of passes.
	unusedSince map[string]time.Time
}

// NewCollector returns a collector. podLabels computes a Pod's identity
// label set; it must be the agents' (an identity.Manager's PodLabels with
// the same --labels and cluster name), or the collector would take used
// identities for unused ones.
func NewCollector(core kubernetes.Interface, dyn dynamic.Interface, podLabels func(*corev1.Pod, map[string]string) identity.Labels, opts ...Option) *Collector {
	c := &Collector{res: dyn.Resource(ciliumv2.CiliumIdentityResource), podLabels: podLabels, o: buildOptions(opts),
		unusedSince: map[string]time.Time{}}
	c.ids = newInformer(dyn, c.o.log)
	c.factory = c.o.factory
	if c.factory == nil {
		c.factory = NewInformerFactory(core)
	}
	c.pods = c.factory.Core().V1().Pods().Informer()
	c.nss = c.factory.Core().V1().Namespaces().Informer()
	return c
}

// NewInformerFactory returns a core informer factory fit for the
// collector (managed fields dropped, no resync) to share with other users
// through WithInformerFactory.
func NewInformerFactory(core kubernetes.Interface) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(core, 0, informers.WithTransform(func(obj any) (any, error) {
		if m, ok := obj.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		return obj, nil
	}))
}

// Start runs the watches and waits until they have listed everything.
func (c *Collector) Start(ctx context.Context) error {
	go c.ids.Run(ctx.Done())
	c.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.ids.HasSynced, c.pods.HasSynced, c.nss.HasSynced) {
		return fmt.Errorf("listing identities, Pods and Namespaces: %w", context.Cause(ctx))
	}
	return nil
}

// Run starts the collector and passes every interval until ctx ends.
func (c *Collector) Run(ctx context.Context) error {
	if err := c.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	t := time.NewTicker(c.o.interval)
	defer t.Stop()
	for {
		if _, err := c.Pass(ctx); err != nil {
			c.o.log.Warn("collecting unused identities", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// used returns the canonical text of every label set a Pod needs. A Pod
// counts from the moment it exists (before it has an address, so an
// identity allocated for a Pod being created is kept) until it finished.
func (c *Collector) used() map[string]identity.Labels {
	nsLabels := map[string]map[string]string{}
	for _, o := range c.nss.GetStore().List() {
		if ns, ok := o.(*corev1.Namespace); ok {
			nsLabels[ns.Name] = ns.Labels
		}
	}
	out := map[string]identity.Labels{}
	for _, o := range c.pods.GetStore().List() {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		ls := c.podLabels(p, nsLabels[p.Namespace])
		out[ls.String()] = ls
	}
	return out
}

// Pass deletes the identities that have been unused for the grace
// period and returns their numbers. An identity is used when a Pod has
// its label set and it is the lowest number for that set (a duplicate
// left by a race is not). Malformed objects are never deleted: they are
// not ours to judge.
func (c *Collector) Pass(ctx context.Context) ([]model.Identity, error) {
	now := c.o.now()
	used := c.used()
	idx := c.ids.GetIndexer()
	c.mu.Lock()
	defer c.mu.Unlock()
	present := map[string]bool{}
	var expired []*entry
	for _, o := range idx.List() {
		e, ok := o.(*entry)
		if !ok || e.Err != nil || e.DeletionTimestamp != nil {
			continue
		}
		present[e.Name] = true
		if ls, ok := used[e.Labels.String()]; ok && ls.Equal(e.Labels) {
			if best, _ := lookup(idx, ls); best == e.ID {
				delete(c.unusedSince, e.Name)
				continue
			}
		}
		since, seen := c.unusedSince[e.Name]
		if !seen {
			c.unusedSince[e.Name] = now
			continue
		}
		if now.Sub(since) >= c.o.grace {
			expired = append(expired, e)
		}
	}
	for name := range c.unusedSince {
		if !present[name] {
			delete(c.unusedSince, name)
		}
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].ID < expired[j].ID })
	var deleted []model.Identity
	var firstErr error
	for _, e := range expired {
		dctx, cancel := context.WithTimeout(ctx, c.o.timeout)
		uid := e.UID
		err := c.res.Delete(dctx, strconv.FormatUint(uint64(e.ID), 10), metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid}})
		cancel()
		switch {
		case err == nil:
			c.o.log.Info("deleted unused identity", "id", e.ID, "labels", e.Labels.String())
			deleted = append(deleted, e.ID)
			delete(c.unusedSince, e.Name)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Gone or replaced meanwhile: the next pass sees the new state.
			delete(c.unusedSince, e.Name)
		default:
			if firstErr == nil {
				firstErr = fmt.Errorf("deleting CiliumIdentity %d: %w", e.ID, err)
			}
		}
	}
	return deleted, firstErr
}
