package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// Auth configures mutual authentication. With it (and a Datapath), every
// compilation hands the auth manager the relations the auth-required rows
// need, remote Pods' ipcache rows carry the id of their node, and policies
// needing authentication are Pending while the identity source is not
// ready. cmd/nodemesh-agent wires the real manager, source and handshake.
type Auth struct {
	// Pairs receives the relations to authenticate, replacing the
	// previous set (*manager.Manager). Called from Apply's goroutine;
	// must not block.
	Pairs PairSetter
	// Ready reports whether the identity source can provide SVIDs (nil:
	// ready). Called from any goroutine; must not block.
	Ready func() error
	// Source names the identity source in /v1/auth.
	Source string
	// NodeIP is this node's handshake address: relations between two
	// identities of this node are proven against the node's own server,
	// like any other. Port is the handshake port of every node.
	NodeIP netip.Addr
	Port   uint16
	// Report, when set, fills /v1/auth's entries and counters. Called
	// from the API's goroutines.
	Report func() (api.AuthStatus, error)
	// EndpointsChanged, when set, is called after every compilation
	// (the Workload API re-attests its open streams). Called from
	// Apply's goroutine; must not block.
	EndpointsChanged func()
}

// PairSetter takes the relations policy requires authenticated;
// *manager.Manager implements it.
type PairSetter interface {
	SetPairs([]manager.Pair)
}

var _ PairSetter = (*manager.Manager)(nil)

// nodeIDs numbers the other nodes for the datapath's auth key: sticky per
// node name while the node has Pods, never 0 (this node), and not reused
// at once when a node goes (a fresh number cannot meet an entry proven for
// the node that had it before).
type nodeIDs struct {
	ids  map[string]uint16
	next uint16
}

// assign numbers the nodes of res's non-local endpoints and returns the
// node id of every endpoint (0 for local ones). Endpoints of no node that
// are not local get none (they are left out of mutual authentication).
func (n *nodeIDs) assign(res *policy.Result) map[*identity.Endpoint]uint16 {
	if n.ids == nil {
		n.ids = map[string]uint16{}
	}
	local := make(map[*identity.Endpoint]bool, len(res.Local))
	for _, ep := range res.Local {
		local[ep] = true
	}
	out := make(map[*identity.Endpoint]uint16, len(res.Identities.Endpoints))
	live := map[string]bool{}
	for _, ep := range res.Identities.Endpoints {
		if local[ep] {
			out[ep] = 0
			continue
		}
		if ep.Node == "" {
			// A remote Pod on no known node: a number no entry is
			// ever written for, so its auth-required flows stay
			// blocked rather than judged as this node's (0).
			out[ep] = unnumberedNode
			continue
		}
		live[ep.Node] = true
		id, ok := n.ids[ep.Node]
		if !ok {
			if len(n.ids) >= maxNodes {
				// No number left: the node's Pods get one no entry
				// is ever written for, so their auth-required flows
				// stay blocked (never judged as this node's).
				out[ep] = unnumberedNode
				continue
			}
			id = n.alloc()
			n.ids[ep.Node] = id
		}
		out[ep] = id
	}
	for name := range n.ids {
		if !live[name] {
			delete(n.ids, name)
		}
	}
	return out
}

// maxNodes is how many other nodes can have a number: 0 is this node and
// unnumberedNode marks the Pods of nodes beyond that.
const (
	maxNodes       = 1<<16 - 2
	unnumberedNode = 1<<16 - 1
)

func (n *nodeIDs) alloc() uint16 {
	used := make(map[uint16]bool, len(n.ids))
	for _, id := range n.ids {
		used[id] = true
	}
	for {
		n.next++
		if n.next == 0 || n.next == unnumberedNode {
			n.next = 1
		}
		if !used[n.next] {
			return n.next
		}
	}
}

// authPairs lists the relations the auth-required rows of res need: each
// row's subject with every endpoint of the row's remote identity (every
// workload identity for a wildcard row), on that endpoint's node. Reserved
// identities have no SVIDs and are left out (such a row stays closed).
func authPairs(res *policy.Result, nodeOf map[*identity.Endpoint]uint16, self netip.Addr, port uint16) []manager.Pair {
	type remote struct {
		id   model.Identity
		node uint16
		addr netip.Addr
	}
	var remotes []remote
	seen := map[remote]bool{}
	for _, ep := range res.Identities.Endpoints {
		node, ok := nodeOf[ep]
		if !ok || node == unnumberedNode || ep.Identity.IsReserved() || ep.Identity == model.IdentityAny {
			continue
		}
		r := remote{id: ep.Identity, node: node, addr: self}
		if node != 0 {
			r.addr = ep.HostIP
		}
		if !r.addr.IsValid() || seen[r] {
			continue
		}
		seen[r] = true
		remotes = append(remotes, r)
	}
	want := map[manager.Key]manager.Pair{}
	for _, e := range res.Datapath.Entries {
		if e.Auth == model.AuthNone || e.Subject.IsReserved() || e.Subject == model.IdentityAny {
			continue
		}
		for _, r := range remotes {
			if e.Remote != model.IdentityAny && e.Remote != r.id {
				continue
			}
			k := manager.Key{Local: auth.Identity(e.Subject), Remote: auth.Identity(r.id), RemoteNode: r.node}
			if _, ok := want[k]; !ok {
				want[k] = manager.Pair{Key: k, Node: netip.AddrPortFrom(r.addr, port)}
			}
		}
	}
	out := make([]manager.Pair, 0, len(want))
	for _, p := range want {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Key, out[j].Key
		if a.Local != b.Local {
			return a.Local < b.Local
		}
		if a.Remote != b.Remote {
			return a.Remote < b.Remote
		}
		return a.RemoteNode < b.RemoteNode
	})
	return out
}

