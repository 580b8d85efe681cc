package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"

	"github.com/nodemesh/nodemesh/mesh/input"
)

// Provider watches the API server and publishes snapshots. Create it with
// New; call Watch once.
type Provider struct {
	core     kubernetes.Interface
	gw       gwclient.Interface
	log      *slog.Logger
	debounce time.Duration
	maxDelay time.Duration

	coreFactory   informers.SharedInformerFactory
	secretFactory informers.SharedInformerFactory
	gwFactory     gwinformers.SharedInformerFactory
	listers       listers
	changed       chan struct{}
	// optional holds the kinds whose CRD may be missing (optional.go).
	optional          optionals
	discoveryInterval time.Duration
	// policy is set by WithPolicy.
	policy *policyWatch
	// classConfigs is set by WithGatewayClassConfigs (classconfig.go).
	classConfigs *classConfigWatch

	// last is the last snapshot, whose objects' hashes the next one
	// reuses (see recordHashes).
	hashMu sync.Mutex
	last   *input.Snapshot
}

type listers struct {
	classes   func() ([]*gwv1.GatewayClass, error)
	gateways  func() ([]*gwv1.Gateway, error)
	routes    func() ([]*gwv1.HTTPRoute, error)
	grpc      func() ([]*gwv1.GRPCRoute, error)
	tls       func() ([]*gwv1.TLSRoute, error)
	tcp       func() ([]*gwv1.TCPRoute, error)
	udp       func() ([]*gwv1.UDPRoute, error)
	lsets     func() ([]*gwv1.ListenerSet, error)
	grants    func() ([]*gwv1.ReferenceGrant, error)
	btls      func() ([]*gwv1.BackendTLSPolicy, error)
	cms       func() ([]*corev1.ConfigMap, error)
	services  func() ([]*corev1.Service, error)
	slices    func() ([]*discoveryv1.EndpointSlice, error)
	secrets   func() ([]*corev1.Secret, error)
	nss       func() ([]*corev1.Namespace, error)
	ingresses func() ([]*networkingv1.Ingress, error)
	ingClass  func() ([]*networkingv1.IngressClass, error)
	informers []cache.SharedIndexInformer
}

// Option configures a Provider.
type Option func(*Provider)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

// WithInformerFactory makes the provider register its core informers
// (Namespaces, Services, EndpointSlices, ConfigMaps, Ingresses,
// IngressClasses, and with WithPolicy Pods, Nodes, NetworkPolicies and
// ServiceCIDRs) on f, a factory other parts of the process share, so a
// kind they also watch is listed and watched once. f must drop
// managedFields, as the provider's own factory does (Snapshot hashes
// objects and managedFields change on every write). Start starts f; the
// caller may start it too. TLS Secrets keep a factory of their own: they
// are watched through a field selector.
func WithInformerFactory(f informers.SharedInformerFactory) Option {
	return func(p *Provider) { p.coreFactory = f }
}

// WithDebounce sets how long the provider waits for a burst of changes to
// end (default 50ms) and the longest it delays a snapshot while changes
// keep coming (default 500ms).
func WithDebounce(quiet, max time.Duration) Option {
	return func(p *Provider) { p.debounce, p.maxDelay = quiet, max }
}

// WithDiscoveryInterval sets how often the provider rechecks discovery for
// an optional Gateway API kind whose CRD was not installed (default 30s).
func WithDiscoveryInterval(d time.Duration) Option {
	return func(p *Provider) { p.discoveryInterval = d }
}

// New returns a provider reading through the given clients. It starts
// nothing until Watch.
func New(core kubernetes.Interface, gw gwclient.Interface, opts ...Option) *Provider {
	p := &Provider{
		core:     core,
		gw:       gw,
		log:      slog.Default(),
		debounce: 50 * time.Millisecond,
		maxDelay: 500 * time.Millisecond,
		changed:  make(chan struct{}, 1),

		discoveryInterval: 30 * time.Second,
	}
	for _, o := range opts {
		o(p)
	}
	p.setup()
	return p
}

