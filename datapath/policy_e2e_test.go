package datapath_test

import (
	"context"
	"maps"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	nmbpf "github.com/nodemesh/nodemesh/bpf"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
)

func ingressOnly(id model.Identity) map[model.Identity]model.Enforcement {
	return map[model.Identity]model.Enforcement{id: model.EnforceIngress}
}

func allowIn(subject, remote model.Identity, port uint16) model.PolicyEntry {
	return model.PolicyEntry{Subject: subject, Remote: remote, Direction: model.Ingress, Proto: model.ProtoTCP, Port: port, Verdict: model.Allow}
}

func TestAllowedTrafficPassesAndDeniedTrafficIsDroppedAndCounted(t *testing.T) {
	n := newNode(t, 3, false)
	n.policy(enforce(ingressOnly(ident(1)),
		allowIn(ident(1), ident(0), appPort),
		model.PolicyEntry{Subject: ident(1), Remote: ident(0), Direction: model.Ingress, Proto: model.ProtoTCP, Port: denyPort, Verdict: model.Deny, Cookie: 99},
	))
	events, err := n.dp.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	for i, to := range n.addrs(1, appPort) {
		fam := []string{"ipv4", "ipv6"}[i]
		t.Run(fam, func(t *testing.T) {
			c := mustConnect(t, n.w(0).Namespace, to)
			if want := []netip.Addr{n.w(0).IPv4, n.w(0).IPv6}[i]; c.Peer.Addr() != want {
				t.Fatalf("server saw the client as %v, want %v", c.Peer, want)
			}

			before := n.counter(model.DropPolicy, model.Ingress)
			mustNotConnect(t, n.w(2).Namespace, to)
			if after := n.counter(model.DropPolicy, model.Ingress); after <= before {
				t.Fatalf("policy-denied ingress counter %d -> %d, want it to grow", before, after)
			}
			e := waitEvent(t, events, func(e datapath.Event) bool {
				return e.Type == datapath.EventDrop && e.Destination == to && e.Reason == model.DropPolicy
			})
			if e.Direction != model.Ingress || e.LocalIdentity != ident(1) || e.RemoteIdentity != ident(2) || e.Endpoint != 2 || e.Proto != model.ProtoTCP {
				t.Fatalf("drop event %+v", e)
			}

			mustNotConnect(t, n.w(0).Namespace, netip.AddrPortFrom(to.Addr(), otherPort))

			beforeDeny := n.counter(model.DropPolicyDeny, model.Ingress)
			mustNotConnect(t, n.w(0).Namespace, netip.AddrPortFrom(to.Addr(), denyPort))
			if n.counter(model.DropPolicyDeny, model.Ingress) <= beforeDeny {
				t.Fatal("explicit deny was not counted as policy-deny-rule")
			}
			e = waitEvent(t, events, func(e datapath.Event) bool {
				return e.Reason == model.DropPolicyDeny && e.Destination.Port() == denyPort
			})
			if e.Cookie != 99 {
				t.Fatalf("deny event cookie %d, want the row's 99", e.Cookie)
			}
			if n.counter(model.ReasonForwarded, model.Egress) == 0 {
				t.Fatal("allowed traffic was not counted")
			}
		})
	}
}

func TestRemovingPolicyRestoresDefaultAllow(t *testing.T) {
	n := newNode(t, 3, false)
	to := n.addrs(1, appPort)
	n.policy(enforce(ingressOnly(ident(1)), allowIn(ident(1), ident(0), appPort)))
	for _, a := range to {
		mustNotConnect(t, n.w(2).Namespace, a)
	}
	n.policy(model.Policy{})
	for _, a := range to {
		mustConnect(t, n.w(2).Namespace, a)
	}
	got, err := n.dp.Policy()
	if err != nil || len(got.Entries) != 0 || len(got.Enforce) != 0 {
		t.Fatalf("kernel still holds %+v (%v)", got, err)
	}
}

func TestEstablishedConnectionsAndRepliesSurvivePolicy(t *testing.T) {
	n := newNode(t, 2, false)
	c := mustConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
	// Enforce both directions of both workloads with nothing allowed:
	// new connections die, the established one (and its replies) live.
	all := map[model.Identity]model.Enforcement{ident(0): model.EnforceIngress | model.EnforceEgress, ident(1): model.EnforceIngress | model.EnforceEgress}
	n.policy(enforce(all))
	if err := c.Echo([]byte("still here"), 2*time.Second); err != nil {
		t.Fatalf("established connection broken by a policy change: %v", err)
	}
	mustNotConnect(t, n.w(0).Namespace, n.addrs(1, appPort)[0])
}

