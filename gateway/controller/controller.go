package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/gateway-api/pkg/features"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/address"
	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/provider/kube"
)

// Controller owns GatewayClass acceptance, Gateway addresses and the
// status of GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes on Kubernetes. Create
// it with New and call Run once.
type Controller struct {
	core       kubernetes.Interface
	dyn        dynamic.Interface
	gw         gwclient.Interface
	prov       *kube.Provider
	nodes      cache.SharedIndexInformer
	nodeFact   dynamicinformer.DynamicSharedInformerFactory
	log        *slog.Logger
	controller gwv1.GatewayController
	alloc      *address.Allocator
	tr         *gateway.Translator
	features   []gwv1.SupportedFeature
	// meshFeatures are claimed in XMesh status (mesh.go).
	meshFeatures []gwv1.SupportedFeature
	staleAfter   time.Duration
	resync       time.Duration
	now          func() time.Time
	changed      chan struct{}
	ingress      gateway.IngressOptions
	systemCAs    []byte
	// services, when set, gives each Gateway and each Ingress load
	// balancer a LoadBalancer Service and takes the address from it
	// (service.go, ingressservice.go) instead of alloc.
	services bool
	// hostNetwork, when set, serves Gateways on the addresses of the
	// Nodes it selects instead (hostnet.go); nodeObjects watches Nodes.
	hostNetwork labels.Selector
	// ingressHostNetwork, when set, serves Ingresses on the addresses of
	// the Nodes it selects (hostnet.go), whatever Gateways do.
	ingressHostNetwork labels.Selector
	nodeInformers      informers.SharedInformerFactory
	nodeObjects        cache.SharedIndexInformer
	// sharedIngressNS is the namespace of the shared Ingress Service.
	sharedIngressNS string
	// ingressAddrs holds, per Ingress, the address last written to its
	// status, so one no longer ours loses it even when its Service (and
	// the address with it) is gone.
	ingressAddrs map[input.Key]string
	// reported holds, per Ingress, the problems last sent as an Event,
	// so each set of problems is reported once.
	reported map[input.Key]string
	// reconciled, when set, is told about every Reconcile Run makes.
	reconciled func(took time.Duration, err error)
	// coreInformers, when set, is the process's shared core informer
	// factory (WithCoreInformers).
	coreInformers informers.SharedInformerFactory
}

// WithReconciled sets a function Run calls after every Reconcile with how
// long it took and its error (metrics). Called on Run's goroutine; it must
// not block.
func WithReconciled(f func(took time.Duration, err error)) Option {
	return func(c *Controller) { c.reconciled = f }
}

// WithIngress sets how Ingresses are served (class, default mode,
// default certificate); the addresses come from the controller's pool.
func WithIngress(o gateway.IngressOptions) Option { return func(c *Controller) { c.ingress = o } }

// WithGatewayServices makes the controller give each Gateway of ours, and
// each Ingress load balancer (every dedicated Ingress, and the shared
// set), a Service of type LoadBalancer and take the address from the load
// balancer (the Service's status) instead of the address pool, which is
// then unused.
func WithGatewayServices() Option { return func(c *Controller) { c.services = true } }

// WithSystemCAs sets the host's CA bundle (gateway.Options.SystemCAs);
// the agents must use the same, so both agree on which policies hold.
func WithSystemCAs(pem []byte) Option { return func(c *Controller) { c.systemCAs = pem } }

// Option configures a Controller.
type Option func(*Controller)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *Controller) { c.log = l } }

// WithControllerName selects the GatewayClasses to own (default
// gateway.ControllerName).
func WithControllerName(n gwv1.GatewayController) Option {
	return func(c *Controller) { c.controller = n }
}

// WithSupportedFeatures replaces the features claimed in GatewayClass
// status (default SupportedFeatures).
func WithSupportedFeatures(f []features.FeatureName) Option {
	return func(c *Controller) { c.features = supported(f) }
}

// WithNodeStaleness sets after how long without a heartbeat a node's
// report stops counting (default 90s, three missed heartbeats; 0 keeps
// every report).
func WithNodeStaleness(d time.Duration) Option { return func(c *Controller) { c.staleAfter = d } }

