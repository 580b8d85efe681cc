package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/gateway/address"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/servicelb"
)

// Config configures an Agent.
type Config struct {
	// Publisher delivers IR to the node's proxies. Required.
	Publisher dataplane.Publisher
	// ControllerName selects the GatewayClasses this agent programs
	// (default gateway.ControllerName).
	ControllerName gwv1.GatewayController
	// AddressPool assigns Gateway addresses (default address.DefaultPool).
	AddressPool netip.Prefix
	// Addresses, when set, decides Gateway addresses instead of the
	// AddressPool allocator (in Kubernetes mode the controller assigns
	// them and the agent reads them from Gateway status).
	Addresses AddressAssigner
	// HostNetwork serves Gateways on this node's own address
	// (gateway.Options.HostNetwork); Addresses then gives each Gateway
	// that address on the nodes selected to serve it
	// (kube.HostNetworkAddresses).
	HostNetwork bool
	// Ingress tunes Ingress support; its addresses are assigned with the
	// Gateways' (gateway.IngressAddressRequests), so any set here are
	// replaced.
	Ingress gateway.IngressOptions
	// SystemCAs is the host's CA bundle (gateway.Options.SystemCAs).
	SystemCAs []byte
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// Policy, when set, compiles network policy on every Apply: its L7
	// part is published with the rest of the configuration (Config.Policy
	// of the IR) and its status is reported.
	Policy *policy.Compiler
	// HostIPs are the node's own addresses (identity host in the ipcache).
	HostIPs []netip.Addr
	// Datapath, when set (with Policy), receives endpoints, ipcache and
	// policy rows; Interfaces finds local workloads' interfaces for it.
	Datapath   Datapath
	Interfaces InterfaceResolver
	// GatewayUpstreamMark, when not zero, is the SO_MARK of the proxy's
	// connections to Gateway backends: with the datapath, the routing
	// listeners' mark carrying the reserved ingress identity
	// (datapath.ProxyRouteMark), so a backend's policy judges Gateway
	// traffic as ingress (fromEntities: [ingress]) rather than as the
	// node, its L7 rules included (the datapath hands the connection to
	// the ingress policy listener, which reads the identity the datapath
	// judged it with from its connection tracking whatever the source
	// address, with ProxyIdentity; without it, from the node's own
	// address the datapath refuses it, reported in
	// PolicyStatus.GatewayFromNode).
	GatewayUpstreamMark uint32
	// ProxyIdentity says the proxy's policy listeners read each
	// redirected connection's source identity from the datapath
	// (datapath.WithProxyIdentity, policy.Listeners.ConntrackMap).
	ProxyIdentity bool
	// NodeName is this node's Node (Kubernetes mode): with
	// GatewayUpstreamMark, the proxy's connections to Gateway backends
	// leave from the Node's ingress address (model.IngressIPAnnotation)
	// when it has one, which every node maps to the ingress identity, so
	// backends on other nodes judge Gateway traffic as ingress too.
	NodeName string
	// Auth, when set (with Datapath), runs mutual authentication for
	// the auth-required rows (auth.go).
	Auth *Auth
	// Flows, when set, is served on /v1/flows; the agent keeps its
	// address-to-identity resolver current.
	Flows *flow.Store
	// Services, when set, receives the Service table (Service frontends
	// and their ready backends) and the Service ranges on every Apply,
	// for socket-level Service translation in the datapath.
	Services ServiceTable
	// NoServiceHooks says the datapath's socket hooks are not attached
	// (no --datapath-cgroup): the Service table is written, but nothing
	// translates a Pod's connect with it, so no Service's traffic can be
	// sent to the proxy (CannotRedirect).
	NoServiceHooks bool
	// Applied, when set, is called after every Apply with how long the
	// translation and publication took and Apply's error (metrics). Called
	// on Apply's goroutine; it must not block.
	Applied func(took time.Duration, err error)
	// LocalRoutes, when set, is given the Gateway and Ingress addresses
	// of every translation before it is published, so the node accepts
	// their traffic and the proxy can listen on them
	// (datapath/localroute: load-balancer addresses that are not the
	// node's own).
	LocalRoutes LocalRoutes
	// EnvoyConfig configures CiliumEnvoyConfig support; nil still
	// translates the configs, but refuses listeners without an address.
	EnvoyConfig *EnvoyConfigOptions
}

// LocalRoutes makes a set of addresses local to the node;
// *localroute.Routes implements it. Called from Apply's goroutine; each
// call replaces the whole set.
type LocalRoutes interface {
	Sync([]netip.Addr) error
}

// ServiceTable is the datapath's Service table as the agent drives it;
// *datapath.Datapath implements it. Called from Apply's goroutine; each
// call replaces the whole table (or the whole set of ranges) or returns
// an error and changes nothing a connect could observe half-done.
type ServiceTable interface {
	SyncServices([]model.Service) error
	SyncServiceRanges([]netip.Prefix) error
}

