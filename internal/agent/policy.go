package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// Datapath is the eBPF datapath as the agent drives it; *datapath.Datapath
// implements it. The agent calls it from Apply's goroutine, or from the
// goroutine that waits for proxies to acknowledge new policy listeners,
// never both at once. Each call replaces a whole table and either applies
// it completely or returns an error and changes nothing.
type Datapath interface {
	SyncEndpoints([]model.Endpoint) error
	SyncIPCache([]model.IPCacheEntry) error
	SyncPolicy(model.Policy) error
	SyncAttachments(ifindexes []int) error
}

// InterfaceResolver finds the host-side interface of a local workload
// address (in standalone mode, by route lookup; a CNI would know it).
type InterfaceResolver interface {
	InterfaceOf(addr netip.Addr) (ifindex int, err error)
}

// ackWait bounds how long new redirect rows wait for the proxies to
// acknowledge the listeners they point at. After it the rows are written
// anyway: a redirect to a port nothing listens on drops (never lets
// traffic through unfiltered).
const ackWait = 30 * time.Second

// policyState is the agent's memory of what the datapath holds.
type policyState struct {
	mu sync.Mutex
	// synced redirect ports: listeners the datapath already redirects to.
	syncedPorts map[uint16]bool
	// gen counts datapath syncs requested; a waiter only writes if no
	// newer one was requested meanwhile. superseded is closed when gen
	// moves on, which ends the waiter of the previous one.
	gen        uint64
	superseded chan struct{}
	endpoints  map[string]uint16 // pod → endpoint id, sticky
	nextID     uint16
	status     api.PolicyStatus
	// The publication the current compilation rode in, and whether any
	// of its rows redirect to the proxy (only then does a proxy's
	// rejection concern policy).
	versions    map[string]string
	publishedAt time.Time
	redirects   bool
	// nodes numbers the other nodes (auth keys, ipcache); authPairs
	// counts the relations last handed to the auth manager.
	nodes     nodeIDs
	authPairs int
	// locals are the identities of the local endpoints (the handshake
	// server proves only those).
	locals map[model.Identity]bool
	// localAddrs maps each local endpoint address to its identity (the
	// Workload API attests callers by it).
	localAddrs map[netip.Addr]model.Identity
}

// compilePolicy runs policy compilation for a snapshot (nil when the agent
// has no policy compiler).
func (a *Agent) compilePolicy(in policy.Input) *policy.Result {
	if a.cfg.Policy == nil {
		return nil
	}
	res := a.cfg.Policy.Compile(in)
	if a.cfg.Flows != nil {
		a.cfg.Flows.SetResolver(resolverFor(res.Identities))
	}
	return res
}

// resolverFor maps addresses to identities and workloads with the ipcache
// (longest prefix), world for the rest, and identities to their labels
// (flow.LabelResolver; one slice per identity, shared by its flows).
func resolverFor(st *identity.State) flow.Resolver {
	labels := make(map[uint32][]string, len(st.Identities))
	for _, id := range st.Identities {
		ls := make([]string, 0, len(id.Labels))
		for _, l := range id.Labels {
			ls = append(ls, l.String())
		}
		labels[uint32(id.ID)] = ls
	}
	return identityResolver{resolve: addressResolver(st), labels: labels}
}

// identityResolver is a flow.Resolver and flow.LabelResolver.
type identityResolver struct {
	resolve flow.ResolverFunc
	labels  map[uint32][]string
}

func (r identityResolver) Resolve(a netip.Addr) (uint32, string) { return r.resolve(a) }
func (r identityResolver) Labels(id uint32) []string             { return r.labels[id] }