// WithCoreInformers makes the controller's watch of the cluster register
// its core informers on f, shared with the rest of the process (the
// identity collector and the SPIRE registration watch Namespaces and
// Pods too), so each kind is watched once. f must drop managedFields
// (ciliumidentity.NewInformerFactory does).
func WithCoreInformers(f informers.SharedInformerFactory) Option {
	return func(c *Controller) { c.coreInformers = f }
}

// WithResync sets how often status is recomputed without any event
// (default 15s), which is how a node going stale is noticed.
func WithResync(d time.Duration) Option { return func(c *Controller) { c.resync = d } }

// New returns a controller assigning Gateway addresses from pool.
func New(core kubernetes.Interface, gw gwclient.Interface, dyn dynamic.Interface, pool netip.Prefix, opts ...Option) (*Controller, error) {
	if !pool.IsValid() {
		return nil, errors.New("creating controller: no valid address pool")
	}
	c := &Controller{
		gw:           gw,
		log:          slog.Default(),
		controller:   gateway.ControllerName,
		alloc:        address.New(pool),
		tr:           gateway.NewTranslator(),
		features:     supported(SupportedFeatures),
		meshFeatures: supported(MeshFeatures),
		staleAfter:   90 * time.Second,
		resync:       15 * time.Second,
		now:          time.Now,
		changed:      make(chan struct{}, 1),
		reported:     map[input.Key]string{},
		ingressAddrs: map[input.Key]string{},
	}
	for _, o := range opts {
		o(c)
	}
	c.core = core
	c.dyn = dyn
	popts := []kube.Option{kube.WithLogger(c.log), kube.WithGatewayClassConfigs(dyn)}
	if c.coreInformers != nil {
		popts = append(popts, kube.WithInformerFactory(c.coreInformers))
	}
	c.prov = kube.New(core, gw, popts...)
	if c.ingress.HostNetwork && c.ingressHostNetwork == nil {
		c.ingressHostNetwork = labels.Everything()
	}
	c.ingress.HostNetwork = c.ingressHostNetwork != nil
	if c.hostNetwork != nil {
		c.services = false
	}
	if c.hostNetwork != nil || c.ingressHostNetwork != nil {
		c.startNodeInformer()
	}
	c.nodeFact = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	c.nodes = c.nodeFact.ForResource(v1alpha1.NodeProxyStatusResource).Informer()
	signal := func(any) {
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	_, _ = c.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: signal, DeleteFunc: signal,
		UpdateFunc: func(old, cur any) {
			// A heartbeat alone changes nothing until it is missed, which
			// the periodic resync notices; with many nodes, reacting to
			// every heartbeat would recompute status for nothing.
			if !heartbeatOnly(old, cur) {
				signal(cur)
			}
		},
	})
	return c, nil
}

// Run watches the cluster and writes status until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	c.nodeFact.Start(ctx.Done())
	synced := []cache.InformerSynced{c.nodes.HasSynced}
	if c.nodeInformers != nil {
		c.nodeInformers.Start(ctx.Done())
		synced = append(synced, c.nodeObjects.HasSynced)
	}
	if err := c.prov.Start(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	c.log.Info("nodemesh-controller synced", "controllerName", c.controller, "addressPool", c.alloc.Pool())
	tick := time.NewTicker(c.resync)
	defer tick.Stop()
	for {
		start := time.Now()
		err := c.Reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Error("reconciling status", "err", err)
		}
		if c.reconciled != nil && ctx.Err() == nil {
			c.reconciled(time.Since(start), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.prov.Changed():
		case <-c.changed:
		case <-tick.C:
		}
		if !c.prov.Settle(ctx) {
			return nil
		}
	}
}

