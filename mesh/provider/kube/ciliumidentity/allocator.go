package ciliumidentity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// ErrNotStarted is returned by Allocate before Start has listed the
// cluster's identities.
var ErrNotStarted = errors.New("identity allocator not started")

// labelIndex indexes well-formed identities by their label set's
// canonical text.
const labelIndex = "labels"

// Allocator numbers label sets cluster-wide with CiliumIdentity objects.
// Create it with NewAllocator, call Start once, then Allocate (from the
// identity Manager).
type Allocator struct {
	res      dynamic.ResourceInterface
	inf      cache.SharedIndexInformer
	log      *slog.Logger
	timeout  time.Duration
	maxTries int

	// stopWatch ends the watch; it runs until the context Start was given
	// ends.
	stopWatch context.CancelFunc

	mu      sync.Mutex
	started bool
	// held are the numbers the last Allocate handed out, with their
	// labels: if one of them is deleted (the collector raced a new Pod),
	// it is re-created at once.
	held map[model.Identity]identity.Labels
}

var _ identity.Allocator = (*Allocator)(nil)

// Option configures an Allocator or a Collector.
type Option func(*options)

type options struct {
	log      *slog.Logger
	timeout  time.Duration
	grace    time.Duration
	interval time.Duration
	now      func() time.Time
	factory  informers.SharedInformerFactory
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithTimeout bounds each API call (default 10s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

func buildOptions(opts []Option) options {
	o := options{log: slog.Default(), timeout: 10 * time.Second, grace: DefaultGrace, interval: DefaultInterval, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// newInformer watches CiliumIdentity objects, keeping only entries and
// indexing them by label set. Malformed objects are logged as they
// arrive and kept only as a name.
func newInformer(dyn dynamic.Interface, log *slog.Logger) cache.SharedIndexInformer {
	inf := dynamicinformer.NewFilteredDynamicInformer(dyn, ciliumv2.CiliumIdentityResource, "", 0,
		cache.Indexers{labelIndex: func(obj any) ([]string, error) {
			if e, ok := obj.(*entry); ok && e.Err == nil {
				return []string{e.Labels.String()}, nil
			}
			return nil, nil
		}}, nil).Informer()
	_ = inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		e := parseObject(u)
		if e.Err != nil {
			log.Warn("ignoring CiliumIdentity", "name", truncate(u.GetName()), "error", e.Err)
		}
		return e, nil
	})
	return inf
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// NewAllocator returns an allocator writing through dyn. It starts
// nothing until Start.
func NewAllocator(dyn dynamic.Interface, opts ...Option) *Allocator {
	o := buildOptions(opts)
	a := &Allocator{res: dyn.Resource(ciliumv2.CiliumIdentityResource), log: o.log, timeout: o.timeout, maxTries: 32,
		held: map[model.Identity]identity.Labels{}}
	a.inf = newInformer(dyn, o.log)
	_, _ = a.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: a.deleted})
	return a
}

// Start runs the watch until ctx ends and waits until every existing
// identity is known, so a restarted agent finds the numbers it and its
// peers handed out before allocating anything.
func (a *Allocator) Start(ctx context.Context) error {
	// The watch would retry a missing resource for ever; say why instead.
	lctx, cancel := context.WithTimeout(ctx, a.timeout)
	_, err := a.res.List(lctx, metav1.ListOptions{Limit: 1})
	cancel()
	if err != nil {
		return fmt.Errorf("listing CiliumIdentities (is the cilium.io/v2 CiliumIdentity CRD installed?): %w", err)
	}
	// The CRD can go away between that list and the watch's own: the
	// first sync is bounded too (a few API-call timeouts, room for a large
	// paged list), and a failed Start stops its watch. An Allocator is
	// started once; after a failure make a new one.
	ictx, stop := context.WithCancel(ctx)
	go a.inf.Run(ictx.Done())
	sctx, scancel := context.WithTimeout(ictx, 3*a.timeout)
	synced := cache.WaitForCacheSync(sctx.Done(), a.inf.HasSynced)
	scancel()
	if !synced {
		stop()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("listing CiliumIdentities: %w", err)
		}
		return fmt.Errorf("listing CiliumIdentities (is the cilium.io/v2 CiliumIdentity CRD installed?): no complete list within %s", 3*a.timeout)
	}
	a.stopWatch = stop
	a.mu.Lock()
	a.started = true
	a.mu.Unlock()
	return nil
}

