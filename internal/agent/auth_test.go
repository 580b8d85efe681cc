package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/manager"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// pairSink records what the agent hands the auth manager.
type pairSink struct {
	mu    sync.Mutex
	pairs []manager.Pair
	calls int
}

func (p *pairSink) SetPairs(ps []manager.Pair) {
	p.mu.Lock()
	p.pairs, p.calls = ps, p.calls+1
	p.mu.Unlock()
}

func (p *pairSink) get() []manager.Pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pairs
}

// Two nodes: api on node-1 (this agent's), web on node-1 and node-2, and a
// batch job on node-2 that policy does not allow.
const authPods = `
apiVersion: v1
kind: Pod
metadata: {name: api, labels: {app: api}}
spec: {nodeName: node-1}
status: {podIP: 10.244.1.10, hostIP: 10.250.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec: {nodeName: node-1}
status: {podIP: 10.244.1.20, hostIP: 10.250.0.11}
---
apiVersion: v1
kind: Pod
metadata: {name: web-2, labels: {app: web}}
spec: {nodeName: node-2}
status: {podIP: 10.244.2.20, hostIP: 10.250.0.12}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, labels: {app: batch}}
spec: {nodeName: node-2}
status: {podIP: 10.244.2.30, hostIP: 10.250.0.12}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    authentication: {mode: required}
`

func newAuthAgent(t *testing.T, dp *tables, au *Auth) *Agent {
	t.Helper()
	c, err := policy.New(policy.Options{NodeName: "node-1", Authentication: true,
		Listeners: policy.Listeners{IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104}, UpstreamMark: 0xA00})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Publisher: &recorder{}, Policy: c, Datapath: dp, Auth: au,
		Interfaces: ifaces{netip.MustParseAddr("10.244.1.10"): 7, netip.MustParseAddr("10.244.1.20"): 8}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthPairsFromPolicy: the agent hands the auth manager exactly the
// relations the auth-required rows need — the local subject with every
// endpoint of the allowed identity, on its own node (this node: 0, dialled
// at this node's address; node-2: its own number, dialled at the Pods'
// host IP) — numbers remote Pods' nodes in the ipcache the same way, and
// withdraws the relations when the Pods go.
func TestAuthPairsFromPolicy(t *testing.T) {
	sink := &pairSink{}
	dp := &tables{}
	self := netip.MustParseAddr("10.250.0.11")
	a := newAuthAgent(t, dp, &Auth{Pairs: sink, NodeIP: self, Port: 4250})
	if err := a.Apply(context.Background(), snapshotOf(t, authPods), nil); err != nil {
		t.Fatal(err)
	}
	st := a.Status().Policy
	ids := map[string]model.Identity{}
	for _, id := range a.cfg.Policy.Compile(policy.FromSnapshot(snapshotOf(t, authPods), nil)).Identities.Endpoints {
		ids[id.Pod.Name] = id.Identity
	}
	apiID, webID := ids["api"], ids["web-1"]
	if apiID == 0 || webID == 0 || ids["web-2"] != webID {
		t.Fatalf("identities %v", ids)
	}
	dp.mu.Lock()
	cache := dp.ipcache
	dp.mu.Unlock()
	nodeOf := map[netip.Addr]uint16{}
	for _, e := range cache {
		nodeOf[e.Prefix.Addr()] = e.Node
	}
	node2 := nodeOf[netip.MustParseAddr("10.244.2.20")]
	if node2 == 0 || nodeOf[netip.MustParseAddr("10.244.2.30")] != node2 || nodeOf[netip.MustParseAddr("10.244.1.20")] != 0 {
		t.Fatalf("ipcache node ids %v", nodeOf)
	}
	want := []manager.Pair{
		{Key: manager.Key{Local: 0, Remote: 0, RemoteNode: 0}, Node: netip.AddrPortFrom(self, 4250)},
		{Key: manager.Key{Local: 0, Remote: 0, RemoteNode: node2}, Node: netip.MustParseAddrPort("10.250.0.12:4250")},
	}
	for i := range want {
		want[i].Local, want[i].Remote = authID(apiID), authID(webID)
	}
	if diff := cmp.Diff(want, sink.get(), addrPortEq); diff != "" {
		t.Fatalf("pairs (-want +got):\n%s", diff)
	}
	if id, ok := a.LocalIdentityOf(netip.MustParseAddr("10.244.1.10")); !ok || id != apiID {
		t.Fatalf("identity of api's address: %v %v", id, ok)
	}
	if _, ok := a.LocalIdentityOf(netip.MustParseAddr("10.244.2.20")); ok {
		t.Fatal("a remote Pod's address attests as local")
	}
	if !a.HostsIdentity(apiID) || !a.HostsIdentity(webID) || a.HostsIdentity(ids["batch"]) {
		t.Fatalf("local identities: api %v web %v batch %v", a.HostsIdentity(apiID), a.HostsIdentity(webID), a.HostsIdentity(ids["batch"]))
	}
	if p := st.Policies[0]; p.State != policy.Enforced || !p.Authenticated {
		t.Fatalf("policy status with a ready source: %+v", p)
	}

	// web-2 and batch leave (node-2 has no Pods): its relation goes, and
	// so does its number.
	var kept []string
	for _, doc := range strings.Split(authPods, "---") {
		if !strings.Contains(doc, "node-2") {
			kept = append(kept, doc)
		}
	}
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Join(kept, "---")), nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:1], sink.get(), addrPortEq); diff != "" {
		t.Fatalf("pairs after node-2's Pods left (-want +got):\n%s", diff)
	}
}