// Reconcile computes every status once from the informer caches and
// writes those that changed. Errors writing one object do not stop the
// others; they are joined and the next event or resync retries.
func (c *Controller) Reconcile(ctx context.Context) error {
	snap := c.prov.Snapshot()
	ing := c.ingress
	own := address.OwnGateways(snap, c.controller)
	var errs []error
	addrs, problems, hostNodes, ingressNodes, assignErrs := c.assignAddresses(ctx, snap, own, gateway.IngressAddressRequests(snap, ing))
	errs = append(errs, assignErrs...)
	ing.UseIngressAddresses(addrs)
	now := c.now()
	reports := liveReports(c.nodeReports(), string(c.controller), now, c.staleAfter)
	res := c.tr.Translate(snap, gateway.Options{ControllerName: c.controller, Addresses: addrs, AddressProblems: problems, Ingress: ing, SystemCAs: c.systemCAs,
		HostNetwork: c.hostNetwork != nil, Mesh: gateway.MeshOptions{CannotRedirect: cannotRedirect(reports)}})
	stamp := metav1.NewTime(now.Truncate(time.Second))

	classes := map[string]*gwv1.GatewayClass{}
	for _, gc := range snap.GatewayClasses {
		classes[gc.Name] = gc
	}
	for _, s := range res.GatewayClasses {
		desired := s.Status
		desired.SupportedFeatures = c.features
		if err := c.writeClass(ctx, classes[s.Name], desired, stamp); err != nil {
			errs = append(errs, err)
		}
	}
	gws := map[input.Key]*gwv1.Gateway{}
	for _, gw := range snap.Gateways {
		gws[input.Key{Namespace: gw.Namespace, Name: gw.Name}] = gw
	}
	verdicts := make(map[input.Key]nodeVerdict, len(res.Gateways))
	for _, s := range res.Gateways {
		gw := gws[s.Key]
		desired := *s.Status.DeepCopy()
		gwReports := reports
		if c.hostNetwork != nil {
			hostNetworkStatus(&desired, hostNodes)
			gwReports = selectedReports(reports, hostNodes)
		}
		v := verdictFor(s.Key, gw.Generation, gwReports)
		verdicts[s.Key] = v
		applyVerdict(&desired, gw.Generation, v)
		if err := c.writeGateway(ctx, gw, desired, stamp); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, writeRoutes(ctx, c, c.httpRouteAPI(), snap.HTTPRoutes, res, stamp)...)
	errs = append(errs, writeRoutes(ctx, c, c.grpcRouteAPI(), snap.GRPCRoutes, res, stamp)...)
	errs = append(errs, writeRoutes(ctx, c, c.tlsRouteAPI(), snap.TLSRoutes, res, stamp)...)
	errs = append(errs, writeRoutes(ctx, c, c.tcpRouteAPI(), snap.TCPRoutes, res, stamp)...)
	errs = append(errs, writeRoutes(ctx, c, c.udpRouteAPI(), snap.UDPRoutes, res, stamp)...)
	errs = append(errs, c.writeListenerSets(ctx, snap.ListenerSets, res, verdicts, stamp)...)
	errs = append(errs, c.writeBackendTLSPolicies(ctx, snap.BackendTLSPolicies, res, stamp)...)
	errs = append(errs, c.reconcileIngresses(ctx, snap, res.Ingresses, ingressNodes)...)
	errs = append(errs, c.reconcileMeshes(ctx, stamp)...)
	errs = append(errs, c.writeClassConfigs(ctx, snap, stamp)...)
	return errors.Join(errs...)
}

// assignAddresses gives Gateways (own) and Ingress load balancers (their
// stand-ins) their addresses. Each kind takes them from the nodes
// (host-network mode, returning the selected nodes), from LoadBalancer
// Services, or from the pool; everything on the pool is assigned in one
// call, so nothing there collides.
func (c *Controller) assignAddresses(ctx context.Context, snap *input.Snapshot, own, standIns []*gwv1.Gateway) (addrs map[input.Key]netip.Addr, problems map[input.Key]string, gwNodes, ingNodes []hostNode, errs []error) {
	addrs, problems = map[input.Key]netip.Addr{}, map[input.Key]string{}
	kinds := []struct {
		objs     []*gwv1.Gateway
		sel      labels.Selector
		services func([]*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string, []error)
		nodes    *[]hostNode
	}{
		{own, c.hostNetwork, func(r []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string, []error) {
			return c.reconcileServices(ctx, snap, r)
		}, &gwNodes},
		{standIns, c.ingressHostNetwork, func(r []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string, []error) {
			return c.reconcileIngressServices(ctx, snap, r)
		}, &ingNodes},
	}
	var pooled []*gwv1.Gateway
	for _, k := range kinds {
		switch {
		case k.sel != nil:
			*k.nodes = c.hostNodes(k.sel)
			// No Service in this mode: those left from the load-balancer
			// mode go.
			_, _, svcErrs := k.services(nil)
			errs = append(errs, svcErrs...)
			a, p := hostNetworkAddresses(k.objs, *k.nodes, k.sel)
			maps.Copy(addrs, a)
			maps.Copy(problems, p)
		case c.services:
			a, p, svcErrs := k.services(k.objs)
			errs = append(errs, svcErrs...)
			maps.Copy(addrs, a)
			maps.Copy(problems, p)
		default:
			pooled = append(pooled, k.objs...)
		}
	}
	if len(pooled) > 0 {
		a, p := c.alloc.Assign(pooled)
		maps.Copy(addrs, a)
		maps.Copy(problems, p)
	}
	return addrs, problems, gwNodes, ingNodes, errs
}

