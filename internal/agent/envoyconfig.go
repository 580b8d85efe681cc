package agent

import (
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/envoyconfig"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/servicelb"
)

// EnvoyConfigOptions configure CiliumEnvoyConfig and
// CiliumClusterwideEnvoyConfig support (mesh/envoyconfig).
type EnvoyConfigOptions struct {
	// NodeName finds this node among the snapshot's Nodes, whose labels
	// spec.nodeSelector matches.
	NodeName string
	// ListenAddress is the node address listeners without an address
	// bind, and so where the Services redirected to them are sent. Unset,
	// such listeners are refused.
	ListenAddress netip.Addr
	// OriginalSourceMark, when not zero, says the datapath steers the
	// replies to the proxy's original-source connections back to it, and
	// is their mark (envoyconfig.Options.OriginalSourceMark): listeners of
	// configs that keep the client's address get original_src, and so do
	// the listeners of GAMMA routes (gateway.MeshOptions.OriginalSourceMark).
	// Without a datapath (Config.Datapath) it is not used.
	OriginalSourceMark uint32
	// UpstreamMark, when not zero, is the mark of every upstream
	// connection of CiliumEnvoyConfig and lb-l7 clusters
	// (envoyconfig.Options.UpstreamMark): the routing listeners' mark,
	// so the datapath still applies a backend's L7 ingress rules. Without
	// a datapath (Config.Datapath) it is not used.
	UpstreamMark uint32
}

// liveKey is a redirect target: a listener and the socket it binds.
type liveKey struct {
	listener string
	bind     netip.AddrPort
}

// cecState is the Envoy config half of the agent's state. Services
// redirected to a listener are sent there only once every connected proxy
// acknowledged the publication that carries it (live); before that, and
// for a refused config, connections to them are refused: the user put a
// proxy in their path, so they never bypass it.
type cecState struct {
	mu        sync.Mutex
	statuses  []envoyconfig.Status
	redirects []envoyconfig.Redirect
	services  *input.Snapshot // Services and EndpointSlices of the last Apply
	live      map[liveKey]bool
	// superseded is closed when a newer Apply replaces the redirects a
	// waiter waits for.
	superseded chan struct{}
}

// meshOwner is the Owner kind of the redirects of Service ports that
// GAMMA routes steer (gateway.MeshRedirect); no config status has it.
const meshOwner = "GAMMA"

// translateEnvoyConfigs runs mesh/envoyconfig beside the Gateway and
// policy translation and adds its resources to cfg. mesh are the Service
// ports the Gateway translation's GAMMA routes steer; they are sent to
// the proxy by the same redirects, and wait for the same
// acknowledgement, as the ports of lb-l7 Services and of
// CiliumEnvoyConfigs.
func (a *Agent) translateEnvoyConfigs(snap *input.Snapshot, cfg *ir.Config, pol *policy.Result, mesh []gateway.MeshRedirect) {
	// Without a Service table, or without the socket hooks that use it,
	// nothing sends a Service's traffic to a listener: configs that
	// redirect are refused (fail closed, and said).
	opts := envoyconfig.Options{Taken: map[netip.AddrPort]string{}, CannotRedirect: a.cfg.Services == nil || a.cfg.NoServiceHooks}
	if o := a.cfg.EnvoyConfig; o != nil {
		opts.ListenAddress = o.ListenAddress
		// Only with the datapath's reply steering: without it a backend's
		// answer to the client's address would go to the client, not the
		// proxy.
		if a.cfg.Datapath != nil {
			opts.OriginalSourceMark = o.OriginalSourceMark
			opts.UpstreamMark = o.UpstreamMark
		}
		for _, n := range snap.Nodes {
			if n.Name == o.NodeName {
				opts.NodeLabels = n.Labels
			}
		}
	}
	for _, l := range cfg.Listeners {
		if addr, err := netip.ParseAddr(l.Address); err == nil && l.UDP == nil {
			opts.Taken[netip.AddrPortFrom(addr, uint16(l.Port))] = "listener " + l.Name
		}
	}
	if pol != nil && pol.L7 != nil {
		for _, l := range pol.L7.Listeners {
			if addr, err := netip.ParseAddr(l.Address); err == nil {
				opts.Taken[netip.AddrPortFrom(addr, uint16(l.Port))] = "network policy listener " + l.Name
			}
		}
	}
	res := envoyconfig.Translate(snap, opts)
	cfg.Resources = res.Resources
	for _, st := range res.Statuses {
		if !st.Valid {
			a.log.Warn("Envoy config refused", "kind", st.Kind, "namespace", st.Namespace, "name", st.Name,
				"reason", st.Reason, "message", st.Message)
		}
	}
	res.Redirects = withMeshRedirects(res.Redirects, mesh)
	if a.cfg.Services == nil && len(mesh) > 0 {
		a.log.Warn("GAMMA routes steer Services, but this agent does not translate Services (no datapath Service table): their traffic is not sent to the proxy",
			"ports", len(mesh))
	}
	cs := &a.cec
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.statuses, cs.redirects, cs.services = res.Statuses, res.Redirects, snap
	want := map[liveKey]bool{}
	for _, rd := range res.Redirects {
		if !rd.Refused {
			want[liveKey{rd.Listener, rd.Bind}] = true
		}
	}
	for k := range cs.live {
		if !want[k] {
			delete(cs.live, k)
		}
	}
}

