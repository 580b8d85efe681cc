package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// tables records what the agent asks the datapath to hold; the datapath
// itself is exercised by conformance/e2e against the kernel.
type tables struct {
	mu        sync.Mutex
	calls     []string
	policy    model.Policy
	endpoints []model.Endpoint
	ipcache   []model.IPCacheEntry
}

func (d *tables) note(s string) {
	d.mu.Lock()
	d.calls = append(d.calls, s)
	d.mu.Unlock()
}
func (d *tables) SyncEndpoints(e []model.Endpoint) error {
	d.mu.Lock()
	d.endpoints = e
	d.mu.Unlock()
	d.note("endpoints")
	return nil
}
func (d *tables) SyncIPCache(c []model.IPCacheEntry) error {
	d.mu.Lock()
	d.ipcache = c
	d.mu.Unlock()
	d.note("ipcache")
	return nil
}
func (d *tables) SyncAttachments([]int) error { d.note("attach"); return nil }
func (d *tables) SyncPolicy(p model.Policy) error {
	d.mu.Lock()
	d.policy = p
	d.mu.Unlock()
	d.note("policy")
	return nil
}
func (d *tables) policyCalls() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, c := range d.calls {
		if c == "policy" {
			n++
		}
	}
	return n
}

type ifaces map[netip.Addr]int

func (m ifaces) InterfaceOf(a netip.Addr) (int, error) { return m[a], nil }

const starWars = `
apiVersion: v1
kind: Pod
metadata: {name: deathstar, labels: {org: empire, class: deathstar}}
status: {podIP: 10.0.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: tiefighter, labels: {org: empire, class: tiefighter}}
status: {podIP: 10.0.0.20}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      RULES
`

func snapshotOf(t *testing.T, docs string) *input.Snapshot {
	t.Helper()
	objs, err := input.Decode("test.yaml", []byte(docs))
	if err != nil {
		t.Fatal(err)
	}
	s, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPolicyAgent(t *testing.T, pub *recorder, dp *tables, flows *flow.Store) *Agent {
	t.Helper()
	c, err := policy.New(policy.Options{Listeners: policy.Listeners{IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104}, UpstreamMark: 0xA00})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Publisher: pub, Policy: c, Datapath: dp, Flows: flows,
		Interfaces: ifaces{netip.MustParseAddr("10.0.0.10"): 7, netip.MustParseAddr("10.0.0.20"): 8}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRedirectWaitsForProxyAck: rows that redirect to a new policy
// listener are written only after the proxy acknowledged the publication
// carrying it; endpoints and the ipcache go first.
func TestRedirectWaitsForProxyAck(t *testing.T) {
	pub := &recorder{proxies: []dataplane.Proxy{{Node: "p", Connected: true}}}
	dp := &tables{}
	a := newPolicyAgent(t, pub, dp, nil)
	l7 := strings.Replace(starWars, "RULES", `rules: {http: [{method: POST, path: /v1/request-landing}]}`, 1)
	if err := a.Apply(context.Background(), snapshotOf(t, l7), nil); err != nil {
		t.Fatal(err)
	}
	if got := pub.configs[0].Policy; got == nil || len(got.HTTP) != 1 || got.Listeners[0].Port != 15101 {
		t.Fatalf("published L7 policy: %+v", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n := dp.policyCalls(); n != 0 {
		t.Fatalf("policy rows written before the proxy acknowledged the listener (%d writes)", n)
	}
	if st := a.Status().Policy; st == nil || !st.DatapathPending || st.Endpoints != 2 || st.Rows != 2 {
		t.Fatalf("status while waiting: %+v", st)
	}
	// Not enforced yet, and the status says so.
	if ps := a.Status().Policy.Policies[0]; ps.State != policy.Pending || ps.Reason != policy.ReasonWaitingForProxies {
		t.Fatalf("policy status while waiting: %+v", ps)
	}
	pub.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.WaitDatapath(ctx); err != nil {
		t.Fatal(err)
	}
	dp.mu.Lock()
	calls := strings.Join(dp.calls, ",")
	rows := dp.policy.Entries
	eps := dp.endpoints
	dp.mu.Unlock()
	if calls != "endpoints,ipcache,attach,policy" {
		t.Errorf("datapath calls %s", calls)
	}
	if len(rows) != 2 || rows[0].Verdict != model.Redirect || len(eps) != 2 || eps[0].IfIndex != 7 {
		t.Errorf("rows %+v endpoints %+v", rows, eps)
	}
	if ps := a.Status().Policy.Policies[0]; ps.State != policy.Enforced || ps.Reason != "" {
		t.Fatalf("policy status once written: %+v", ps)
	}

	// The same listener again (a rule change): rows are written at once.
	l7b := strings.Replace(starWars, "RULES", `rules: {http: [{method: PUT}]}`, 1)
	if err := a.Apply(context.Background(), snapshotOf(t, l7b), nil); err != nil {
		t.Fatal(err)
	}
	if n := dp.policyCalls(); n != 2 {
		t.Fatalf("a rule change on a known listener must sync at once; %d policy writes", n)
	}
	// Back to L4 only: no redirect, written at once.
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", "", 1)), nil); err != nil {
		t.Fatal(err)
	}
	if n := dp.policyCalls(); n != 3 {
		t.Fatalf("%d policy writes", n)
	}
	if pub.configs[len(pub.configs)-1].Policy != nil {
		t.Error("L4-only policy still publishes an L7 policy")
	}
}

func TestFlowsEndpoint(t *testing.T) {
	store := flow.NewStore()
	a := newPolicyAgent(t, &recorder{}, &tables{}, store)
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", "", 1)), nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	store.Add(flow.Flow{Time: time.Now(), Protocol: "http", Verdict: flow.Dropped,
		Source: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.20:5000")}, Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.10:80")}})
	store.Add(flow.Flow{Time: time.Now(), Protocol: "kafka", Verdict: flow.Forwarded,
		Source: flow.Endpoint{Address: netip.MustParseAddrPort("192.0.2.1:5000")}, Destination: flow.Endpoint{Address: netip.MustParseAddrPort("10.0.0.10:80")}})

	resp, err := http.Get(srv.URL + "/v1/flows?verdict=DROPPED")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		if err != nil {
			break
		}
	}
	lines := strings.Split(strings.TrimSpace(body.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], `"verdict":"DROPPED"`) || !strings.Contains(lines[0], `"workload":"default/tiefighter"`) {
		t.Fatalf("flows: %q", body.String())
	}
	if r, _ := http.Get(srv.URL + "/v1/flows?identity=abc"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("bad identity: status %d", r.StatusCode)
	}
}