func hasParentOf(ps []gwv1.RouteParentStatus, controller gwv1.GatewayController) bool {
	for _, p := range ps {
		if p.ControllerName == controller {
			return true
		}
	}
	return false
}

func (c *Controller) nodeReports() []*v1alpha1.NodeProxyStatus {
	var out []*v1alpha1.NodeProxyStatus
	for _, o := range c.nodes.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		r, err := nodereport.FromUnstructured(u)
		if err != nil {
			c.log.Warn("ignoring unreadable NodeProxyStatus", "name", u.GetName(), "err", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// maxAttempts bounds retries of one status write on conflicts.
const maxAttempts = 4

func (c *Controller) writeClass(ctx context.Context, cur *gwv1.GatewayClass, desired gwv1.GatewayClassStatus, now metav1.Time) error {
	cl := c.gw.GatewayV1().GatewayClasses()
	for attempt := 1; ; attempt++ {
		next := mergeClass(cur.Status, desired, now)
		if equality.Semantic.DeepEqual(cur.Status, next) {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status = next
		_, err := cl.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "GatewayClass", cur.Name); done {
			return err
		}
		fresh, err := cl.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "GatewayClass", cur.Name)
		}
		cur = fresh
	}
}

func (c *Controller) writeGateway(ctx context.Context, cur *gwv1.Gateway, desired gwv1.GatewayStatus, now metav1.Time) error {
	cl := c.gw.GatewayV1().Gateways(cur.Namespace)
	name := cur.Namespace + "/" + cur.Name
	for attempt := 1; ; attempt++ {
		next := mergeGateway(cur.Status, desired, now)
		if equality.Semantic.DeepEqual(cur.Status, next) {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Status = next
		_, err := cl.UpdateStatus(ctx, cp, metav1.UpdateOptions{FieldManager: fieldManager})
		if done, err := settled(err, attempt, "Gateway", name); done {
			return err
		}
		fresh, err := cl.Get(ctx, cur.Name, metav1.GetOptions{})
		if err != nil {
			return ignoreNotFound(err, "Gateway", name)
		}
		if fresh.Generation != cur.Generation {
			// The spec changed under us: the next reconcile computes
			// status for the new generation.
			return nil
		}
		cur = fresh
	}
}

const fieldManager = "nodemesh-controller"

// settled classifies the result of a status write: done with no error on
// success or when the object is gone; done with an error when it cannot be
// retried; not done on a conflict that may be retried.
func settled(err error, attempt int, kind, name string) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return true, nil
	case apierrors.IsConflict(err) && attempt < maxAttempts:
		return false, nil
	}
	return true, fmt.Errorf("writing %s %s status: %w", kind, name, err)
}

func ignoreNotFound(err error, kind, name string) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return fmt.Errorf("reading %s %s: %w", kind, name, err)
}

// heartbeatOnly reports whether two versions of a NodeProxyStatus differ
// in nothing but status.heartbeatTime.
func heartbeatOnly(old, cur any) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	c, ok2 := cur.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return false
	}
	strip := func(u *unstructured.Unstructured) map[string]any {
		st, _, _ := unstructured.NestedMap(u.Object, "status")
		delete(st, "heartbeatTime")
		return st
	}
	return equality.Semantic.DeepEqual(strip(o), strip(c)) && equality.Semantic.DeepEqual(o.GetOwnerReferences(), c.GetOwnerReferences())
}