// serviceTable is the datapath's Service table for the last Apply: the
// Services' own backends, except for the ports of redirected Services,
// whose one backend is the proxy's listener once it is live, and none
// (connections refused) before, or when the config was refused.
func (a *Agent) serviceTable() []model.Service {
	cs := &a.cec
	cs.mu.Lock()
	defer cs.mu.Unlock()
	snap := cs.services
	if snap == nil {
		return nil
	}
	rows := servicelb.Table(snap.Services, snap.EndpointSlices)
	if len(cs.redirects) == 0 {
		return rows
	}
	type frontend struct {
		addr netip.Addr
		port uint16
	}
	to := map[frontend][]model.Backend{}
	svcs := map[input.Key]*corev1.Service{}
	for _, s := range snap.Services {
		svcs[input.Key{Namespace: s.Namespace, Name: s.Name}] = s
	}
	for _, rd := range cs.redirects {
		svc := svcs[rd.Service]
		if svc == nil {
			continue
		}
		live := !rd.Refused && cs.live[liveKey{rd.Listener, rd.Bind}]
		for _, ipStr := range append([]string{svc.Spec.ClusterIP}, svc.Spec.ClusterIPs...) {
			ip, err := netip.ParseAddr(ipStr)
			if err != nil {
				continue
			}
			for _, port := range rd.Ports {
				var bs []model.Backend
				if live && rd.Bind.Addr().Is4() == ip.Is4() {
					bs = []model.Backend{{Addr: rd.Bind.Addr(), Port: rd.Bind.Port()}}
				}
				to[frontend{ip, port}] = bs
			}
		}
	}
	for i, r := range rows {
		if bs, ok := to[frontend{r.Frontend, r.Port}]; ok && r.Proto == model.ProtoTCP {
			rows[i].Backends = bs
		}
	}
	return rows
}

// syncServices writes the Service table, if the agent drives one.
func (a *Agent) syncServices() {
	if a.cfg.Services == nil {
		return
	}
	if err := a.cfg.Services.SyncServices(a.serviceTable()); err != nil {
		a.log.Error("service table not updated; the previous one stays", "error", err)
	}
}

