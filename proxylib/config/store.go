package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/headermatch"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/udpproxy"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// InitialFetchTimeout is how long a resource waits for its dependencies
// before it is activated without them (Envoy's default).
const InitialFetchTimeout = 15 * time.Second

type entry struct {
	key    string // the serialized resource
	raw    []byte
	value  any
	table  *route.Table      // route configurations only
	filter *hcm.FilterConfig // extension configurations only
	// vhosts are a route configuration's decoded virtual hosts by their
	// serialized bytes, for its next version (routes.go).
	vhosts map[vhostKey]*resource.VirtualHost
}

type typeState struct {
	entries  map[string]*entry
	version  string
	received bool
	updated  time.Time
	nackErr  string
	nackVer  string
}

// Store holds the accepted configuration. Its methods are safe for
// concurrent use; Update is called by one xDS client goroutine.
type Store struct {
	rt     *hcm.Runtime
	lm     *listener.Manager
	udp    *udpproxy.Manager // nil: UDP listeners are not served
	um     *upstream.Manager
	logger *slog.Logger
	wait   time.Duration

	mu       sync.Mutex
	types    map[string]*typeState
	active   map[string]*resource.Listener // listener name → serving version
	handlers map[string]listener.Handler   // chain key → handler
	built    map[string]*builtCluster
	// static are the clusters the proxy defines itself (SetStatic), by
	// name; no dynamic cluster may take their names.
	static  map[string]*resource.Cluster
	since   map[string]time.Time // pending item → first seen waiting
	timer   *time.Timer
	closed  bool
	ready   atomic.Bool
	secrets atomic.Pointer[map[string]*resource.Secret]
	release *releaser
}

type builtCluster struct {
	cfg *resource.Cluster
	eps *resource.Endpoints
	c   *upstream.Cluster
}

// Option configures a Store.
type Option func(*Store)

// WithInitialFetchTimeout overrides the 15 s warming limit.
func WithInitialFetchTimeout(d time.Duration) Option { return func(s *Store) { s.wait = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.logger = l } }

// WithUDP serves listeners on UDP addresses (udp_proxy) with m.
func WithUDP(m *udpproxy.Manager) Option { return func(s *Store) { s.udp = m } }

var allTypes = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType,
	resource.SecretType, resource.ExtensionConfigType}

// New returns an empty store publishing to rt, lm and um.
func New(rt *hcm.Runtime, lm *listener.Manager, um *upstream.Manager, opts ...Option) *Store {
	s := &Store{rt: rt, lm: lm, um: um, logger: slog.Default(), wait: InitialFetchTimeout,
		types: map[string]*typeState{}, active: map[string]*resource.Listener{},
		handlers: map[string]listener.Handler{}, built: map[string]*builtCluster{}, since: map[string]time.Time{},
		release: newReleaser()}
	for _, o := range opts {
		o(s)
	}
	for _, t := range allTypes {
		s.types[t] = &typeState{entries: map[string]*entry{}}
	}
	empty := map[string]*resource.Secret{}
	s.secrets.Store(&empty)
	return s
}

// Close stops the warming timer, so nothing is published after it; the
// proxy calls it when it stops, before closing its listeners. Update must
// not be called afterwards.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.release.close()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// SetStatic sets the clusters the proxy defines itself, as Envoy's
// bootstrap static_resources do: they serve beside the dynamic ones, and
// a CDS response naming one of them is rejected. The proxy calls it
// before its xDS client runs; it publishes nothing by itself.
func (s *Store) SetStatic(clusters ...*resource.Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.static = make(map[string]*resource.Cluster, len(clusters))
	for _, c := range clusters {
		s.static[c.Name] = c
	}
}

// Cert returns the certificate of the named Secret (for TLS handshakes).
func (s *Store) Cert(name string) *tls.Certificate {
	if sec := s.Secret(name); sec != nil {
		return sec.Certificate
	}
	return nil
}

// Secret returns the named Secret (certificate or validation context) the
// data path uses, or nil. Safe for concurrent use: handshakes call it.
func (s *Store) Secret(name string) *resource.Secret { return (*s.secrets.Load())[name] }

// Ready reports whether the initial listeners and clusters were received
// and nothing is warming any more.
func (s *Store) Ready() bool { return s.ready.Load() }