func TestFetchFlowsFollow(t *testing.T) {
	store := flow.NewStore()
	a := newPolicyAgent(t, &recorder{}, &tables{}, store)
	dir := t.TempDir()
	sock := dir + "/agent.sock"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.ServeAPI(ctx, sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API socket never accepted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	store.Add(flow.Flow{Protocol: "http", Verdict: flow.Forwarded})
	got := make(chan flow.Flow, 8)
	go func() {
		_ = api.FetchFlows(ctx, sock, api.FlowQuery{Filter: flow.Filter{Protocol: "kafka"}, Follow: true}, func(f flow.Flow) error {
			got <- f
			return nil
		})
	}()
	deadline = time.Now().Add(5 * time.Second)
	for {
		store.Add(flow.Flow{Protocol: "kafka", Verdict: flow.Dropped, Kafka: &flow.Kafka{APIKeyName: "Produce"}})
		select {
		case f := <-got:
			if f.Protocol != "kafka" || f.Kafka.APIKeyName != "Produce" {
				t.Fatalf("followed flow %+v", f)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no followed flow within 5s")
		}
	}
}

func TestPolicyNackReachesPolicyStatus(t *testing.T) {
	pub := &recorder{}
	a := newPolicyAgent(t, pub, &tables{}, nil)
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", `rules: {http: [{}]}`, 1)), nil); err != nil {
		t.Fatal(err)
	}
	pub.setProxies([]dataplane.Proxy{{Node: "p", Connected: true, Types: []dataplane.TypeState{{Type: "Listener",
		Nack: &dataplane.Nack{Version: "v1", Message: `listener "policy/ingress/http": transparent: not permitted`}}}}})
	st := a.Status()
	if !strings.Contains(st.Policy.ProxyError, `proxy p rejected Listener version v1: listener "policy/ingress/http"`) {
		t.Fatalf("policy status: %+v", st.Policy)
	}
}

// ecdsRecorder publishes like recorder and also reports a version of
// the filter configurations (ECDS) whenever L7 policy is published.
type ecdsRecorder struct{ *recorder }

func (r ecdsRecorder) Publish(ctx context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	pub, err := r.recorder.Publish(ctx, cfg)
	if err == nil && cfg.Policy != nil {
		pub.Versions["TypedExtensionConfig"] = "e" + pub.Versions["Listener"][1:]
	}
	return pub, err
}

// setProxy replaces the one proxy's view of the publication.
func (r *recorder) setProxy(types ...dataplane.TypeState) {
	r.setProxies([]dataplane.Proxy{{Node: "p", Connected: true, Types: types}})
}

func (d *tables) rows() []model.PolicyEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.policy.Entries
}