// followListeners makes the redirects of a publication live once every
// connected proxy acknowledged its listeners (versions), then rewrites
// the Service table. A proxy's rejection leaves them closed; a newer
// Apply ends the wait.
func (a *Agent) followListeners(versions map[string]string) {
	cs := &a.cec
	cs.mu.Lock()
	if cs.superseded != nil {
		close(cs.superseded)
		cs.superseded = nil
	}
	var waiting []liveKey
	for _, rd := range cs.redirects {
		k := liveKey{rd.Listener, rd.Bind}
		if !rd.Refused && !cs.live[k] {
			waiting = append(waiting, k)
		}
	}
	if len(waiting) == 0 {
		cs.mu.Unlock()
		return
	}
	superseded := make(chan struct{})
	cs.superseded = superseded
	cs.mu.Unlock()
	want := map[string]string{"Listener": versions["Listener"]}
	go func() {
		for {
			changed := a.cfg.Publisher.Changed()
			acked, rejected := true, false
			for _, p := range a.cfg.Publisher.Proxies() {
				if !p.Connected {
					continue
				}
				if !p.AckedAll(want) {
					acked = false
				}
				for _, ts := range p.Types {
					if ts.Type == "Listener" && ts.Nack != nil && ts.Nack.Version == want["Listener"] {
						rejected = true
					}
				}
			}
			if rejected {
				return
			}
			if acked {
				cs.mu.Lock()
				select {
				case <-superseded:
					cs.mu.Unlock()
					return
				default:
				}
				if cs.live == nil {
					cs.live = map[liveKey]bool{}
				}
				for _, k := range waiting {
					cs.live[k] = true
				}
				cs.mu.Unlock()
				a.syncServices()
				a.events.notify()
				return
			}
			select {
			case <-changed:
			case <-superseded:
				return
			}
		}
	}()
}

// envoyConfigStatus reports every config, with the proxies' rejections
// of its resources and its pending redirects overlaid.
func (a *Agent) envoyConfigStatus(proxies []dataplane.Proxy) []api.EnvoyConfigStatus {
	cs := &a.cec
	cs.mu.Lock()
	defer cs.mu.Unlock()
	pending := map[envoyconfig.Object]bool{}
	for _, rd := range cs.redirects {
		if !rd.Refused && !cs.live[liveKey{rd.Listener, rd.Bind}] {
			pending[rd.Owner] = true
		}
	}
	out := make([]api.EnvoyConfigStatus, 0, len(cs.statuses))
	for _, st := range cs.statuses {
		s := api.EnvoyConfigStatus{Kind: st.Kind, Namespace: st.Namespace, Name: st.Name, Generation: st.Generation,
			Valid: st.Valid, Reason: st.Reason, Message: st.Message, Pending: st.Valid && pending[st.Object]}
		for _, p := range proxies {
			for _, ts := range p.Types {
				if ts.Nack == nil {
					continue
				}
				for _, o := range ts.Nack.Objects {
					if o.Kind == st.Kind && o.Namespace == st.Namespace && o.Name == st.Name {
						s.Valid, s.Reason, s.Message = false, "ProxyRejected", "proxy "+p.Node+": "+ts.Nack.Message
					}
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// withMeshRedirects orders a Service port's claims by precedence, the
// last one winning in the Service table: the lb-l7 annotation's, then
// GAMMA routes' (routes say more than "balance every request"), then a
// CiliumEnvoyConfig's (the user wrote the proxy's configuration for that
// very port).
func withMeshRedirects(rds []envoyconfig.Redirect, mesh []gateway.MeshRedirect) []envoyconfig.Redirect {
	if len(mesh) == 0 {
		return rds
	}
	out := make([]envoyconfig.Redirect, 0, len(rds)+len(mesh))
	for _, rd := range rds {
		if rd.Owner.Kind == envoyconfig.KindService {
			out = append(out, rd)
		}
	}
	for _, m := range mesh {
		out = append(out, envoyconfig.Redirect{
			Owner:   envoyconfig.Object{Kind: meshOwner, Namespace: m.Service.Namespace, Name: m.Service.Name},
			Service: m.Service, Ports: []uint16{m.Port}, Listener: m.Listener, Bind: m.Bind, Refused: m.Refused,
		})
	}
	for _, rd := range rds {
		if rd.Owner.Kind != envoyconfig.KindService {
			out = append(out, rd)
		}
	}
	return out
}