func (p *Provider) setup() {
	strip := informers.WithTransform(stripManagedFields)
	if p.coreFactory == nil {
		p.coreFactory = informers.NewSharedInformerFactoryWithOptions(p.core, 0, strip)
	}
	p.secretFactory = informers.NewSharedInformerFactoryWithOptions(p.core, 0, strip,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()
		}))
	p.gwFactory = gwinformers.NewSharedInformerFactoryWithOptions(p.gw, 0, gwinformers.WithTransform(stripManagedFields))

	gwv := p.gwFactory.Gateway().V1()
	classes, gateways, routes, grants := gwv.GatewayClasses(), gwv.Gateways(), gwv.HTTPRoutes(), gwv.ReferenceGrants()
	services, slices := p.coreFactory.Core().V1().Services(), p.coreFactory.Discovery().V1().EndpointSlices()
	nss, secrets := p.coreFactory.Core().V1().Namespaces(), p.secretFactory.Core().V1().Secrets()
	ingresses, ingClasses := p.coreFactory.Networking().V1().Ingresses(), p.coreFactory.Networking().V1().IngressClasses()
	btls, cms := gwv.BackendTLSPolicies(), p.coreFactory.Core().V1().ConfigMaps()

	p.listers = listers{
		classes:  func() ([]*gwv1.GatewayClass, error) { return classes.Lister().List(labels.Everything()) },
		gateways: func() ([]*gwv1.Gateway, error) { return gateways.Lister().List(labels.Everything()) },
		routes:   func() ([]*gwv1.HTTPRoute, error) { return routes.Lister().List(labels.Everything()) },
		grants:   func() ([]*gwv1.ReferenceGrant, error) { return grants.Lister().List(labels.Everything()) },
		btls:     func() ([]*gwv1.BackendTLSPolicy, error) { return btls.Lister().List(labels.Everything()) },
		cms:      func() ([]*corev1.ConfigMap, error) { return cms.Lister().List(labels.Everything()) },
		services: func() ([]*corev1.Service, error) { return services.Lister().List(labels.Everything()) },
		slices:   func() ([]*discoveryv1.EndpointSlice, error) { return slices.Lister().List(labels.Everything()) },
		secrets:  func() ([]*corev1.Secret, error) { return secrets.Lister().List(labels.Everything()) },
		nss:      func() ([]*corev1.Namespace, error) { return nss.Lister().List(labels.Everything()) },
		ingresses: func() ([]*networkingv1.Ingress, error) {
			return ingresses.Lister().List(labels.Everything())
		},
		ingClass: func() ([]*networkingv1.IngressClass, error) {
			return ingClasses.Lister().List(labels.Everything())
		},
	}
	add := func(inf cache.SharedIndexInformer, relevant func(old, cur any) bool) {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { p.signal() },
			DeleteFunc: func(any) { p.signal() },
			UpdateFunc: func(old, cur any) {
				if relevant == nil || relevant(old, cur) {
					p.signal()
				}
			},
		})
		p.listers.informers = append(p.listers.informers, inf)
	}
	add(classes.Informer(), specChanged)
	add(gateways.Informer(), changedAtAll)
	add(routes.Informer(), specChanged)
	add(grants.Informer(), changedAtAll)
	add(btls.Informer(), specChanged)
	add(cms.Informer(), changedAtAll)
	add(services.Informer(), changedAtAll)
	add(slices.Informer(), changedAtAll)
	add(secrets.Informer(), changedAtAll)
	add(nss.Informer(), changedAtAll)
	// An Ingress's status carries its address (agents read it there), so
	// status writes count.
	add(ingresses.Informer(), changedAtAll)
	add(ingClasses.Informer(), specChanged)
	p.setupOptional()
	if p.classConfigs != nil {
		p.setupClassConfigs()
	}
	if p.policy != nil {
		p.setupPolicy(add)
	}
}

// signal records that something changed; it never blocks.
func (p *Provider) signal() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// changedAtAll ignores resyncs, which redeliver an unchanged object.
func changedAtAll(old, cur any) bool {
	o, ok1 := old.(metav1.Object)
	c, ok2 := cur.(metav1.Object)
	return !ok1 || !ok2 || o.GetResourceVersion() != c.GetResourceVersion()
}

// specChanged reports changes that translation can see: spec (generation),
// labels and annotations. Status-only writes are skipped.
func specChanged(old, cur any) bool {
	o, ok1 := old.(metav1.Object)
	c, ok2 := cur.(metav1.Object)
	if !ok1 || !ok2 {
		return true
	}
	return o.GetGeneration() != c.GetGeneration() || !maps.Equal(o.GetLabels(), c.GetLabels()) ||
		!maps.Equal(o.GetAnnotations(), c.GetAnnotations()) || o.GetUID() != c.GetUID()
}

func stripManagedFields(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Watch starts the informers, waits until they have synced, then calls fn
// with a snapshot now and after every burst of changes, until ctx ends.
// fn runs on Watch's goroutine, one call at a time, and owns nothing it is
// given: the snapshot's objects are shared with the informer caches and
// must not be modified.
func (p *Provider) Watch(ctx context.Context, fn func(*input.Snapshot)) error {
	if err := p.Start(ctx); err != nil || ctx.Err() != nil {
		// Never publish a half-listed view, not even on the way out.
		return err
	}
	fn(p.Snapshot())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.changed:
		}
		if !p.settle(ctx) {
			return nil
		}
		fn(p.Snapshot())
	}
}