// addressResolver maps addresses to identities and workloads by the
// longest ipcache prefix that contains them. Most entries are single
// addresses (Pods, nodes), which a map answers; only the shorter
// prefixes (policies' CIDRs) are searched, longest first: the flow store
// asks for every flow's addresses it has not met in the same batch.
func addressResolver(st *identity.State) flow.ResolverFunc {
	pods := map[netip.Addr]string{}
	for _, ep := range st.Endpoints {
		for _, ip := range ep.IPs {
			pods[ip] = ep.Pod.String()
		}
	}
	hosts := map[netip.Addr]model.Identity{}
	var prefixes []identity.IPCacheEntry
	for _, e := range st.IPCache {
		if e.Prefix.IsSingleIP() {
			if _, dup := hosts[e.Prefix.Addr()]; !dup {
				hosts[e.Prefix.Addr()] = e.Identity
			}
			continue
		}
		prefixes = append(prefixes, e)
	}
	sort.SliceStable(prefixes, func(i, j int) bool { return prefixes[i].Prefix.Bits() > prefixes[j].Prefix.Bits() })
	return flow.ResolverFunc(func(a netip.Addr) (uint32, string) {
		if a.Zone() == "" { // a prefix contains no address with a zone
			if id, ok := hosts[a]; ok {
				return uint32(id), pods[a]
			}
		}
		for _, e := range prefixes {
			if e.Prefix.Contains(a) {
				return uint32(e.Identity), pods[a]
			}
		}
		return uint32(model.IdentityWorld), ""
	})
}

// syncDatapath makes the datapath match a compilation. Endpoints and the
// ipcache are written at once; policy rows too, unless they redirect to a
// listener the datapath did not redirect to before: then they wait until
// every connected proxy acknowledged versions, the publication that
// carries that listener (Cilium's ACK completions), or ackWait passed.
// Meanwhile, and for as long as this compilation is current, the agent
// follows the proxies (followProxies): when one rejects the publication,
// the rows that redirect to the proxy are replaced by drops, since the
// proxy keeps running its previous L7 configuration.
func (a *Agent) syncDatapath(res *policy.Result, versions map[string]string, gatewayFromNode string) {
	ps := &a.pol
	wanted := redirectPorts(res.Datapath)
	ps.mu.Lock()
	ps.gen++
	gen := ps.gen
	if ps.superseded != nil {
		close(ps.superseded)
	}
	ps.superseded = make(chan struct{})
	superseded := ps.superseded
	st := api.PolicyStatus{Policies: res.Policies, Endpoints: len(res.Local), Rows: len(res.Datapath.Entries), Problems: res.Identities.Problems,
		IngressEndpoint: ingressEndpointStatus(res, a.cfg.Policy.IngressEndpoint()), GatewayFromNode: gatewayFromNode}
	for _, id := range res.Identities.Identities {
		if !id.ID.IsReserved() {
			st.Identities++
		}
	}
	ps.status = st
	ps.locals = make(map[model.Identity]bool, len(res.Local))
	ps.localAddrs = map[netip.Addr]model.Identity{}
	for _, ep := range res.Local {
		ps.locals[ep.Identity] = true
		for _, ip := range ep.IPs {
			ps.localAddrs[ip] = ep.Identity
		}
	}
	ps.versions, ps.publishedAt, ps.redirects = versions, time.Now(), len(wanted) > 0
	since := ps.publishedAt
	ps.mu.Unlock()
	a.events.notify()
	if a.cfg.Datapath == nil {
		return
	}
	ps.mu.Lock()
	nodeOf := ps.nodes.assign(res)
	ps.mu.Unlock()
	if au := a.cfg.Auth; au != nil {
		// Authenticate before the rows that need it are written, so
		// a first connection finds its entry (eager, not on a miss).
		pairs := authPairs(res, nodeOf, au.NodeIP, au.Port)
		au.Pairs.SetPairs(pairs)
		ps.mu.Lock()
		ps.authPairs = len(pairs)
		ps.mu.Unlock()
		if au.EndpointsChanged != nil {
			au.EndpointsChanged()
		}
	}
	if err := a.syncTables(res, nodeOf); err != nil {
		a.setDatapathError(gen, err)
		return
	}
	if len(wanted) == 0 {
		// Nothing depends on the proxy.
		a.syncPolicy(gen, res.Datapath, wanted)
		return
	}
	ps.mu.Lock()
	fresh := false
	for p := range wanted {
		if !ps.syncedPorts[p] {
			fresh = true
		}
	}
	ps.mu.Unlock()
	state := rowsNone
	switch view := proxyView(a.cfg.Publisher.Proxies(), versions, since); {
	case view.rejected != "":
		a.syncPolicy(gen, dropRedirects(res.Datapath), nil)
		state = rowsClosed
	case !fresh:
		a.syncPolicy(gen, res.Datapath, wanted)
		state = rowsCompiled
	default:
		ps.mu.Lock()
		if ps.gen == gen {
			ps.status.DatapathPending = true
		}
		ps.mu.Unlock()
		a.events.notify()
	}
	go a.followProxies(superseded, gen, res.Datapath, versions, since, wanted, state)
}