// Allocate implements identity.Allocator. Each set is looked up in the
// watch cache by its labels; a set found under several numbers takes the
// lowest (every agent makes the same choice). A set not found is created
// at its candidate number or the next free one after it.
func (a *Allocator) Allocate(sets []identity.Labels) (map[string]model.Identity, map[string]error) {
	got := make(map[string]model.Identity, len(sets))
	failed := map[string]error{}
	a.mu.Lock()
	started := a.started
	a.mu.Unlock()
	held := make(map[model.Identity]identity.Labels, len(sets))
	for _, ls := range sets {
		k := ls.String()
		if !started {
			failed[k] = ErrNotStarted
			continue
		}
		id, err := a.allocate(ls)
		if err != nil {
			failed[k] = err
			continue
		}
		got[k] = id
		held[id] = ls
	}
	a.mu.Lock()
	a.held = held
	a.mu.Unlock()
	if len(failed) == 0 {
		failed = nil
	}
	return got, failed
}

// Lookup returns the number the cluster uses for ls, if there is one.
func (a *Allocator) Lookup(ls identity.Labels) (model.Identity, bool) {
	return lookup(a.inf.GetIndexer(), ls)
}

func lookup(idx cache.Indexer, ls identity.Labels) (model.Identity, bool) {
	objs, _ := idx.ByIndex(labelIndex, ls.String())
	var best model.Identity
	for _, o := range objs {
		e := o.(*entry)
		// The canonical text could be ambiguous for hostile values; the
		// parsed sets are not.
		if e.Err == nil && e.DeletionTimestamp == nil && e.Labels.Equal(ls) && (best == 0 || e.ID < best) {
			best = e.ID
		}
	}
	return best, best != 0
}

func (a *Allocator) allocate(ls identity.Labels) (model.Identity, error) {
	if id, ok := a.Lookup(ls); ok {
		return id, nil
	}
	if err := checkLabels(ls); err != nil {
		return 0, err
	}
	idx := a.inf.GetIndexer()
	size := int(identity.MaxWorkload-identity.MinWorkload) + 1
	id := candidate(ls)
	tries := 0
	for range size {
		obj, taken, _ := idx.GetByKey(name(id))
		if taken {
			// The watch may have caught up since the lookup above: a
			// peer's object for ls at a number the probe reaches is ours
			// too (skipping it would leave two numbers for ls).
			if e, ok := obj.(*entry); ok && e.Err == nil && e.DeletionTimestamp == nil && e.Labels.Equal(ls) {
				return e.ID, nil
			}
		} else {
			ok, err := a.create(id, ls)
			if err != nil {
				return 0, fmt.Errorf("creating CiliumIdentity %d: %w", id, err)
			}
			if ok {
				return id, nil
			}
			if tries++; tries >= a.maxTries {
				return 0, fmt.Errorf("allocating an identity: %d numbers taken concurrently", tries)
			}
		}
		if id == identity.MaxWorkload {
			id = identity.MinWorkload
		} else {
			id++
		}
	}
	return 0, identity.ErrExhausted
}

// create makes the object for id and ls if absent. It reports true when
// id now stands for ls, whoever created it, and false when id holds
// another label set (or is malformed).
func (a *Allocator) create(id model.Identity, ls identity.Labels) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	_, err := a.res.Create(ctx, newObject(id, ls), metav1.CreateOptions{})
	if err == nil {
		a.log.Debug("allocated identity", "id", id, "labels", ls.String())
		return true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, err
	}
	// Someone got there first: adopt their number if it is for ls.
	u, err := a.res.Get(ctx, name(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil // deleted meanwhile; the caller moves on
	}
	if err != nil {
		return false, err
	}
	e := parseObject(u)
	return e.Err == nil && e.DeletionTimestamp == nil && e.Labels.Equal(ls), nil
}

// deleted re-creates an identity the last Allocate handed out, so the
// Pods using it keep their number when the collector deleted it in the
// instant before it saw their Pod.
func (a *Allocator) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	e, ok := obj.(*entry)
	if !ok || e.Err != nil {
		return
	}
	a.mu.Lock()
	ls, mine := a.held[e.ID]
	a.mu.Unlock()
	if !mine || !ls.Equal(e.Labels) {
		return
	}
	go func() {
		ok, err := a.create(e.ID, ls)
		switch {
		case err != nil:
			a.log.Warn("re-creating a deleted identity still in use", "id", e.ID, "error", err)
		case !ok:
			a.log.Warn("a deleted identity still in use was taken by other labels; its Pods get a new number on the next update", "id", e.ID)
		default:
			a.log.Info("re-created a deleted identity still in use", "id", e.ID)
		}
	}()
}