// authError is why policies needing authentication cannot be enforced
// now ("" when they can).
func (a *Agent) authError() string {
	if a.cfg.Auth == nil {
		return "no authentication provider runs on this node"
	}
	if a.cfg.Auth.Ready == nil {
		return ""
	}
	if err := a.cfg.Auth.Ready(); err != nil {
		return err.Error()
	}
	return ""
}

// AuthChanged tells the agent that the identity source's readiness may
// have changed, so waiters on its status look again. Safe from any
// goroutine.
func (a *Agent) AuthChanged() { a.events.notify() }

// serveAuth answers /v1/auth.
func (a *Agent) serveAuth(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.Auth == nil {
		http.Error(w, "mutual authentication is not enabled on this agent", http.StatusNotFound)
		return
	}
	st := api.AuthStatus{Source: a.cfg.Auth.Source}
	if a.cfg.Auth.Report != nil {
		var err error
		if st, err = a.cfg.Auth.Report(); err != nil {
			http.Error(w, fmt.Sprintf("reading the auth state: %v", err), http.StatusInternalServerError)
			return
		}
		st.Source = a.cfg.Auth.Source
	}
	st.Error = a.authError()
	st.Ready = st.Error == ""
	a.pol.mu.Lock()
	st.Pairs = a.pol.authPairs
	names := make(map[uint16]string, len(a.pol.nodes.ids))
	for name, id := range a.pol.nodes.ids {
		names[id] = name
	}
	a.pol.mu.Unlock()
	for i := range st.Entries {
		st.Entries[i].NodeName = names[st.Entries[i].RemoteNode]
	}
	sort.Slice(st.Entries, func(i, j int) bool {
		x, y := st.Entries[i], st.Entries[j]
		if x.Local != y.Local {
			return x.Local < y.Local
		}
		if x.Remote != y.Remote {
			return x.Remote < y.Remote
		}
		return x.RemoteNode < y.RemoteNode
	})
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// AuthTable is the datapath's auth map as the adapter needs it;
// *datapath.Datapath implements it.
type AuthTable interface {
	UpsertAuth(model.AuthKey, time.Time) error
	DeleteAuth(model.AuthKey) error
	ListAuth() (map[model.AuthKey]time.Time, error)
}

// AuthMap adapts the datapath's auth table to the auth manager: keys gain
// the SPIFFE auth type, and listings show only rows of that type (rows of
// another method are not the manager's to collect).
func AuthMap(t AuthTable) manager.Map { return authMap{t} }

type authMap struct{ t AuthTable }

func datapathKey(k manager.Key) model.AuthKey {
	return model.AuthKey{Local: model.Identity(k.Local), Remote: model.Identity(k.Remote), RemoteNode: k.RemoteNode, Type: model.AuthSPIFFE}
}

// ManagerKey is the auth manager's key for a datapath auth key (the
// auth-required event's), false for another auth type.
func ManagerKey(k model.AuthKey) (manager.Key, bool) {
	if k.Type != model.AuthSPIFFE {
		return manager.Key{}, false
	}
	return manager.Key{Local: auth.Identity(k.Local), Remote: auth.Identity(k.Remote), RemoteNode: k.RemoteNode}, true
}

func (m authMap) Upsert(k manager.Key, expiry time.Time) error {
	return m.t.UpsertAuth(datapathKey(k), expiry)
}
func (m authMap) Delete(k manager.Key) error { return m.t.DeleteAuth(datapathKey(k)) }
func (m authMap) List() ([]manager.Entry, error) {
	rows, err := m.t.ListAuth()
	if err != nil {
		return nil, err
	}
	out := make([]manager.Entry, 0, len(rows))
	for k, exp := range rows {
		if mk, ok := ManagerKey(k); ok {
			out = append(out, manager.Entry{Key: mk, Expiry: exp})
		}
	}
	return out, nil
}

// HostsIdentity reports whether an endpoint of this node has identity id
// in the latest compilation: the handshake server proves only those. Safe
// from any goroutine; never blocks for long.
func (a *Agent) HostsIdentity(id model.Identity) bool {
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	return a.pol.locals[id]
}

// LocalIdentityOf returns the identity of the local endpoint with address
// addr in the latest compilation (the Workload API attests a caller by
// the addresses of its network namespace). Safe from any goroutine.
func (a *Agent) LocalIdentityOf(addr netip.Addr) (model.Identity, bool) {
	a.pol.mu.Lock()
	defer a.pol.mu.Unlock()
	id, ok := a.pol.localAddrs[addr.Unmap()]
	return id, ok
}