// syncTables writes endpoints, ipcache and attachments. Remote Pods'
// ipcache rows carry their node's id (nodeOf), the datapath's auth key.
func (a *Agent) syncTables(res *policy.Result, nodeOf map[*identity.Endpoint]uint16) error {
	ps := &a.pol
	var eps []model.Endpoint
	var ifindexes []int
	ps.mu.Lock()
	if ps.endpoints == nil {
		ps.endpoints = map[string]uint16{}
	}
	live := map[string]bool{}
	for _, ep := range res.Local {
		key := ep.Pod.String()
		live[key] = true
		id, ok := ps.endpoints[key]
		if !ok {
			id = ps.allocEndpointID()
			ps.endpoints[key] = id
		}
		if a.cfg.Interfaces == nil {
			continue
		}
		ifx, err := a.cfg.Interfaces.InterfaceOf(ep.IPs[0])
		if err != nil {
			a.log.Warn("local endpoint has no interface; not attached", "pod", key, "error", err)
			continue
		}
		eps = append(eps, model.Endpoint{ID: id, Identity: ep.Identity, IfIndex: ifx, IPs: ep.IPs})
		ifindexes = append(ifindexes, ifx)
	}
	for k := range ps.endpoints {
		if !live[k] {
			delete(ps.endpoints, k)
		}
	}
	ps.mu.Unlock()
	nodeByAddr := map[netip.Addr]uint16{}
	for ep, node := range nodeOf {
		if node == 0 {
			continue
		}
		for _, ip := range ep.IPs {
			nodeByAddr[ip] = node
		}
	}
	var cache []model.IPCacheEntry
	for _, e := range res.Identities.IPCache {
		ce := model.IPCacheEntry{Prefix: e.Prefix, Identity: e.Identity}
		if e.Prefix.IsSingleIP() {
			ce.Node = nodeByAddr[e.Prefix.Addr()]
		}
		cache = append(cache, ce)
	}
	if err := a.cfg.Datapath.SyncEndpoints(eps); err != nil {
		return fmt.Errorf("syncing endpoints: %w", err)
	}
	if err := a.cfg.Datapath.SyncIPCache(cache); err != nil {
		return fmt.Errorf("syncing ipcache: %w", err)
	}
	sort.Ints(ifindexes)
	ifindexes = dedupInts(ifindexes)
	if err := a.cfg.Datapath.SyncAttachments(ifindexes); err != nil {
		return fmt.Errorf("attaching to workload interfaces: %w", err)
	}
	return nil
}

func (ps *policyState) allocEndpointID() uint16 {
	used := map[uint16]bool{}
	for _, id := range ps.endpoints {
		used[id] = true
	}
	for {
		ps.nextID++
		if ps.nextID == 0 {
			ps.nextID = 1
		}
		if !used[ps.nextID] {
			return ps.nextID
		}
	}
}

func (a *Agent) syncPolicy(gen uint64, p model.Policy, ports map[uint16]bool) {
	defer a.events.notify()
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	if a.pol.gen != gen {
		return // a newer compilation owns the datapath now
	}
	a.pol.status.DatapathPending = false
	if err := a.cfg.Datapath.SyncPolicy(p); err != nil {
		a.pol.status.DatapathError = fmt.Sprintf("syncing policy rows: %v", err)
		a.log.Error("datapath policy not updated; the previous rows stay", "error", err)
		return
	}
	a.pol.status.DatapathError = ""
	a.pol.syncedPorts = ports
	a.log.Info("datapath policy synced", "rows", len(p.Entries), "enforced", len(p.Enforce))
}

func (a *Agent) setDatapathError(gen uint64, err error) {
	defer a.events.notify()
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	if a.pol.gen == gen {
		a.pol.status.DatapathError = err.Error()
	}
	a.log.Error("datapath not updated; the previous tables stay", "error", err)
}

func redirectPorts(p model.Policy) map[uint16]bool {
	out := map[uint16]bool{}
	for _, e := range p.Entries {
		if e.Verdict == model.Redirect {
			out[e.ProxyPort] = true
		}
	}
	return out
}

