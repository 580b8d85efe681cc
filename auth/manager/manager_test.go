package manager

import (
	"context"
	"crypto/x509"
	"maps"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/handshake"
	"github.com/nodemesh/nodemesh/auth/issuer"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// memMap is the auth map in memory (the real one is a BPF map behind an
// adapter the composition root provides). Every change wakes waiters.
type memMap struct {
	mu      sync.Mutex
	m       map[Key]time.Time
	changed chan struct{}
}

func newMemMap() *memMap { return &memMap{m: map[Key]time.Time{}, changed: make(chan struct{}, 1)} }

func (mm *memMap) Upsert(k Key, exp time.Time) error {
	mm.mu.Lock()
	mm.m[k] = exp
	mm.mu.Unlock()
	mm.notify()
	return nil
}

func (mm *memMap) Delete(k Key) error {
	mm.mu.Lock()
	delete(mm.m, k)
	mm.mu.Unlock()
	mm.notify()
	return nil
}

func (mm *memMap) List() ([]Entry, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	var out []Entry
	for k, e := range mm.m {
		out = append(out, Entry{Key: k, Expiry: e})
	}
	return out, nil
}

func (mm *memMap) notify() {
	select {
	case mm.changed <- struct{}{}:
	default:
	}
}

func (mm *memMap) snapshot() map[Key]time.Time {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	return maps.Clone(mm.m)
}

// waitFor waits for the map to satisfy cond, waking on every change.
func (mm *memMap) waitFor(t *testing.T, timeout time.Duration, what string, cond func(map[Key]time.Time) bool) map[Key]time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s := mm.snapshot()
		if cond(s) {
			return s
		}
		select {
		case <-mm.changed:
		case <-deadline:
			t.Fatalf("waiting %s for %s; map: %v", timeout, what, s)
		}
	}
}

type localSet map[auth.Identity]bool

func (s localSet) IsLocal(id auth.Identity) bool { return s[id] }

// node is one agent: issuer, handshake server on its own loopback address,
// handshake client, auth manager over an in-memory map.
type node struct {
	id   uint16
	iss  *issuer.Issuer
	srv  *handshake.Server
	cli  *handshake.Client
	addr netip.AddrPort
	mm   *memMap
	mgr  *Manager
}

