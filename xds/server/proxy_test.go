package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/xdsclient"
)

// testProxy is a proxy as the server's tests see one: the builtin proxy's
// own ADS client (proxylib/xdsclient, state of the world or delta) applying
// every response to a table of resources decoded by proxylib/resource,
// exactly as the builtin proxy decodes them, so whatever the builtin proxy
// would reject is NACKed here too. It does not bind listeners or dial
// upstreams: several of them run in one test with the same configuration.
//
// Like a proxy it drops the endpoints, routes, secrets and extension
// configurations no cluster or listener refers to any more. It keeps a log
// of every response and checks, after every applied response, what
// make-before-break must give a real proxy: every cluster a route uses is
// known together with its endpoints (otherwise that route answers 503), and
// no secret a listener uses disappears. Violations are kept for the test.
type testProxy struct {
	client *xdsclient.Client
	apply  func(typeURL string, res map[string]any) error

	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	held       map[string]map[string]heldResource // type URL → name → resource
	versions   map[string]string                  // type URL → version of the last applied response
	events     []event
	violations []string
	changed    chan struct{}
	runErr     error // why Run gave up, if it did
}

// heldResource is one applied resource: what came on the wire and what the
// proxy decoded from it.
type heldResource struct {
	raw   *anypb.Any
	value any
}

// event is one response the proxy received.
type event struct {
	TypeURL string
	// Version is the response's version_info (state of the world) or
	// system_version_info (delta).
	Version string
	// Names are the resources carried, Removed the names a delta response
	// removed; both sorted.
	Names   []string
	Removed []string
	// Rejected is true if the proxy NACKed the response.
	Rejected bool
}

// proxyOptions configure a testProxy.
type proxyOptions struct {
	NodeID string
	Delta  bool
	// Apply, if set, is called with the decoded resources of every response
	// the proxy decoded successfully, before they are applied, on the
	// client's goroutine: a non-nil error NACKs the response with the
	// error's text, and blocking delays the answer, as a slow proxy does.
	Apply func(typeURL string, res map[string]any) error
}

var _ xdsclient.Handler = (*testProxy)(nil)

// newProxy starts a proxy against address ("unix:///path" or
// "tcp://host:port"); it stops with the test.
func newProxy(t testing.TB, address string, o proxyOptions) *testProxy {
	t.Helper()
	p := &testProxy{apply: o.Apply, held: map[string]map[string]heldResource{}, versions: map[string]string{},
		changed: make(chan struct{})}
	c, err := xdsclient.New(address, o.NodeID, p, xdsclient.WithDelta(o.Delta), xdsclient.WithLogger(testLogger(t)),
		xdsclient.WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p.client = c
	p.start()
	t.Cleanup(p.Disconnect)
	return p
}

func (p *testProxy) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		if err := p.client.Run(ctx); err != nil {
			p.mu.Lock()
			p.runErr = err
			p.notifyLocked()
			p.mu.Unlock()
		}
	}()
}

// Disconnect ends the stream and keeps what the proxy applied, as a proxy
// keeps serving while the server is away. Calling it again does nothing.
func (p *testProxy) Disconnect() {
	p.cancel()
	<-p.done
}

// Reconnect runs the client again after Disconnect: its first requests
// resume with the versions it accepted.
func (p *testProxy) Reconnect() { p.start() }