// TestProxyRejectionDropsRedirects: when a proxy rejects the L7 policy
// configuration it keeps running its previous one, which may allow more;
// so the agent turns the rows that redirect to the proxy into drops, and
// the policies behind them are reported Rejected, until a configuration
// is accepted again.
func TestProxyRejectionDropsRedirects(t *testing.T) {
	rec := &recorder{}
	dp := &tables{}
	a := newPolicyAgent(t, rec, dp, nil)
	a.cfg.Publisher = ecdsRecorder{rec}
	rec.setProxy()
	apply := func(rules string) {
		t.Helper()
		if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", rules, 1)), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitRows := func(what string, verdict model.Verdict) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			rows := dp.rows()
			if len(rows) == 2 && rows[0].Verdict == verdict && rows[1].Verdict == verdict {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: rows %+v, want every row %s", what, rows, verdict)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	apply(`rules: {http: [{method: POST, path: /v1/request-landing}]}`)
	rec.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v1"}, dataplane.TypeState{Type: "TypedExtensionConfig", Acked: "e1"})
	waitRows("accepted", model.Redirect)

	// A rule change the proxy rejects: it still runs the old rules.
	apply(`rules: {http: [{method: GET, path: /v1/status}]}`)
	rec.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v2"}, dataplane.TypeState{Type: "TypedExtensionConfig", Acked: "e1",
		Nack: &dataplane.Nack{Version: "e2", Message: `extension config "policy/ingress/http/rbac": typed_config(RBAC).rules.policies: bad`, Time: time.Now()}})
	waitRows("rejected", model.Deny)
	st := a.Status().Policy
	ps := st.Policies[0]
	if ps.State != policy.Rejected || ps.Reason != policy.ReasonProxyRejected || !strings.Contains(ps.Error, "proxy p rejected TypedExtensionConfig version e2") ||
		!strings.Contains(ps.Error, "typed_config(RBAC).rules.policies") || !strings.Contains(st.ProxyError, "policy/ingress/http/rbac") {
		t.Fatalf("policy status after the rejection: %+v (proxy error %q)", ps, st.ProxyError)
	}

	// A configuration the proxy accepts restores the redirects.
	apply(`rules: {http: [{method: GET}]}`)
	rec.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v3"}, dataplane.TypeState{Type: "TypedExtensionConfig", Acked: "e3"})
	waitRows("accepted again", model.Redirect)
	if ps := a.Status().Policy.Policies[0]; ps.State != policy.Enforced {
		t.Fatalf("policy status after recovery: %+v", ps)
	}
}

// TestProxyRejectionBeforeRowsAreWritten: rows waiting for a new
// listener are not written as redirects when the proxy rejects the
// publication; the closed table goes in at once instead of after ackWait.
func TestProxyRejectionBeforeRowsAreWritten(t *testing.T) {
	rec := &recorder{}
	dp := &tables{}
	a := newPolicyAgent(t, rec, dp, nil)
	rec.setProxy()
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", `rules: {http: [{}]}`, 1)), nil); err != nil {
		t.Fatal(err)
	}
	rec.setProxy(dataplane.TypeState{Type: "Listener", Nack: &dataplane.Nack{Version: "v1", Message: `listener "policy/ingress/http": bad`, Time: time.Now()}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		rows := dp.rows()
		if len(rows) == 2 {
			for _, r := range rows {
				if r.Verdict != model.Deny {
					t.Fatalf("row %+v written while the proxy rejected its listener", r)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rows written after the rejection: %+v", rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProxyAnswersAreAwaitedNotPolled: while redirect rows wait for the
// proxies, the agent asks the publisher again only when it signals a
// change (an answer), and writes the rows as soon as the acknowledgement
// arrives.
func TestProxyAnswersAreAwaitedNotPolled(t *testing.T) {
	rec := &recorder{}
	dp := &tables{}
	a := newPolicyAgent(t, rec, dp, nil)
	rec.setProxy()
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", `rules: {http: [{}]}`, 1)), nil); err != nil {
		t.Fatal(err)
	}
	if st := a.Status().Policy; !st.DatapathPending {
		t.Fatalf("rows not waiting for the proxy: %+v", st)
	}
	before := rec.askedTimes()
	time.Sleep(300 * time.Millisecond) // nothing happens meanwhile
	// The waiter's first look may fall into the window; polling (every
	// 20 ms, as the agent once did) would ask a dozen times more.
	if n := rec.askedTimes() - before; n > 1 {
		t.Fatalf("the agent asked the publisher %d times in 300ms without a change", n)
	}
	rec.setProxy(dataplane.TypeState{Type: "Listener", Acked: "v1"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.WaitDatapath(ctx); err != nil {
		t.Fatal(err)
	}
	if rows := dp.rows(); len(rows) != 2 || rows[0].Verdict != model.Redirect {
		t.Fatalf("rows after the acknowledgement: %+v", rows)
	}
	t.Logf("rows written %v after the acknowledgement", time.Since(start))
}

// failingTables refuses every policy table.
type failingTables struct{ tables }

func (f *failingTables) SyncPolicy(model.Policy) error { return errors.New("map full") }

func TestDatapathErrorIsNotEnforced(t *testing.T) {
	c, err := policy.New(policy.Options{Listeners: policy.Listeners{IngressHTTP: 15101, EgressHTTP: 15102, IngressKafka: 15103, EgressKafka: 15104}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Publisher: &recorder{}, Policy: c, Datapath: &failingTables{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), snapshotOf(t, strings.Replace(starWars, "RULES", "", 1)), nil); err != nil {
		t.Fatal(err)
	}
	ps := a.Status().Policy.Policies[0]
	if ps.State != policy.Pending || ps.Reason != policy.ReasonDatapathError || !strings.Contains(ps.Message, "map full") {
		t.Fatalf("policy status: %+v", ps)
	}
}