func newNode(t *testing.T, ip string, id uint16, svidTTL time.Duration, hosted []auth.Identity, opts ...Option) *node {
	t.Helper()
	iss, err := issuer.New(td, t.TempDir(), issuer.WithSVIDTTL(svidTTL), issuer.WithCATTL(max(time.Hour, 4*svidTTL)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go iss.Run(ctx)
	locals := localSet{}
	for _, h := range hosted {
		locals[h] = true
	}
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{id: id, iss: iss, addr: netip.MustParseAddrPort(l.Addr().String()), mm: newMemMap()}
	n.srv = handshake.NewServer(iss, locals, handshake.WithTimeout(3*time.Second))
	go n.srv.Serve(l)
	t.Cleanup(func() { n.srv.Close() })
	n.cli = handshake.NewClient(iss, handshake.WithTimeout(3*time.Second))
	n.mgr = New(n.mm, iss, n.cli, opts...)
	done := make(chan struct{})
	go func() { n.mgr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// trust makes every node trust every other node's authorities (what the
// composition root does from the nodes' published authorities).
func trust(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, a := range nodes {
		var peers []*x509.Certificate
		for _, b := range nodes {
			if b != a {
				peers = append(peers, b.iss.Authorities()...)
			}
		}
		if err := a.iss.SetPeerAuthorities(peers); err != nil {
			t.Fatal(err)
		}
	}
}

func pair(local, remote auth.Identity, to *node) Pair {
	return Pair{Key: Key{Local: local, Remote: remote, RemoteNode: to.id}, Node: to.addr}
}

func validAll(keys ...Key) func(map[Key]time.Time) bool {
	return func(m map[Key]time.Time) bool {
		now := time.Now()
		for _, k := range keys {
			if e, ok := m[k]; !ok || !e.After(now) {
				return false
			}
		}
		return true
	}
}

// TestManagerEagerAndRenewal: pairs are authenticated before any traffic
// asks, with expiry = the earlier SVID NotAfter, and stay valid across
// several SVID lifetimes: renewed before expiry and after rotation.
func TestManagerEagerAndRenewal(t *testing.T) {
	// Short enough to watch several lifetimes, long enough that a
	// renewal (due a sixth of a lifetime before expiry at the latest,
	// less up to a second of NotAfter's truncation) fits in the margin
	// on a loaded machine.
	const ttl = 12 * time.Second
	// A renewal that fails once (a loaded machine resets a connection
	// now and then) is retried well inside that margin.
	a := newNode(t, "127.0.0.1", 1, ttl, []auth.Identity{10, 11}, WithBackoff(100*time.Millisecond, 400*time.Millisecond))
	b := newNode(t, "127.0.0.2", 2, ttl, []auth.Identity{20, 21})
	trust(t, a, b)
	k1, k2 := Key{10, 20, 2}, Key{11, 21, 2}
	a.mgr.SetPairs([]Pair{pair(10, 20, b), pair(11, 21, b)})
	first := a.mm.waitFor(t, 10*time.Second, "both pairs authenticated", validAll(k1, k2))
	for k, exp := range first {
		if exp.After(time.Now().Add(ttl)) {
			t.Errorf("%v expires at %s, beyond an SVID lifetime", k, exp)
		}
	}
	// Watch two lifetimes: on every change and every 100ms both
	// entries must be present and unexpired.
	end := time.Now().Add(2 * ttl)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		if s := a.mm.snapshot(); !validAll(k1, k2)(s) {
			t.Fatalf("an entry lapsed at %s: %v", time.Now(), s)
		}
		select {
		case <-a.mm.changed:
		case <-tick.C:
		}
	}
	last := a.mm.snapshot()
	for _, k := range []Key{k1, k2} {
		if !last[k].After(first[k]) {
			t.Errorf("%v was never renewed (expiry %s → %s)", k, first[k], last[k])
		}
	}
	st := a.mgr.Stats()
	if st[CountAuthenticated] < 6 {
		t.Errorf("authenticated %d times over two lifetimes, want ≥ 6 (%v)", st[CountAuthenticated], st)
	}
	if st[CountRotations] == 0 {
		t.Errorf("no re-authentication after an SVID rotation (%v)", st)
	}
	if got := b.srv.Stats()[handshake.ReasonOK]; got < st[CountAuthenticated] {
		t.Errorf("server answered %d handshakes, manager counted %d", got, st[CountAuthenticated])
	}
}

// TestManagerFollowsPairs: removing a pair deletes its entry, on-demand
// requests authenticate pairs policy has not named yet, SetPairs is
// authoritative, and a lost entry is restored.
func TestManagerFollowsPairs(t *testing.T) {
	a := newNode(t, "127.0.0.1", 1, time.Hour, []auth.Identity{10, 11})
	b := newNode(t, "127.0.0.2", 2, time.Hour, []auth.Identity{20, 21})
	trust(t, a, b)
	k1, k2 := Key{10, 20, 2}, Key{11, 21, 2}
	a.mgr.SetPairs([]Pair{pair(10, 20, b), pair(11, 21, b)})
	before := a.mm.waitFor(t, 10*time.Second, "both pairs", validAll(k1, k2))

	a.mgr.SetPairs([]Pair{pair(10, 20, b)})
	after := a.mm.waitFor(t, 10*time.Second, "the removed pair's entry deleted", func(m map[Key]time.Time) bool {
		_, ok := m[k2]
		return !ok
	})
	if !after[k1].Equal(before[k1]) {
		t.Error("the remaining pair was touched")
	}

	// Unknown node first, then a real one: FIFO, so when the second
	// is written the first has been handled.
	a.mgr.Request(Key{10, 20, 9})
	onDemand := Key{10, 21, 2}
	a.mgr.Request(onDemand)
	a.mm.waitFor(t, 10*time.Second, "the on-demand pair", validAll(k1, onDemand))
	if got := a.mgr.Stats()[CountUnknownNode]; got != 1 {
		t.Errorf("unknown_node %d, want 1", got)
	}

	// The peer node does not host 29: refused, nothing written.
	a.mgr.Request(Key{10, 29, 2})
	eventually(t, "the refused handshake", func() bool { return a.mgr.Stats()[CountFailed] == 1 })
	// The map lost an entry (datapath restart): the next miss restores it.
	if err := a.mm.Delete(k1); err != nil {
		t.Fatal(err)
	}
	a.mgr.Request(k1)
	a.mm.waitFor(t, 10*time.Second, "the lost entry restored", validAll(k1))
	if got := a.mgr.Stats()[CountRestored]; got != 1 {
		t.Errorf("restored %d, want 1", got)
	}
	if _, ok := a.mm.snapshot()[Key{10, 29, 2}]; ok {
		t.Error("an entry was written for an identity the peer does not host")
	}
	if got := b.srv.Stats()[handshake.ReasonServerName]; got != 1 {
		t.Errorf("peer refused %d handshakes for a non-local identity, want 1", got)
	}

	// SetPairs is authoritative: the on-demand entry goes too.
	a.mgr.SetPairs([]Pair{pair(10, 20, b)})
	a.mm.waitFor(t, 10*time.Second, "the on-demand entry deleted", func(m map[Key]time.Time) bool {
		_, ok := m[onDemand]
		return !ok && len(m) == 1
	})
	// The node goes away: everything towards it goes.
	a.mgr.SetPairs(nil)
	a.mm.waitFor(t, 10*time.Second, "an empty map", func(m map[Key]time.Time) bool { return len(m) == 0 })
	if got := a.mgr.Stats()[CountRemoved]; got != 3 {
		t.Errorf("removed %d, want 3", got)
	}
}

// TestManagerRevokesWhenTrustEnds: when an authority leaves the bundle,
// every relation is re-authenticated at once, and one whose peer no longer
// verifies is deleted before its expiry.
func TestManagerRevokesWhenTrustEnds(t *testing.T) {
	a := newNode(t, "127.0.0.1", 1, time.Hour, []auth.Identity{10})
	b := newNode(t, "127.0.0.2", 2, time.Hour, []auth.Identity{20})
	c := newNode(t, "127.0.0.3", 3, time.Hour, []auth.Identity{30})
	trust(t, a, b, c)
	kb, kc := Key{10, 20, 2}, Key{10, 30, 3}
	a.mgr.SetPairs([]Pair{pair(10, 20, b), pair(10, 30, c)})
	a.mm.waitFor(t, 10*time.Second, "both pairs", validAll(kb, kc))
	// a stops trusting c.
	if err := a.iss.SetPeerAuthorities(b.iss.Authorities()); err != nil {
		t.Fatal(err)
	}
	a.mm.waitFor(t, 10*time.Second, "c's entry revoked", func(m map[Key]time.Time) bool {
		_, ok := m[kc]
		return !ok
	})
	if _, ok := a.mm.snapshot()[kb]; !ok {
		t.Error("the still-trusted peer's entry was deleted")
	}
	st := a.mgr.Stats()
	if st[CountRevoked] != 1 || st[CountRotations] < 2 {
		t.Errorf("revoked %d, rotations %d; want 1 and ≥ 2 (%v)", st[CountRevoked], st[CountRotations], st)
	}
	if got := a.cli.Stats()[handshake.ReasonUntrusted]; got == 0 {
		t.Error("the client did not refuse the untrusted peer")
	}
}

// TestManagerBacksOff: a node that does not answer is retried with growing
// delays, not hammered.
func TestManagerBacksOff(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	a := newNode(t, "127.0.0.1", 1, time.Hour, []auth.Identity{10}, WithBackoff(100*time.Millisecond, 400*time.Millisecond))
	a.mgr.SetPairs([]Pair{{Key: Key{10, 40, 4}, Node: dead}})
	time.Sleep(1500 * time.Millisecond)
	// Attempts at about 0, 0.1, 0.3, 0.7, 1.1 s (±20%): 4 to 6; no
	// backoff would be hundreds.
	got := a.mgr.Stats()[CountFailed]
	if got < 3 || got > 8 {
		t.Errorf("%d attempts in 1.5 s with 100–400 ms backoff, want 3–8", got)
	}
	if len(a.mm.snapshot()) != 0 {
		t.Error("an entry was written for a node that never answered")
	}
}

// TestManagerBoundsConcurrency: with one handshake per node at a time the
// peer never sees two at once (its per-peer limit of one would refuse the
// second), though workers are free, and every pair gets authenticated.
func TestManagerBoundsConcurrency(t *testing.T) {
	a := newNode(t, "127.0.0.1", 1, time.Hour, []auth.Identity{10, 11, 12, 13, 14}, WithWorkers(4), WithPerNode(1))
	bIss, err := issuer.New(td, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := handshake.NewServer(bIss, localSet{20: true}, handshake.WithMaxPerPeer(1))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	if err := a.iss.SetPeerAuthorities(bIss.Authorities()); err != nil {
		t.Fatal(err)
	}
	if err := bIss.SetPeerAuthorities(a.iss.Authorities()); err != nil {
		t.Fatal(err)
	}
	b := &node{id: 2, addr: netip.MustParseAddrPort(l.Addr().String())}
	var pairs []Pair
	var keys []Key
	for id := auth.Identity(10); id <= 14; id++ {
		pairs = append(pairs, pair(id, 20, b))
		keys = append(keys, Key{id, 20, 2})
	}
	a.mgr.SetPairs(pairs)
	a.mm.waitFor(t, 20*time.Second, "all five pairs", validAll(keys...))
	if got := srv.Stats()[handshake.ReasonPeerLimit]; got != 0 {
		t.Errorf("peer saw concurrent handshakes from one node: %d refused", got)
	}
}

// TestManagerGC: once the first SetPairs says what should exist, entries
// nobody wants and expired entries are deleted.
func TestManagerGC(t *testing.T) {
	a := newNode(t, "127.0.0.1", 1, time.Hour, []auth.Identity{10})
	b := newNode(t, "127.0.0.2", 2, time.Hour, []auth.Identity{20})
	trust(t, a, b)
	stale, expired, wanted := Key{1, 2, 3}, Key{10, 21, 2}, Key{10, 20, 2}
	a.mm.Upsert(stale, time.Now().Add(time.Hour))
	a.mm.Upsert(expired, time.Now().Add(-time.Second))
	a.mgr.SetPairs([]Pair{pair(10, 20, b), pair(10, 21, b)})
	a.mm.waitFor(t, 10*time.Second, "only the wanted pair left", func(m map[Key]time.Time) bool {
		_, s := m[stale]
		_, e := m[expired]
		return !s && !e && validAll(wanted)(m)
	})
	st := a.mgr.Stats()
	if st[CountStale] != 1 || st[CountExpired] != 1 {
		t.Errorf("stale %d, expired %d; want 1 and 1 (%v)", st[CountStale], st[CountExpired], st)
	}
}

// eventually waits for a counter the code under test bumps on another
// goroutine with nothing else to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