// AddressAssigner decides the address of each Gateway the agent programs.
// Assign is called from Apply's goroutine with the Gateways of the current
// snapshot; it returns the address of each Gateway that has one and, for
// those that have none, why (the text of their AddressNotAssigned
// condition).
type AddressAssigner interface {
	Assign(gws []*gwv1.Gateway) (map[input.Key]netip.Addr, map[input.Key]string)
}

// Agent runs translation and publication for one node. Create it with New.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	alloc *address.Allocator
	// gw translates successive snapshots, reusing what did not change;
	// nil translates each afresh.
	gw *gateway.Translator

	mu    sync.Mutex
	state api.Status // translation status as of the last Apply, without proxy overlay

	pol policyState // datapath sync state (policy.go)
	cec cecState    // Envoy configs (envoyconfig.go)

	// events wakes waiters (WaitStatus, WaitDatapath) whenever the
	// agent's own state changes; the publisher has its own (Changed).
	events notifier
}

// New returns an Agent. It starts nothing; call Apply for every view of
// intent.
func New(cfg Config) (*Agent, error) {
	if cfg.Publisher == nil {
		return nil, fmt.Errorf("creating agent: no publisher")
	}
	if cfg.ControllerName == "" {
		cfg.ControllerName = gateway.ControllerName
	}
	if !cfg.AddressPool.IsValid() {
		cfg.AddressPool = address.DefaultPool
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{cfg: cfg, log: cfg.Logger, alloc: address.New(cfg.AddressPool), gw: gateway.NewTranslator()}, nil
}

// Apply translates snap and publishes the result. sourceErrors are the
// provider's complaints about its input (bad files), reported in Status.
// It returns an error only when nothing could be published; the previous
// configuration then keeps serving.
func (a *Agent) Apply(ctx context.Context, snap *input.Snapshot, sourceErrors []string) (err error) {
	if a.cfg.Applied != nil {
		start := time.Now()
		defer func() { a.cfg.Applied(time.Since(start), err) }()
	}
	res := a.Translate(snap)
	if a.cfg.LocalRoutes != nil {
		// Before publishing: the proxies bind the new listeners as soon
		// as they get them. Only the translation's own listeners (Gateways,
		// Ingresses): CiliumEnvoyConfig listeners are added below.
		if err := a.cfg.LocalRoutes.Sync(listenerAddresses(res.Config)); err != nil {
			a.log.Error("local routes for Gateway addresses not all updated", "error", err)
		}
	}
	if a.cfg.Services != nil {
		// Ranges before the Service table (syncServices below): a range
		// added before its Service's frontend only drops (under egress
		// enforcement) what the frontend would have translated, never
		// passes it.
		if err := a.cfg.Services.SyncServiceRanges(servicelb.Ranges(snap.ServiceCIDRs, snap.Services)); err != nil {
			a.log.Error("service ranges not updated; the previous ones stay", "error", err)
		}
	}
	src := a.ingressSources(snap)
	if m := a.cfg.GatewayUpstreamMark; m != 0 {
		// Every cluster of the translation is a Gateway's (the policy's
		// own clusters come with Config.Policy). Set before anything
		// hashes the clusters.
		for _, c := range res.Config.Clusters {
			c.UpstreamMark = m
			c.UpstreamSource = upstreamSource(c, src)
		}
	}
	pol := a.compilePolicy(policy.FromSnapshot(snap, a.cfg.HostIPs))
	if pol != nil {
		res.Config.Policy = pol.L7
		// The Gateway and Ingress listeners enforce the policy of the
		// node's ingress endpoint (reserved:ingress).
		res.Config.IngressPolicy = pol.Ingress
	}
	a.translateEnvoyConfigs(snap, res.Config, pol, res.Mesh)
	// Before publishing: a Service's backends are usable as soon as they
	// are ready, whatever the proxies do with the L7 configuration (a
	// Service newly redirected to a proxy listener refuses connections
	// until the proxies acknowledged it: followListeners).
	a.syncServices()
	st := api.Status{
		ConfigErrors:   sourceErrors,
		GatewayClasses: res.GatewayClasses,
		Gateways:       res.Gateways,
		Routes:         res.Routes,
		Ingresses:      res.Ingresses,
	}
	// The publisher validates the IR (translators promise valid IR, so a
	// failure there is a bug, not user error) and keeps the last good
	// configuration when it fails.
	pub, err := a.cfg.Publisher.Publish(ctx, res.Config)
	if err == nil {
		st.Versions = pub.Versions
		st.Warnings = pub.Warnings
		if pub.Changed {
			a.log.Info("published configuration", "versions", pub.Versions,
				"listeners", len(res.Config.Listeners), "clusters", len(res.Config.Clusters))
		}
	} else {
		err = fmt.Errorf("publishing configuration: %w", err)
	}
	a.mu.Lock()
	st.Generation = a.state.Generation + 1
	if err != nil {
		// Keep reporting what is actually serving.
		a.log.Error("keeping the last good configuration", "err", err)
		prev := a.state
		prev.Generation = st.Generation
		prev.ConfigErrors = sourceErrors
		prev.PublishError = err.Error()
		a.state = prev
		a.mu.Unlock()
		a.events.notify()
		return err
	}
	a.state = st
	a.mu.Unlock()
	a.events.notify()
	a.followListeners(st.Versions)
	if pol != nil {
		// Only once the proxy configuration is published: new redirect
		// rows wait for the listeners they point at.
		a.syncDatapath(pol, st.Versions, a.gatewayFromNode(pol, src))
	}
	return nil
}

// Translate runs address assignment and the Gateway API translation for
// snap without publishing anything.
func (a *Agent) Translate(snap *input.Snapshot) *gateway.Result {
	var addrs map[input.Key]netip.Addr
	var problems map[input.Key]string
	// Ingress load balancers take addresses from the same assignment as
	// Gateways, so the two never collide.
	ing := a.cfg.Ingress
	want := append(address.OwnGateways(snap, a.cfg.ControllerName), gateway.IngressAddressRequests(snap, ing)...)
	if a.cfg.Addresses != nil {
		addrs, problems = a.cfg.Addresses.Assign(want)
	} else {
		addrs, problems = a.alloc.Assign(want)
	}
	ing.UseIngressAddresses(addrs)
	opts := gateway.Options{
		ControllerName:  a.cfg.ControllerName,
		Addresses:       addrs,
		AddressProblems: problems,
		Ingress:         ing,
		SystemCAs:       a.cfg.SystemCAs,
		HostNetwork:     a.cfg.HostNetwork,
	}
	if o := a.cfg.EnvoyConfig; o != nil {
		// GAMMA routes are served where the proxy's load-balancing
		// listeners are, and reached through the same Service table.
		opts.Mesh.ListenAddress = o.ListenAddress
		// As for CiliumEnvoyConfigs: only where the datapath steers the
		// replies to the client's address back to the proxy.
		if a.cfg.Datapath != nil {
			opts.Mesh.OriginalSourceMark = o.OriginalSourceMark
		}
	}
	opts.Mesh.CannotRedirect = a.CannotRedirect()
	if a.gw == nil {
		return gateway.Translate(snap, opts)
	}
	return a.gw.Translate(snap, opts)
}

// CannotRedirect says why this node cannot send a Service's traffic to
// its proxy, or "" when it can: without a datapath Service table nothing
// redirects (nor refuses) a Service's connections, and without a listen
// address there is no mesh listener to send them to. GAMMA routes are
// then refused on their Service parents (gateway.MeshOptions), here and,
// through the node's report, by the controller; CiliumEnvoyConfigs that
// redirect are refused the same way (envoyconfig.Options.CannotRedirect).
func (a *Agent) CannotRedirect() string {
	switch o := a.cfg.EnvoyConfig; {
	case a.cfg.Services == nil:
		return "this node cannot send a Service's traffic to the proxy (its agent has no datapath Service table: run it with --datapath and --datapath-cgroup)"
	case a.cfg.NoServiceHooks:
		return "this node cannot send a Service's traffic to the proxy (its agent's datapath translates no connects to Services: run it with --datapath-cgroup)"
	case o == nil || !o.ListenAddress.IsValid():
		return "this node has no address for the proxy's mesh listeners (its agent's --envoy-config-address)"
	}
	return ""
}

// listenerAddresses lists the distinct addresses of c's listeners.
func listenerAddresses(c *ir.Config) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, l := range c.Listeners {
		if a, err := netip.ParseAddr(l.Address); err == nil && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// WaitStatus blocks until ok accepts the agent's status, and returns that
// status, or until ctx ends. It wakes on the agent's own changes (an
// Apply, a datapath sync) and on the publisher's (a proxy answered,
// connected or went away), never polls. Safe from any goroutine; ok is
// called from the caller's.
func (a *Agent) WaitStatus(ctx context.Context, ok func(*api.Status) bool) (*api.Status, error) {
	for {
		mine, proxies := a.events.wait(), a.cfg.Publisher.Changed()
		st := a.Status()
		if ok(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("waiting for the agent's status: %w", ctx.Err())
		case <-mine:
		case <-proxies:
		}
	}
}

// ingressSources are this node's ingress addresses, from its Node.
func (a *Agent) ingressSources(snap *input.Snapshot) []netip.Addr {
	if a.cfg.NodeName == "" {
		return nil
	}
	for _, n := range snap.Nodes {
		if n != nil && n.Name == a.cfg.NodeName {
			return policy.NodeIngressIPs(n)
		}
	}
	return nil
}

// upstreamSource picks the ingress address of the family of every
// endpoint of c: a socket bound to one family cannot reach the other, so
// a cluster with endpoints of both families (or names) binds nothing and
// keeps the mark alone (ingress on this node, remote-node elsewhere).
func upstreamSource(c *ir.Cluster, src []netip.Addr) string {
	if len(src) == 0 || len(c.Endpoints) == 0 {
		return ""
	}
	var v4, v6 bool
	for _, ep := range c.Endpoints {
		ip, err := netip.ParseAddr(ep.Address)
		if err != nil {
			return ""
		}
		if ip.Unmap().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	for _, s := range src {
		if (v4 && !v6 && s.Is4()) || (v6 && !v4 && s.Is6()) {
			return s.String()
		}
	}
	return ""
}
