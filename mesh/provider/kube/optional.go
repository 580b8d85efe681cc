package kube

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// optionalKind is a kind whose CRD a cluster may not have installed: the
// Gateway API route kinds beyond HTTPRoute, ListenerSet, and the cilium.io
// Envoy config kinds when network policy is off. An informer on a resource
// the API server does not serve never syncs, so such a kind is watched
// only once discovery lists it; until then its snapshot list is empty.
type optionalKind struct {
	kind string // e.g. "TLSRoute", for logs
	// groupVersion and resource are what discovery lists; an empty
	// groupVersion is gateway.networking.k8s.io/v1.
	groupVersion string
	resource     string
	// informer creates (on first call) the kind's informer in its
	// factory; calling it registers the informer for the factory's next
	// Start.
	informer func() cache.SharedIndexInformer
	// start starts the kind's factory (nil: the Gateway API factory).
	start func(stop <-chan struct{})
	// watched is set once the informer has synced: from then on the
	// kind's lister reads it.
	watched atomic.Bool
	started bool // informer added and started; guarded by optionals.mu
}

// optionals tracks the optional kinds and watches discovery for CRDs that
// appear after Start.
type optionals struct {
	mu    sync.Mutex
	kinds []*optionalKind
}

// optionalList returns a lister that reads the kind's informer once it is
// watched and nothing before.
func optionalList[T any](k *optionalKind, list func() ([]T, error)) func() ([]T, error) {
	return func() ([]T, error) {
		if !k.watched.Load() {
			return nil, nil
		}
		return list()
	}
}

func (p *Provider) setupOptional() {
	gwv := p.gwFactory.Gateway().V1()
	grpcRoutes, tlsRoutes, tcpRoutes, udpRoutes := gwv.GRPCRoutes(), gwv.TLSRoutes(), gwv.TCPRoutes(), gwv.UDPRoutes()
	grpc := &optionalKind{kind: "GRPCRoute", resource: "grpcroutes", informer: grpcRoutes.Informer}
	tls := &optionalKind{kind: "TLSRoute", resource: "tlsroutes", informer: tlsRoutes.Informer}
	tcp := &optionalKind{kind: "TCPRoute", resource: "tcproutes", informer: tcpRoutes.Informer}
	udp := &optionalKind{kind: "UDPRoute", resource: "udproutes", informer: udpRoutes.Informer}
	listenerSets := gwv.ListenerSets()
	lset := &optionalKind{kind: "ListenerSet", resource: "listenersets", informer: listenerSets.Informer}
	p.optional.kinds = []*optionalKind{grpc, tls, tcp, udp, lset}
	p.listers.grpc = optionalList(grpc, func() ([]*gwv1.GRPCRoute, error) { return grpcRoutes.Lister().List(labels.Everything()) })
	p.listers.tls = optionalList(tls, func() ([]*gwv1.TLSRoute, error) { return tlsRoutes.Lister().List(labels.Everything()) })
	p.listers.tcp = optionalList(tcp, func() ([]*gwv1.TCPRoute, error) { return tcpRoutes.Lister().List(labels.Everything()) })
	p.listers.udp = optionalList(udp, func() ([]*gwv1.UDPRoute, error) { return udpRoutes.Lister().List(labels.Everything()) })
	p.listers.lsets = optionalList(lset, func() ([]*gwv1.ListenerSet, error) { return listenerSets.Lister().List(labels.Everything()) })
}

// served asks discovery which optional kinds the API server serves, as
// "<group/version>/<resource>". A group the server does not know at all
// (no Gateway API or Cilium CRDs) is an empty answer, not an error.
func (p *Provider) served() (map[string]bool, error) {
	out := map[string]bool{}
	asked := map[string]bool{}
	for _, k := range p.optional.kinds {
		gv := k.gv()
		if asked[gv] {
			continue
		}
		asked[gv] = true
		list, err := p.core.Discovery().ServerResourcesForGroupVersion(gv)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range list.APIResources {
			out[gv+"/"+r.Name] = true
		}
	}
	return out, nil
}

func (k *optionalKind) gv() string {
	if k.groupVersion == "" {
		return gwv1.GroupVersion.String()
	}
	return k.groupVersion
}

func (k *optionalKind) key() string { return k.gv() + "/" + k.resource }

// startOptional starts the informers of the optional kinds the API server
// serves and returns their HasSynced functions; the caller waits for them
// with the rest. Absent kinds are logged and left to watchDiscovery.
// A discovery error fails Start: guessing would either hang the sync
// (kind assumed present) or withdraw routes that exist (assumed absent).
func (p *Provider) startOptional(ctx context.Context) ([]cache.InformerSynced, []*optionalKind, error) {
	served, err := p.served()
	if err != nil {
		return nil, nil, err
	}
	p.optional.mu.Lock()
	defer p.optional.mu.Unlock()
	var synced []cache.InformerSynced
	var started []*optionalKind
	for _, k := range p.optional.kinds {
		if !served[k.key()] {
			p.log.Warn("kind not served by the API server (CRD not installed?); not watching it until it appears",
				"kind", k.kind, "groupVersion", k.gv(), "resource", k.resource, "recheck", p.discoveryInterval)
			continue
		}
		p.addOptional(k)
		synced = append(synced, k.informer().HasSynced)
		started = append(started, k)
	}
	return synced, started, nil
}

// addOptional registers k's informer and its change handler; the next
// factory Start runs it. Called with optional.mu held.
func (p *Provider) addOptional(k *optionalKind) {
	inf := k.informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.signal() },
		DeleteFunc: func(any) { p.signal() },
		UpdateFunc: func(old, cur any) {
			if specChanged(old, cur) {
				p.signal()
			}
		},
	})
	k.started = true
}

// watchDiscovery rechecks discovery every discoveryInterval until every
// optional kind is watched or ctx ends. A kind whose CRD appeared gets its
// informer started; once that has synced, the kind joins the snapshots
// and a change is signalled. Discovery has no watch, hence the polling;
// the interval bounds how long a newly installed CRD's routes wait.
func (p *Provider) watchDiscovery(ctx context.Context) {
	t := time.NewTicker(p.discoveryInterval)
	defer t.Stop()
	for {
		p.optional.mu.Lock()
		missing := 0
		for _, k := range p.optional.kinds {
			if !k.started {
				missing++
			}
		}
		p.optional.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		served, err := p.served()
		if err != nil {
			p.log.Warn("rechecking served Gateway API kinds", "err", err)
			continue
		}
		var added []*optionalKind
		p.optional.mu.Lock()
		for _, k := range p.optional.kinds {
			if !k.started && served[k.key()] {
				p.addOptional(k)
				added = append(added, k)
			}
		}
		p.optional.mu.Unlock()
		if len(added) == 0 {
			continue
		}
		for _, k := range added {
			k.startFactory(p, ctx.Done())
		}
		for _, k := range added {
			if !cache.WaitForCacheSync(ctx.Done(), k.informer().HasSynced) {
				return
			}
			k.watched.Store(true)
			p.log.Info("kind appeared; watching it", "kind", k.kind)
		}
		p.signal()
	}
}

// startFactory starts the factory k's informer is in (starting a factory
// starts only the informers not yet running).
func (k *optionalKind) startFactory(p *Provider, stop <-chan struct{}) {
	if k.start != nil {
		k.start(stop)
		return
	}
	p.gwFactory.Start(stop)
}