func authID(id model.Identity) auth.Identity { return auth.Identity(id) }

// TestAuthNotReadyIsPending: while the identity source is not ready a
// policy needing authentication is Pending with the source's reason, and
// becomes Enforced when it is, without a new Apply.
func TestAuthNotReadyIsPending(t *testing.T) {
	var mu sync.Mutex
	ready := errors.New("no SVIDs yet: the SPIRE agent is not reachable")
	au := &Auth{Pairs: &pairSink{}, NodeIP: netip.MustParseAddr("10.250.0.11"), Port: 4250, Source: "spire",
		Ready: func() error { mu.Lock(); defer mu.Unlock(); return ready }}
	a := newAuthAgent(t, &tables{}, au)
	if err := a.Apply(context.Background(), snapshotOf(t, authPods), nil); err != nil {
		t.Fatal(err)
	}
	p := a.Status().Policy.Policies[0]
	if p.State != policy.Pending || p.Reason != policy.ReasonWaitingForAuthentication || !strings.Contains(p.Message, "SPIRE agent is not reachable") {
		t.Fatalf("policy status with a source that is not ready: %+v", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		mu.Lock()
		ready = nil
		mu.Unlock()
		a.AuthChanged()
	}()
	if _, err := a.WaitStatus(ctx, func(s *api.Status) bool { return s.Policy.Policies[0].State == policy.Enforced }); err != nil {
		t.Fatal(err)
	}

	// /v1/auth says the same, with the pair count.
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/auth")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got api.AuthStatus
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Ready || got.Source != "spire" || got.Pairs != 2 {
		t.Fatalf("/v1/auth: %+v", got)
	}
}

// TestAuthMapAdapter: the manager's keys reach the datapath with the
// SPIFFE auth type, and its listing leaves other types alone.
func TestAuthMapAdapter(t *testing.T) {
	tab := authTable{}
	other := model.AuthKey{Local: 9, Remote: 10, Type: model.AuthType(2)}
	tab[other] = time.Now().Add(time.Hour)
	m := AuthMap(tab)
	k := manager.Key{Local: 300, Remote: 301, RemoteNode: 2}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := m.Upsert(k, exp); err != nil {
		t.Fatal(err)
	}
	if got := tab[model.AuthKey{Local: 300, Remote: 301, RemoteNode: 2, Type: model.AuthSPIFFE}]; !got.Equal(exp) {
		t.Fatalf("table %v", tab)
	}
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]manager.Entry{{Key: k, Expiry: exp}}, list); diff != "" {
		t.Fatalf("listing (-want +got):\n%s", diff)
	}
	if err := m.Delete(k); err != nil {
		t.Fatal(err)
	}
	if len(tab) != 1 {
		t.Fatalf("table after delete %v", tab)
	}
	if _, ok := ManagerKey(other); ok {
		t.Fatal("a key of another auth type maps to a manager key")
	}
}

type authTable map[model.AuthKey]time.Time

func (t authTable) UpsertAuth(k model.AuthKey, e time.Time) error { t[k] = e; return nil }
func (t authTable) DeleteAuth(k model.AuthKey) error              { delete(t, k); return nil }
func (t authTable) ListAuth() (map[model.AuthKey]time.Time, error) {
	out := map[model.AuthKey]time.Time{}
	for k, v := range t {
		out[k] = v
	}
	return out, nil
}

var addrPortEq = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

// TestNodeIDsNotReused: node numbers are sticky while a node has Pods, and
// a node that comes after one left does not inherit its number (an entry
// proven for the old node must not vouch for the new one).
func TestNodeIDsNotReused(t *testing.T) {
	ep := func(node string) *identity.Endpoint { return &identity.Endpoint{Node: node} }
	res := func(eps ...*identity.Endpoint) *policy.Result {
		return &policy.Result{Identities: &identity.State{Endpoints: eps}}
	}
	var n nodeIDs
	a, b := ep("node-a"), ep("node-b")
	first := n.assign(res(a, b))
	if first[a] == 0 || first[b] == 0 || first[a] == first[b] {
		t.Fatalf("numbers %v", first)
	}
	again := n.assign(res(ep("node-a"), ep("node-b")))
	for e, id := range again {
		if want := map[string]uint16{"node-a": first[a], "node-b": first[b]}[e.Node]; id != want {
			t.Fatalf("%s renumbered %d -> %d", e.Node, want, id)
		}
	}
	c := ep("node-c")
	got := n.assign(res(ep("node-b"), c))
	if got[c] == first[a] || got[c] == first[b] || got[c] == 0 {
		t.Fatalf("node-c got %d after node-a (%d) left", got[c], first[a])
	}
}

// TestRemotePodWithoutNodeIsNeverThisNode: a remote Pod whose node is not
// known must not take node 0 (this node), which would let its
// auth-required flows pass on a local Pod's entry of the same identity.
func TestRemotePodWithoutNodeIsNeverThisNode(t *testing.T) {
	local, remote := &identity.Endpoint{Node: "node-a"}, &identity.Endpoint{}
	var n nodeIDs
	got := n.assign(&policy.Result{Identities: &identity.State{Endpoints: []*identity.Endpoint{local, remote}}, Local: []*identity.Endpoint{local}})
	if got[local] != 0 {
		t.Fatalf("local endpoint got node %d, want 0", got[local])
	}
	if got[remote] != unnumberedNode {
		t.Fatalf("remote endpoint with no node got %d, want the unnumbered node %d", got[remote], unnumberedNode)
	}
}