func dedupInts(xs []int) []int {
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// policyStatus returns a copy of the policy status, with what the
// datapath and the proxies make of it applied to every policy: while its
// rows wait for the proxies or the datapath refused them, an accepted
// policy is Pending; when a proxy rejected the publication, a policy whose
// traffic goes through the proxy is Rejected (its redirected flows are
// dropped). A policy of the ingress endpoint is enforced by the proxy's
// Gateway and Ingress listeners, not by rows: it is Pending until every
// connected proxy acknowledged the publication, and Rejected while one
// refuses it (the proxy keeps its previous listeners).
func (a *Agent) policyStatus(proxies []dataplane.Proxy) *api.PolicyStatus {
	if a.cfg.Policy == nil {
		return nil
	}
	a.pol.mu.Lock()
	st := a.pol.status
	versions, since, redirects := a.pol.versions, a.pol.publishedAt, a.pol.redirects
	a.pol.mu.Unlock()
	st.Policies = append([]policy.PolicyStatus(nil), st.Policies...)
	view := proxyView(proxies, versions, since)
	authErr := ""
	for _, p := range st.Policies {
		if p.Authenticated {
			authErr = a.authError()
			break
		}
	}
	if redirects && view.rejected != "" {
		st.ProxyError = view.rejected
	}
	// A policy of the ingress endpoint is in force once every connected
	// proxy runs the listeners of its compilation; with no proxy
	// connected there is no listener that could serve without it.
	ingressWaiting := false
	for _, pr := range proxies {
		ingressWaiting = ingressWaiting || (pr.Connected && !pr.AckedAll(versions))
	}
	st.IngressEndpoint = proxiedIngressEndpoint(st.IngressEndpoint, view.rejected, ingressWaiting)
	for i := range st.Policies {
		p := &st.Policies[i]
		accepted := p.State == policy.Enforced || p.State == policy.Pending
		switch {
		case st.ProxyError != "" && p.Proxied && p.State != policy.Rejected:
			p.State = policy.Rejected
			p.Reason, p.Message = policy.ReasonProxyRejected, "the traffic it redirects to the proxy is dropped until a proxy accepts a configuration"
			if p.Error != "" {
				p.Error += "; "
			}
			p.Error += st.ProxyError
		case view.rejected != "" && p.Ingress && p.State != policy.Rejected:
			// The proxy keeps the listeners it had, with the ingress
			// endpoint's previous policy, which may admit more.
			p.State = policy.Rejected
			p.Reason, p.Message = policy.ReasonProxyRejected, "a proxy refused the Gateway and Ingress listeners that enforce it on the ingress endpoint and keeps its previous ones"
			if p.Error != "" {
				p.Error += "; "
			}
			p.Error += view.rejected
		case accepted && st.DatapathError != "":
			p.State = policy.Pending
			p.Reason, p.Message = policy.ReasonDatapathError, "the datapath refused the rows, the previous ones are in force: "+st.DatapathError
		case accepted && st.DatapathPending:
			p.State = policy.Pending
			p.Reason, p.Message = policy.ReasonWaitingForProxies, "the rows wait for the node's proxies to acknowledge the listeners they redirect to; the previous rows are in force"
		case accepted && p.Ingress && ingressWaiting:
			p.State = policy.Pending
			p.Reason, p.Message = policy.ReasonWaitingForProxies, "the node's proxies have not acknowledged the Gateway and Ingress listeners that enforce it on the ingress endpoint; their previous ones are in force"
		case p.State == policy.Enforced && p.Authenticated && authErr != "":
			p.State = policy.Pending
			p.Reason, p.Message = policy.ReasonWaitingForAuthentication, "the identity source is not ready ("+authErr+"); the flows that need authentication stay blocked"
		}
	}
	return &st
}

// WaitDatapath blocks until the datapath holds the rows of the last Apply
// (no sync pending) or ctx ends. For tests and tools. It waits for the
// agent's change events, never polls.
func (a *Agent) WaitDatapath(ctx context.Context) error {
	for {
		changed := a.events.wait()
		a.pol.mu.Lock()
		pending := a.pol.status.DatapathPending
		errText := a.pol.status.DatapathError
		a.pol.mu.Unlock()
		if errText != "" {
			return fmt.Errorf("%s", errText)
		}
		if !pending {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