// Update implements xdsclient.Handler.
func (p *testProxy) Update(typeURL, version string, anys []*anypb.Any, removed []string, full bool) error {
	res := make(map[string]heldResource, len(anys))
	var errs []error
	for _, a := range anys {
		name, v, err := decode(typeURL, a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := res[name]; dup {
			errs = append(errs, fmt.Errorf("%q: duplicate resource name in one response", name))
			continue
		}
		res[name] = heldResource{raw: a, value: v}
	}
	err := errors.Join(errs...)
	if err == nil && p.apply != nil {
		values := make(map[string]any, len(res))
		for n, r := range res {
			values[n] = r.value
		}
		err = p.apply(typeURL, values)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notifyLocked()
	p.events = append(p.events, event{TypeURL: typeURL, Version: version, Names: sortedKeys(res),
		Removed: slices.Sorted(slices.Values(removed)), Rejected: err != nil})
	if err != nil {
		return err
	}
	prevSecrets := p.names(resource.SecretType)
	held := p.held[typeURL]
	if full || held == nil {
		held = map[string]heldResource{}
		p.held[typeURL] = held
	}
	for n, r := range res {
		held[n] = r
	}
	for _, n := range removed {
		delete(held, n)
	}
	p.versions[typeURL] = version
	// What nothing refers to any more is dropped at once, as a proxy drops
	// the endpoints of a cluster and the routes of a listener it no longer
	// has (the client unsubscribes from them after this call).
	for _, dep := range dependents(typeURL) {
		want := p.wanted(dep)
		for n := range p.held[dep] {
			if !slices.Contains(want, n) {
				delete(p.held[dep], n)
			}
		}
	}
	p.check(typeURL+" "+version, prevSecrets)
	return nil
}

// Names implements xdsclient.Handler.
func (p *testProxy) Names(typeURL string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wanted(typeURL)
}

func decode(typeURL string, a *anypb.Any) (string, any, error) {
	switch typeURL {
	case resource.ClusterType:
		v, err := resource.DecodeCluster(a)
		if err != nil {
			return "", nil, err
		}
		return v.Name, v, nil
	case resource.EndpointType:
		v, err := resource.DecodeEndpoints(a)
		if err != nil {
			return "", nil, err
		}
		return v.ClusterName, v, nil
	case resource.ListenerType:
		v, err := resource.DecodeListener(a)
		if err != nil {
			return "", nil, err
		}
		return v.Name, v, nil
	case resource.RouteType:
		v, err := resource.DecodeRouteConfig(a)
		if err != nil {
			return "", nil, err
		}
		return v.Name, v, nil
	case resource.SecretType:
		v, err := resource.DecodeSecret(a)
		if err != nil {
			return "", nil, err
		}
		return v.Name, v, nil
	case resource.ExtensionConfigType:
		v, err := resource.DecodeExtension(a)
		if err != nil {
			return "", nil, err
		}
		return v.Name, v, nil
	}
	return "", nil, fmt.Errorf("unsupported resource type %q", typeURL)
}

// dependents are the types whose subscriptions follow a type's content.
func dependents(typeURL string) []string {
	switch typeURL {
	case resource.ClusterType:
		return []string{resource.EndpointType, resource.SecretType}
	case resource.ListenerType:
		return []string{resource.RouteType, resource.SecretType, resource.ExtensionConfigType}
	}
	return nil
}

// wanted computes the names of a named type the held clusters and
// listeners refer to, sorted. Called with p.mu held.
func (p *testProxy) wanted(typeURL string) []string {
	set := map[string]bool{}
	switch typeURL {
	case resource.EndpointType:
		for _, r := range p.held[resource.ClusterType] {
			if c := r.value.(*resource.Cluster); c.Kind == resource.ClusterEDS {
				set[c.ServiceName] = true
			}
		}
	case resource.RouteType, resource.SecretType, resource.ExtensionConfigType:
		if typeURL == resource.SecretType {
			// Clusters name the secrets of their upstream TLS.
			for _, r := range p.held[resource.ClusterType] {
				if c := r.value.(*resource.Cluster); c.TLS != nil {
					for _, n := range c.TLS.Secrets() {
						set[n] = true
					}
				}
			}
		}
		for _, r := range p.held[resource.ListenerType] {
			for _, c := range r.value.(*resource.Listener).Chains {
				switch {
				case typeURL == resource.RouteType && c.HCM != nil:
					set[c.HCM.RouteConfigName] = true
				case typeURL == resource.SecretType && c.TLS != nil:
					for _, n := range c.TLS.Secrets() {
						set[n] = true
					}
				case typeURL == resource.ExtensionConfigType && c.HCM != nil:
					for _, f := range c.HCM.Filters {
						if f.Discovery != nil {
							set[f.Discovery.Name] = true
						}
					}
				case typeURL == resource.ExtensionConfigType && c.TCP != nil && c.TCP.Kafka != nil:
					set[c.TCP.Kafka.Name] = true
				}
			}
		}
	}
	return sortedKeys(set)
}

// check records make-before-break violations after an applied response.
// prevSecrets are the secrets held before it. Called with p.mu held.
func (p *testProxy) check(after string, prevSecrets []string) {
	clusters, endpoints := p.held[resource.ClusterType], p.held[resource.EndpointType]
	for _, r := range p.held[resource.RouteType] {
		rc := r.value.(*resource.RouteConfig)
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				for _, name := range routeClusters(rt) {
					cr, known := clusters[name]
					warm := known
					if c, _ := cr.value.(*resource.Cluster); c != nil && c.Kind == resource.ClusterEDS {
						_, warm = endpoints[c.ServiceName]
					}
					if !known || !warm {
						p.violations = append(p.violations, fmt.Sprintf("after %s: route %q of %q uses cluster %q (known %t, endpoints %t)",
							after, rt.Name, rc.Name, name, known, warm))
					}
				}
			}
		}
	}
	secrets := p.held[resource.SecretType]
	for _, r := range p.held[resource.ListenerType] {
		l := r.value.(*resource.Listener)
		for _, c := range l.Chains {
			if c.TLS == nil {
				continue
			}
			for _, n := range c.TLS.SecretNames {
				if _, has := secrets[n]; !has && slices.Contains(prevSecrets, n) {
					p.violations = append(p.violations, fmt.Sprintf("after %s: secret %q removed while listener %q uses it", after, n, l.Name))
				}
			}
		}
	}
}

