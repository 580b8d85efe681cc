package config

import (
	"sort"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/conntrack"
	"github.com/nodemesh/nodemesh/proxylib/hcm"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/tcpproxy"
	"github.com/nodemesh/nodemesh/proxylib/udpproxy"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// publish recomputes what is warm and pushes it to the data path. Called
// with s.mu held. It fails only when a listener address cannot be bound;
// the data path is then unchanged.
func (s *Store) publish() error {
	now := time.Now()
	pending := map[string]time.Time{}
	waiting := func(key string) bool {
		first, ok := s.since[key]
		if !ok {
			first = now
		}
		if now.Sub(first) >= s.wait {
			return false // initial fetch timeout: stop waiting
		}
		pending[key] = first
		return true
	}

	// Secrets.
	secrets := map[string]*resource.Secret{}
	for n, e := range s.types[resource.SecretType].entries {
		secrets[n] = e.value.(*resource.Secret)
	}

	// Route tables.
	routes := map[string]*route.Table{}
	for n, e := range s.types[resource.RouteType].entries {
		routes[n] = e.table
	}

	// Discovered filter configurations.
	filters := map[string]*hcm.FilterConfig{}
	for n, e := range s.types[resource.ExtensionConfigType].entries {
		filters[n] = e.filter
	}

	// Clusters: EDS clusters are active once their endpoints are present.
	eps := s.types[resource.EndpointType].entries
	clusters := map[string]*upstream.Cluster{}
	built := map[string]*builtCluster{}
	for n, e := range s.types[resource.ClusterType].entries {
		cfg := e.value.(*resource.Cluster)
		var ep *resource.Endpoints
		if !clusterSecretsReady(cfg, secrets) && waiting("c/"+n) {
			// A cluster originating TLS warms until its Secrets arrived.
			if old := s.built[n]; old != nil {
				built[n] = old
				clusters[n] = old.c
			}
			continue
		}
		if cfg.Kind != resource.ClusterEDS {
			// STATIC and ORIGINAL_DST clusters need nothing else.
		} else if x := eps[cfg.ServiceName]; x != nil {
			ep = x.value.(*resource.Endpoints)
		} else if waiting("c/" + n) {
			if old := s.built[n]; old != nil {
				built[n] = old
				clusters[n] = old.c
			}
			continue
		}
		if old := s.built[n]; old != nil && old.cfg == cfg && old.eps == ep {
			built[n] = old
		} else {
			built[n] = &builtCluster{cfg: cfg, eps: ep, c: s.um.Build(cfg, ep)}
		}
		clusters[n] = built[n].c
	}
	// Static clusters (SetStatic): Update refuses dynamic ones of their
	// names, so nothing here is shadowed.
	for n, cfg := range s.static {
		if old := s.built[n]; old != nil && old.cfg == cfg {
			built[n] = old
		} else {
			built[n] = &builtCluster{cfg: cfg, c: s.um.Build(cfg, nil)}
		}
		clusters[n] = built[n].c
	}

	// Listeners: active once their routes and secrets are present.
	active := map[string]*resource.Listener{}
	var bind []string
	for n, e := range s.types[resource.ListenerType].entries {
		l := e.value.(*resource.Listener)
		if s.warm(l, routes, secrets, filters) || !waiting("l/"+n) {
			active[n] = l
			continue
		}
		bind = append(bind, listener.BindKey(l.Address, l.Transparent))
		if old := s.active[n]; old != nil {
			active[n] = old
		}
	}
	// Same address held by an old serving version and a new listener:
	// the newest configuration wins the socket.
	handlers := map[string]listener.Handler{}
	var specs []*listener.Spec
	names := make([]string, 0, len(active))
	for n := range active {
		names = append(names, n)
	}
	sort.Strings(names)
	usedAddr := map[string]bool{}
	var udpSpecs []*udpproxy.Spec
	for _, n := range names {
		l := active[n]
		if usedAddr[addrKey(l)] {
			continue
		}
		usedAddr[addrKey(l)] = true
		if l.UDP != nil {
			udpSpecs = append(udpSpecs, &udpproxy.Spec{Name: l.Name, Address: l.Address, Config: l.UDP})
			continue
		}
		spec := &listener.Spec{Name: l.Name, Address: l.Address, TLSInspector: l.TLSInspector,
			Inspector: l.Inspector, FiltersTimeout: l.FiltersTimeout, ContinueOnFiltersTimeout: l.ContinueOnFiltersTimeout,
			Transparent: l.Transparent, OriginalDst: l.OriginalDst}
		if l.OriginalSrc != nil {
			spec.OriginalSrc, spec.OriginalSrcMark = true, l.OriginalSrc.Mark
		}
		if l.ConntrackMap != "" {
			// Unusable, the map refuses every connection: the listener
			// serves no peer it cannot name.
			spec.Conntrack = conntrack.Shared(l.ConntrackMap)
		}
		for _, c := range l.Chains {
			// A handler belongs to one listener at one address: removing
			// or moving the listener drains its connections, while an
			// unchanged chain keeps its handler across updates.
			key := l.Name + "\x00" + l.Address + "\x00" + c.Key
			h := handlers[key]
			if h == nil {
				h = s.handlers[key]
			}
			if h == nil {
				if c.TCP != nil {
					h = tcpproxy.New(c.TCP, s.rt, s.rt.ALS.Senders(c.TCP.AccessLogs), s.logger)
				} else {
					h = hcm.NewHandler(s.rt, c.HCM, c.TLS != nil)
				}
			}
			handlers[key] = h
			lc := &listener.Chain{ServerNames: c.ServerNames, DestinationPort: c.DestinationPort, SourcePrefixes: c.SourcePrefixes, TransportProtocol: c.TransportProtocol, Handler: h}
			if c.TLS != nil {
				lc.TLS = &listener.TLS{SecretNames: c.TLS.SecretNames, ALPN: c.TLS.ALPN,
					Validation: c.TLS.Validation, RequireClientCert: c.TLS.RequireClientCert}
			}
			spec.Chains = append(spec.Chains, lc)
		}
		specs = append(specs, spec)
	}

	// Publish routing before listeners so a new listener never serves
	// without its routes.
	prevRouting := s.rt.Load()
	prevSecrets := s.secrets.Load()
	s.secrets.Store(&secrets)
	s.rt.Store(&hcm.Routing{Routes: routes, Clusters: clusters, Filters: filters})
	commitUDP, abortUDP := func() {}, func() {}
	if s.udp != nil {
		var err error
		if commitUDP, abortUDP, err = s.udp.Prepare(udpSpecs); err != nil {
			s.rt.Store(prevRouting)
			s.secrets.Store(prevSecrets)
			return err
		}
	}
	if err := s.lm.Apply(bind, specs); err != nil {
		abortUDP()
		s.rt.Store(prevRouting)
		s.secrets.Store(prevSecrets)
		return err
	}
	commitUDP()
	s.active = active
	s.handlers = handlers
	s.built = built
	s.um.Retain(clusters)
	s.since = pending
	s.schedule(now)
	lds, cds := s.types[resource.ListenerType], s.types[resource.ClusterType]
	s.ready.Store(len(pending) == 0 && (lds.received || len(lds.entries) > 0) && (cds.received || len(cds.entries) > 0))
	return nil
}

// clusterSecretsReady reports whether the Secrets a cluster's
// UpstreamTlsContext references are present.
func clusterSecretsReady(c *resource.Cluster, secrets map[string]*resource.Secret) bool {
	if c.TLS == nil {
		return true
	}
	for _, n := range c.TLS.Secrets() {
		if secrets[n] == nil {
			return false
		}
	}
	return true
}

// warm reports whether every route configuration and secret l needs is
// present.
func (s *Store) warm(l *resource.Listener, routes map[string]*route.Table, secrets map[string]*resource.Secret, filters map[string]*hcm.FilterConfig) bool {
	for _, r := range extensionRefs(l) {
		if filters[r.Name] == nil {
			return false
		}
	}
	for _, c := range l.Chains {
		if c.HCM != nil && routes[c.HCM.RouteConfigName] == nil {
			return false
		}
		if c.TLS != nil {
			for _, n := range c.TLS.Secrets() {
				if secrets[n] == nil {
					return false
				}
			}
		}
	}
	return true
}

// schedule re-publishes when the earliest pending item times out.
func (s *Store) schedule(now time.Time) {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	var first time.Time
	for _, t := range s.since {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if first.IsZero() {
		return
	}
	s.timer = time.AfterFunc(first.Add(s.wait).Sub(now)+time.Millisecond, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		if err := s.publish(); err != nil {
			s.logger.Error("activating resources after the initial fetch timeout", "error", err)
		}
	})
}