func TestHostAlwaysReachesWorkloads(t *testing.T) {
	n := newNode(t, 2, false)
	n.policy(enforce(map[model.Identity]model.Enforcement{ident(1): model.EnforceIngress | model.EnforceEgress}))
	for _, a := range n.addrs(1, appPort) {
		mustConnect(t, n.bed.Node, a)
		mustNotConnect(t, n.w(0).Namespace, a)
	}
}

func TestWorldIsJudgedAsWorld(t *testing.T) {
	n := newNode(t, 1, true)
	n.policy(enforce(ingressOnly(ident(0)), allowIn(ident(0), model.IdentityWorld, appPort)))
	for _, a := range n.addrs(0, appPort) {
		mustConnect(t, n.bed.External.Namespace, a)
		mustNotConnect(t, n.bed.External.Namespace, netip.AddrPortFrom(a.Addr(), otherPort))
	}
}

func TestAuthRequiredGatesConnections(t *testing.T) {
	n := newNode(t, 2, false)
	row := allowIn(ident(1), ident(0), appPort)
	row.Auth = model.AuthSPIFFE
	n.policy(enforce(ingressOnly(ident(1)), row))
	events, err := n.dp.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	to := n.addrs(1, appPort)[1]

	mustNotConnect(t, n.w(0).Namespace, to)
	e := waitEvent(t, events, func(e datapath.Event) bool { return e.Type == datapath.EventAuthRequired })
	want := model.AuthKey{Local: ident(1), Remote: ident(0), RemoteNode: 0, Type: model.AuthSPIFFE}
	if e.AuthKey() != want || e.Reason != model.DropAuthRequired {
		t.Fatalf("auth-required event %+v, want key %+v", e, want)
	}
	if n.counter(model.DropAuthRequired, model.Ingress) == 0 {
		t.Fatal("auth-required drop not counted")
	}

	expiry := time.Now().Add(time.Hour)
	if err := n.dp.UpsertAuth(e.AuthKey(), expiry); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, n.w(0).Namespace, to)
	// The listing gives the key back with its expiry (boot time and wall
	// clock convert both ways within a millisecond).
	listed, err := n.dp.ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := listed[want]; len(listed) != 1 || !ok || got.Sub(expiry).Abs() > time.Millisecond {
		t.Fatalf("ListAuth = %v, want %v until %v", listed, want, expiry)
	}

	if err := n.dp.UpsertAuth(e.AuthKey(), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	mustNotConnect(t, n.w(0).Namespace, to)
	if err := n.dp.SyncAuth(map[model.AuthKey]time.Time{want: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, n.w(0).Namespace, to)
	if err := n.dp.DeleteAuth(want); err != nil {
		t.Fatal(err)
	}
	mustNotConnect(t, n.w(0).Namespace, to)
}

// windowPolicies returns two policies of workload 1 that both deny
// workload 2 on appPort but differ in everything else: a denies it on
// every TCP port, b on appPort only, next to a row allowing anyone on
// appPort. Judged with some rows of each (the deny row of neither, the
// allow row of b), workload 2 would get in.
func windowPolicies() (a, b model.Policy) {
	intruder := ident(2)
	a = enforce(ingressOnly(ident(1)),
		allowIn(ident(1), ident(0), appPort),
		model.PolicyEntry{Subject: ident(1), Remote: intruder, Direction: model.Ingress, Proto: model.ProtoTCP, Verdict: model.Deny},
	)
	b = enforce(ingressOnly(ident(1)),
		model.PolicyEntry{Subject: ident(1), Remote: model.IdentityAny, Direction: model.Ingress, Proto: model.ProtoTCP, Port: appPort, Verdict: model.Allow},
		model.PolicyEntry{Subject: ident(1), Remote: intruder, Direction: model.Ingress, Proto: model.ProtoTCP, Port: appPort, Verdict: model.Deny},
		model.PolicyEntry{Subject: ident(1), Remote: ident(0), Direction: model.Ingress, Verdict: model.Allow},
	)
	return a, b
}

// A program looks the policy slot up once per packet and judges the
// packet by the table it got. An update must therefore publish a new
// table and never write one a program may still hold: a packet whose
// lookups straddle in-place writes is judged by a mix of two policies,
// and for windowPolicies that mix lets the intruder in (the flake of
// TestPolicyUpdatesNeverOpenAWindow under load). This checks the
// mechanism directly, without relying on a race to happen.
func TestPolicyUpdateNeverWritesAPublishedTable(t *testing.T) {
	n := newNode(t, 3, false)
	a, b := windowPolicies()
	n.policy(a)
	slot, err := ebpf.LoadPinnedMap(filepath.Join(n.pinDir, "maps_v1", nmbpf.WorkloadMapNmPolicy), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Close()
	published := func() (*ebpf.Map, uint32) {
		t.Helper()
		var table *ebpf.Map
		if err := slot.Lookup(uint32(0), &table); err != nil {
			t.Fatalf("looking up the published policy table: %v", err)
		}
		t.Cleanup(func() { table.Close() })
		info, err := table.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		return table, uint32(id)
	}
	rows := func(table *ebpf.Map) map[nmbpf.WorkloadPolicyKey]nmbpf.WorkloadPolicyValue {
		t.Helper()
		out := map[nmbpf.WorkloadPolicyKey]nmbpf.WorkloadPolicyValue{}
		var k nmbpf.WorkloadPolicyKey
		var v nmbpf.WorkloadPolicyValue
		it := table.Iterate()
		for it.Next(&k, &v) {
			out[k] = v
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}

	held, heldID := published()
	before := rows(held)
	if len(before) != len(a.Entries)+1 {
		t.Fatalf("table of a holds %d rows, want its %d rules and one enforcement row", len(before), len(a.Entries))
	}
	for i, p := range []model.Policy{b, a, b} {
		n.policy(p)
		if got := rows(held); !maps.Equal(got, before) {
			t.Fatalf("update %d wrote the table a program may still be judging by: %v, was %v", i, got, before)
		}
		cur, curID := published()
		if curID == heldID {
			t.Fatalf("update %d left table %d published", i, curID)
		}
		if got := rows(cur); len(got) != len(p.Entries)+1 {
			t.Fatalf("update %d published %d rows, want %d", i, len(got), len(p.Entries)+1)
		}
	}
	got, err := n.dp.Policy()
	if err != nil || len(got.Entries) != len(b.Entries) || len(got.Enforce) != 1 {
		t.Fatalf("Policy() = %+v (%v), want b", got, err)
	}
	// An unchanged policy publishes nothing.
	_, id := published()
	n.policy(b)
	if _, again := published(); again != id {
		t.Fatalf("an unchanged policy replaced table %d by %d", id, again)
	}
}

// A denied client hammers a workload while the policy is swapped back and
// forth between two policies that both deny it (but differ in everything
// else, including wildcard rows that would allow it if written in the
// wrong order). It must never get a single connection through.
func TestPolicyUpdatesNeverOpenAWindow(t *testing.T) {
	n := newNode(t, 3, false)
	a, b := windowPolicies()
	n.policy(a)

	var attempts, breaches atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, to := range append(n.addrs(1, appPort), n.addrs(1, appPort)...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				c, err := n.w(2).Dial(ctx, "tcp", to.String())
				cancel()
				attempts.Add(1)
				if err == nil {
					breaches.Add(1)
					c.Close()
				}
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	swaps := 0
	for time.Now().Before(deadline) {
		for _, p := range []model.Policy{b, a} {
			if err := n.dp.SyncPolicy(p); err != nil {
				t.Fatal(err)
			}
			swaps++
		}
	}
	close(stop)
	wg.Wait()
	if breaches.Load() != 0 {
		t.Fatalf("%d of %d connection attempts by a denied identity got through during %d policy updates", breaches.Load(), attempts.Load(), swaps)
	}
	if attempts.Load() < 20 || swaps < 20 {
		t.Fatalf("only %d attempts over %d swaps: the race was not exercised", attempts.Load(), swaps)
	}
	t.Logf("%d denied attempts during %d policy updates", attempts.Load(), swaps)
	for _, to := range n.addrs(1, appPort) {
		mustConnect(t, n.w(0).Namespace, to)
	}
}

func TestEnforcementModes(t *testing.T) {
	n := newNode(t, 2, false)
	to := n.addrs(1, appPort)[0]
	set := func(m datapath.EnforcementMode) {
		t.Helper()
		if err := n.dp.SetEnforcementMode(m); err != nil {
			t.Fatal(err)
		}
	}
	set(datapath.EnforceAlways)
	mustNotConnect(t, n.w(0).Namespace, to)
	mustConnect(t, n.bed.Node, to) // the host still reaches workloads
	n.policy(enforce(ingressOnly(ident(1))))
	set(datapath.EnforceNever)
	mustConnect(t, n.w(0).Namespace, to)
	set(datapath.EnforceDefault)
	mustNotConnect(t, n.w(0).Namespace, to)
	if err := n.dp.SetEnforcementMode(7); err == nil {
		t.Fatal("unknown enforcement mode accepted")
	}
}