// Start starts the informers and waits for their caches to sync. Watch
// calls it; callers that only need Snapshot may call it directly.
func (p *Provider) Start(ctx context.Context) error {
	if p.policy != nil && p.policy.policyKinds {
		if err := p.preflight(ctx); err != nil {
			return err
		}
		p.policy.factory.Start(ctx.Done())
	}
	optSynced, optStarted, err := p.startOptional(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("discovering served optional kinds: %w", err)
	}
	p.coreFactory.Start(ctx.Done())
	p.secretFactory.Start(ctx.Done())
	p.gwFactory.Start(ctx.Done())
	for _, k := range optStarted {
		k.startFactory(p, ctx.Done())
	}
	synced := make([]cache.InformerSynced, 0, len(p.listers.informers)+len(optSynced))
	for _, inf := range p.listers.informers {
		synced = append(synced, inf.HasSynced)
	}
	synced = append(synced, optSynced...)
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("waiting for informer caches to sync: %w", ctx.Err())
	}
	for _, k := range optStarted {
		k.watched.Store(true)
	}
	go p.watchDiscovery(ctx)
	p.log.Info("kubernetes informers synced")
	// The initial listing signalled; the caller publishes right away.
	select {
	case <-p.changed:
	default:
	}
	return nil
}

// Changed is signalled (without blocking the sender) after a relevant
// change. Callers that run their own loop instead of Watch read it.
func (p *Provider) Changed() <-chan struct{} { return p.changed }

// settle waits until no change arrived for the debounce interval, or the
// maximum delay passed. It returns false if ctx ended.
func (p *Provider) settle(ctx context.Context) bool {
	deadline := time.NewTimer(p.maxDelay)
	defer deadline.Stop()
	quiet := time.NewTimer(p.debounce)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-quiet.C:
			return true
		case <-p.changed:
			quiet.Reset(p.debounce)
		}
	}
}

// Settle is settle for callers running their own loop.
func (p *Provider) Settle(ctx context.Context) bool { return p.settle(ctx) }

// Snapshot builds a snapshot from the informer caches. Listing from a
// cache cannot fail; should it ever, the kind is left empty and logged.
func (p *Provider) Snapshot() *input.Snapshot {
	s := &input.Snapshot{}
	l := p.listers
	s.GatewayClasses = list(p.log, "GatewayClass", l.classes)
	s.Gateways = list(p.log, "Gateway", l.gateways)
	s.HTTPRoutes = list(p.log, "HTTPRoute", l.routes)
	s.GRPCRoutes = list(p.log, "GRPCRoute", l.grpc)
	s.TLSRoutes = list(p.log, "TLSRoute", l.tls)
	s.TCPRoutes = list(p.log, "TCPRoute", l.tcp)
	s.UDPRoutes = list(p.log, "UDPRoute", l.udp)
	s.ListenerSets = list(p.log, "ListenerSet", l.lsets)
	s.ReferenceGrants = list(p.log, "ReferenceGrant", l.grants)
	s.BackendTLSPolicies = list(p.log, "BackendTLSPolicy", l.btls)
	s.ConfigMaps = list(p.log, "ConfigMap", l.cms)
	s.Services = list(p.log, "Service", l.services)
	s.EndpointSlices = list(p.log, "EndpointSlice", l.slices)
	s.Secrets = list(p.log, "Secret", l.secrets)
	s.Namespaces = list(p.log, "Namespace", l.nss)
	s.Ingresses = list(p.log, "Ingress", l.ingresses)
	s.IngressClasses = list(p.log, "IngressClass", l.ingClass)
	if p.policy != nil {
		p.fillPolicy(s)
	}
	if p.classConfigs != nil {
		s.GatewayClassConfigs = p.classConfigs.list()
	}
	p.recordHashes(s)
	return s
}

// recordHashes records the hash of every object of s. Each object is hashed once as it enters:
// informer caches hold a version of an object as one immutable object
// until a newer version replaces it, so an object the last snapshot held
// keeps the hash computed then, and only objects that are new since (new
// versions, new objects) are hashed.
func (p *Provider) recordHashes(s *input.Snapshot) {
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	prev := p.last
	for o := range s.Objects() {
		h, ok := prev.RecordedHash(o)
		if !ok {
			h = input.HashObject(o)
		}
		s.RecordHash(o, h)
	}
	p.last = s
}

func list[T metav1.Object](log *slog.Logger, kind string, f func() ([]T, error)) []T {
	items, err := f()
	if err != nil {
		log.Error("listing from informer cache", "kind", kind, "err", err)
		return nil
	}
	sort.Slice(items, func(i, j int) bool {
		if a, b := items[i].GetNamespace(), items[j].GetNamespace(); a != b {
			return a < b
		}
		return items[i].GetName() < items[j].GetName()
	})
	return items
}