func decodeAny(typeURL string, a *anypb.Any) (string, any, *route.Table, error) {
	switch typeURL {
	case resource.ExtensionConfigType:
		v, err := resource.DecodeExtension(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.Name, v, nil, nil
	case resource.ListenerType:
		v, err := resource.DecodeListener(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.Name, v, nil, nil
	case resource.RouteType:
		v, err := resource.DecodeRouteConfig(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.Name, v, route.New(v), nil
	case resource.ClusterType:
		v, err := resource.DecodeCluster(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.Name, v, nil, nil
	case resource.EndpointType:
		v, err := resource.DecodeEndpoints(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.ClusterName, v, nil, nil
	case resource.SecretType:
		v, err := resource.DecodeSecret(a)
		if err != nil {
			return "", nil, nil, err
		}
		return v.Name, v, nil, nil
	}
	return "", nil, nil, fmt.Errorf("unsupported resource type %q", typeURL)
}

// Update applies resources of typeURL. With full the resources are the
// complete set of that type; otherwise they add to or replace the named
// ones and removed names are deleted. A non-nil error is the NACK detail;
// the store is then unchanged.
func (s *Store) Update(typeURL, version string, resources []*anypb.Any, removed []string, full bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.types[typeURL]
	if ts == nil {
		return fmt.Errorf("unsupported resource type %q", typeURL)
	}
	next := make(map[string]*entry, len(resources)+len(ts.entries))
	if !full {
		for n, e := range ts.entries {
			next[n] = e
		}
		for _, n := range removed {
			delete(next, n)
		}
	}
	var errs []string
	seen := map[string]bool{}
	byRaw := make(map[string]string, len(ts.entries))
	for n, old := range ts.entries {
		byRaw[old.key] = n
	}
	for _, a := range resources {
		var e *entry
		// Reuse the decoded value when the bytes are unchanged.
		name, ok := byRaw[string(a.GetValue())]
		if ok && !seen[name] {
			e = ts.entries[name]
		} else {
			var (
				raw    = string(a.GetValue())
				n      string
				v      any
				tbl    *route.Table
				vhosts map[vhostKey]*resource.VirtualHost
				err    error
			)
			if typeURL == resource.RouteType {
				var rc *resource.RouteConfig
				if n, rc, vhosts, err = decodeRoutes(a, raw, ts.entries); err == nil {
					v, tbl = rc, route.New(rc)
				}
			} else {
				n, v, tbl, err = decodeAny(typeURL, a)
			}
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			e, name = &entry{key: raw, value: v, table: tbl, vhosts: vhosts}, n
			if ext, ok := v.(*resource.Extension); ok {
				e.filter = &hcm.FilterConfig{TypeURL: ext.TypeURL, Kafka: ext.Kafka}
				switch {
				case ext.RBAC != nil:
					e.filter.RBAC = rbac.New(ext.RBAC)
				case ext.HeaderMatch != nil:
					e.filter.HeaderMatch = headermatch.New(ext.HeaderMatch)
				}
			}
		}
		if seen[name] {
			errs = append(errs, fmt.Sprintf("%s %q: duplicate resource name in one response", kindOf(typeURL), name))
			continue
		}
		if _, ok := s.static[name]; ok && typeURL == resource.ClusterType {
			errs = append(errs, fmt.Sprintf("cluster %q: the name is a static cluster of the proxy (its admin endpoint); a dynamic cluster cannot replace it", name))
			continue
		}
		seen[name] = true
		next[name] = e
	}
	if len(errs) == 0 && typeURL == resource.ListenerType {
		errs = append(errs, duplicateAddresses(next)...)
		errs = append(errs, s.checkExtensionTypes(next, s.types[resource.ExtensionConfigType].entries)...)
	}
	if len(errs) == 0 && typeURL == resource.ExtensionConfigType {
		errs = append(errs, s.checkExtensionTypes(s.types[resource.ListenerType].entries, next)...)
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		msg := strings.Join(errs, "\n")
		ts.nackErr, ts.nackVer = msg, version
		return errors.New(msg)
	}
	prev, prevReceived := ts.entries, ts.received
	// Received before publishing: publish decides readiness, and an empty
	// response is a complete answer too.
	ts.entries, ts.received = next, true
	if err := s.publish(); err != nil {
		ts.entries, ts.received = prev, prevReceived
		ts.nackErr, ts.nackVer = err.Error(), version
		return err
	}
	ts.version, ts.updated = version, time.Now()
	ts.nackErr, ts.nackVer = "", ""
	// The update's garbage (decoded messages, replaced tables) is many
	// times what serving allocates: hand it back once updates pause.
	s.release.updated()
	return nil
}

func kindOf(typeURL string) string {
	switch typeURL {
	case resource.ListenerType:
		return "listener"
	case resource.RouteType:
		return "route configuration"
	case resource.ClusterType:
		return "cluster"
	case resource.EndpointType:
		return "cluster load assignment"
	case resource.ExtensionConfigType:
		return "extension config"
	}
	return "secret"
}

func duplicateAddresses(ls map[string]*entry) []string {
	byAddr := map[string][]string{}
	for n, e := range ls {
		l := e.value.(*resource.Listener)
		byAddr[addrKey(l)] = append(byAddr[addrKey(l)], n)
	}
	var errs []string
	for addr, names := range byAddr {
		if len(names) > 1 {
			sort.Strings(names)
			errs = append(errs, fmt.Sprintf("listener %q: address: %s is also used by listener %q", names[1], strings.TrimSuffix(addr, "/udp"), names[0]))
		}
	}
	return errs
}

// addrKey is what two listeners may not share: a TCP and a UDP listener
// may use the same address and port.
func addrKey(l *resource.Listener) string {
	if l.UDP != nil {
		return l.Address + "/udp"
	}
	return l.Address
}

// Names returns the resource names to subscribe for a non-wildcard type.
func (s *Store) Names(typeURL string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string]bool{}
	switch typeURL {
	case resource.RouteType:
		for _, e := range s.types[resource.ListenerType].entries {
			for _, c := range e.value.(*resource.Listener).Chains {
				if c.HCM != nil {
					set[c.HCM.RouteConfigName] = true
				}
			}
		}
		for _, l := range s.active {
			for _, c := range l.Chains {
				if c.HCM != nil {
					set[c.HCM.RouteConfigName] = true
				}
			}
		}
	case resource.SecretType:
		for _, e := range s.types[resource.ListenerType].entries {
			for _, c := range e.value.(*resource.Listener).Chains {
				if c.TLS != nil {
					for _, n := range c.TLS.Secrets() {
						set[n] = true
					}
				}
			}
		}
		for _, l := range s.active {
			for _, c := range l.Chains {
				if c.TLS != nil {
					for _, n := range c.TLS.Secrets() {
						set[n] = true
					}
				}
			}
		}
		for _, e := range s.types[resource.ClusterType].entries {
			if t := e.value.(*resource.Cluster).TLS; t != nil {
				for _, n := range t.Secrets() {
					set[n] = true
				}
			}
		}
		for _, b := range s.built {
			if t := b.cfg.TLS; t != nil {
				for _, n := range t.Secrets() {
					set[n] = true
				}
			}
		}
	case resource.EndpointType:
		for _, e := range s.types[resource.ClusterType].entries {
			if c := e.value.(*resource.Cluster); c.Kind == resource.ClusterEDS {
				set[c.ServiceName] = true
			}
		}
	case resource.ExtensionConfigType:
		for _, e := range s.types[resource.ListenerType].entries {
			for _, r := range extensionRefs(e.value.(*resource.Listener)) {
				set[r.Name] = true
			}
		}
		for _, l := range s.active {
			for _, r := range extensionRefs(l) {
				set[r.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// extensionRefs lists the ECDS references of a listener's chains.
func extensionRefs(l *resource.Listener) []*resource.ExtensionRef {
	var out []*resource.ExtensionRef
	for _, c := range l.Chains {
		if c.HCM != nil {
			for _, f := range c.HCM.Filters {
				if f.Discovery != nil {
					out = append(out, f.Discovery)
				}
			}
		}
		if c.TCP != nil && c.TCP.Kafka != nil {
			out = append(out, c.TCP.Kafka)
		}
	}
	return out
}

// checkExtensionTypes rejects extension configurations whose type a
// referencing filter does not accept, as Envoy does.
func (s *Store) checkExtensionTypes(listeners, exts map[string]*entry) []string {
	var errs []string
	for ln, le := range listeners {
		for _, r := range extensionRefs(le.value.(*resource.Listener)) {
			e := exts[r.Name]
			if e == nil {
				continue
			}
			if t := e.value.(*resource.Extension).TypeURL; !r.Allows(t) {
				errs = append(errs, fmt.Sprintf("extension config %q: typed_config: type %q is not accepted by filter %q of listener %q (type_urls %v)",
					r.Name, t, r.Name, ln, r.TypeURLs))
			}
		}
	}
	sort.Strings(errs)
	return errs
}
