package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/datapath"
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
	SyncEndpoints([]datapath.Endpoint) error
	SyncIPCache([]datapath.IPCacheEntry) error
	SyncPolicy(datapath.Policy) error
	SyncAttachments(ifindexes []int) error
}

// InterfaceResolver finds the host-side interface of a local workload
// address (in standalone mode, by route lookup; a CNI would know it).
type InterfaceResolver interface {
	InterfaceOf(addr netip.Addr) (ifindex int, err error)
}

// PolicyStatus is the policy part of Status.
type PolicyStatus struct {
	Policies []policy.PolicyStatus `json:"policies,omitempty"`
	// Identities counts identities in use, reserved ones excluded;
	// Endpoints the local endpoints.
	Identities int `json:"identities"`
	Endpoints  int `json:"endpoints"`
	// Rows is the number of datapath policy rows desired.
	Rows int `json:"rows"`
	// DatapathPending is set while new rows wait for the proxies to
	// acknowledge the listeners they redirect to.
	DatapathPending bool `json:"datapathPending,omitempty"`
	// DatapathError is the last datapath sync failure (the previous
	// tables stay in force).
	DatapathError string `json:"datapathError,omitempty"`
	// ProxyError is a proxy's rejection of the published policy
	// configuration (the proxy keeps its previous one).
	ProxyError string   `json:"proxyError,omitempty"`
	Problems   []string `json:"problems,omitempty"`
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
	// newer one was requested meanwhile.
	gen       uint64
	endpoints map[string]uint16 // pod → endpoint id, sticky
	nextID    uint16
	status    PolicyStatus
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
// (longest prefix), world for the rest.
func resolverFor(st *identity.State) flow.Resolver {
	pods := map[netip.Addr]string{}
	for _, ep := range st.Endpoints {
		for _, ip := range ep.IPs {
			pods[ip] = ep.Pod.String()
		}
	}
	cache := append([]identity.IPCacheEntry(nil), st.IPCache...)
	sort.Slice(cache, func(i, j int) bool { return cache[i].Prefix.Bits() > cache[j].Prefix.Bits() })
	return flow.ResolverFunc(func(a netip.Addr) (uint32, string) {
		for _, e := range cache {
			if e.Prefix.Contains(a) {
				return uint32(e.Identity), pods[a]
			}
		}
		return uint32(identity.World), ""
	})
}

// syncDatapath makes the datapath match a compilation. Endpoints and the
// ipcache are written at once; policy rows too, unless they redirect to a
// listener the datapath did not redirect to before: then they wait (on
// another goroutine) until every connected proxy acknowledged versions,
// the publication that carries that listener (Cilium's ACK completions),
// or ackWait passed.
func (a *Agent) syncDatapath(res *policy.Result, versions map[string]string) {
	ps := &a.pol
	ps.mu.Lock()
	ps.gen++
	gen := ps.gen
	st := PolicyStatus{Policies: res.Policies, Endpoints: len(res.Local), Rows: len(res.Datapath.Entries), Problems: res.Identities.Problems}
	for _, id := range res.Identities.Identities {
		if !id.ID.IsReserved() {
			st.Identities++
		}
	}
	ps.status = st
	ps.mu.Unlock()
	if a.cfg.Datapath == nil {
		return
	}
	if err := a.syncTables(res); err != nil {
		a.setDatapathError(gen, err)
		return
	}
	wanted := redirectPorts(res.Datapath)
	ps.mu.Lock()
	fresh := false
	for p := range wanted {
		if !ps.syncedPorts[p] {
			fresh = true
		}
	}
	if fresh {
		ps.status.DatapathPending = true
	}
	ps.mu.Unlock()
	if !fresh {
		a.syncPolicy(gen, res.Datapath, wanted)
		return
	}
	go func() {
		a.waitForProxies(gen, versions)
		a.syncPolicy(gen, res.Datapath, wanted)
	}()
}

// syncTables writes endpoints, ipcache and attachments.
func (a *Agent) syncTables(res *policy.Result) error {
	ps := &a.pol
	var eps []datapath.Endpoint
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
		eps = append(eps, datapath.Endpoint{ID: id, Identity: datapath.Identity(ep.Identity), IfIndex: ifx, IPs: ep.IPs})
		ifindexes = append(ifindexes, ifx)
	}
	for k := range ps.endpoints {
		if !live[k] {
			delete(ps.endpoints, k)
		}
	}
	ps.mu.Unlock()
	var cache []datapath.IPCacheEntry
	for _, e := range res.Identities.IPCache {
		cache = append(cache, datapath.IPCacheEntry{Prefix: e.Prefix, Identity: datapath.Identity(e.Identity)})
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

func (a *Agent) waitForProxies(gen uint64, versions map[string]string) {
	deadline := time.Now().Add(ackWait)
	for time.Now().Before(deadline) {
		a.pol.mu.Lock()
		superseded := a.pol.gen != gen
		a.pol.mu.Unlock()
		if superseded {
			return
		}
		connected, acked := 0, true
		for _, p := range a.cfg.Publisher.Proxies() {
			if p.Connected {
				connected++
				acked = acked && p.AckedAll(versions)
			}
		}
		if connected > 0 && acked {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.log.Warn("writing redirect rows before every proxy acknowledged the policy listeners", "waited", ackWait)
}

func (a *Agent) syncPolicy(gen uint64, p datapath.Policy, ports map[uint16]bool) {
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
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	if a.pol.gen == gen {
		a.pol.status.DatapathError = err.Error()
	}
	a.log.Error("datapath not updated; the previous tables stay", "error", err)
}

func redirectPorts(p datapath.Policy) map[uint16]bool {
	out := map[uint16]bool{}
	for _, e := range p.Entries {
		if e.Verdict == datapath.Redirect {
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

// policyStatus returns a copy of the policy status, with the first
// rejection of the published versions that names a policy resource.
func (a *Agent) policyStatus(versions map[string]string, proxies []dataplane.Proxy) *PolicyStatus {
	if a.cfg.Policy == nil {
		return nil
	}
	a.pol.mu.Lock()
	st := a.pol.status
	a.pol.mu.Unlock()
	for _, p := range proxies {
		for _, ts := range p.Types {
			if p.Connected && ts.Nack != nil && ts.Nack.Version == versions[ts.Type] && strings.Contains(ts.Nack.Message, "policy/") {
				st.ProxyError = fmt.Sprintf("proxy %s rejected %s version %s: %s", p.Node, ts.Type, ts.Nack.Version, ts.Nack.Message)
				return &st
			}
		}
	}
	return &st
}

// WaitDatapath blocks until the datapath holds the rows of the last Apply
// (no sync pending) or ctx ends. For tests and tools.
func (a *Agent) WaitDatapath(ctx context.Context) error {
	for {
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
		case <-time.After(10 * time.Millisecond):
		}
	}
}