// routeClusters are the clusters a route sends traffic to.
func routeClusters(r *resource.Route) []string {
	if r.Action != resource.ActionForward || r.Forward == nil {
		return nil
	}
	if r.Forward.Cluster != "" {
		return []string{r.Forward.Cluster}
	}
	var out []string
	for _, w := range r.Forward.Weighted {
		if w.Weight > 0 {
			out = append(out, w.Name)
		}
	}
	return out
}

func (p *testProxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *testProxy) names(typeURL string) []string { return sortedKeys(p.held[typeURL]) }

// Held returns the names of the applied resources of a type, sorted.
func (p *testProxy) Held(typeURL string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.names(typeURL)
}

// Raw returns an applied resource as it came on the wire, or nil.
func (p *testProxy) Raw(typeURL, name string) *anypb.Any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[typeURL][name].raw
}

// Version returns the version of the last applied response of a type.
func (p *testProxy) Version(typeURL string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.versions[typeURL]
}

// Events returns a copy of every response received so far, in order.
func (p *testProxy) Events() []event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Violations lists the make-before-break violations seen so far.
func (p *testProxy) Violations() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.violations)
}

// WaitFor blocks until cond holds (checked after every applied or rejected
// response) or ctx ends. cond runs without the proxy's lock and may call
// its methods.
func (p *testProxy) WaitFor(ctx context.Context, what string, cond func(*testProxy) bool) error {
	for {
		p.mu.Lock()
		ch, runErr := p.changed, p.runErr
		p.mu.Unlock()
		if cond(p) {
			return nil
		}
		if runErr != nil {
			return fmt.Errorf("waiting for %s: the client stopped: %w", what, runErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last stream error: %s)", what, ctx.Err(), p.client.Stats().LastError)
		case <-ch:
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// hasRouteNamed reports whether decoded route configurations hold a route
// of that name.
func hasRouteNamed(res map[string]any, name string) bool {
	for _, v := range res {
		for _, vh := range v.(*resource.RouteConfig).VirtualHosts {
			for _, r := range vh.Routes {
				if r.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// requireNoViolations fails the test for every make-before-break
// violation the proxies saw.
func requireNoViolations(t testing.TB, proxies ...*testProxy) {
	t.Helper()
	for _, p := range proxies {
		for _, v := range p.Violations() {
			t.Errorf("make-before-break violation: %s", v)
		}
	}
}
