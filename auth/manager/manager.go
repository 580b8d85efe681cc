package manager

import (
	"container/heap"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/internal/counter"
)

// Defaults (see doc.go for why).
const (
	DefaultWorkers      = 16
	DefaultPerNode      = 4
	DefaultQueueSize    = 1024
	DefaultGCInterval   = 5 * time.Minute
	DefaultBackoffMin   = time.Second
	DefaultBackoffMax   = time.Minute
	DefaultMaxRelations = 512 * 1024
)

// Counter names of Stats.
const (
	CountAuthenticated = "authenticated" // a handshake succeeded and its entry was written
	CountFailed        = "failed"        // a handshake failed
	CountRevoked       = "revoked"       // an entry was deleted because the peer was rejected
	CountRemoved       = "removed"       // an entry was deleted because its pair went away
	CountExpired       = "expired"       // GC deleted an expired entry
	CountStale         = "stale"         // GC deleted an entry nobody asked for
	CountRestored      = "restored"      // a valid entry missing from the map was written again
	CountRequests      = "requests"      // on-demand requests received
	CountDropped       = "dropped"       // requests dropped: queue full or too many relations
	CountUnknownNode   = "unknown_node"  // a request for a node without a known address
	CountRotations     = "rotations"     // re-authentications started by an SVID or bundle change
	CountMapErrors     = "map_errors"    // the Map refused a write or listing
)

// Manager keeps the auth map in sync with the pairs policy requires: it
// authenticates them eagerly, re-authenticates before expiry and after
// rotations, answers on-demand requests, and deletes what is no longer
// wanted or no longer true.
type Manager struct {
	m       Map
	src     auth.Source
	authn   Authenticator
	log     *slog.Logger
	workers int
	perNode int
	gcEvery time.Duration
	boMin   time.Duration
	boMax   time.Duration
	maxRel  int
	stats   *counter.Set

	requests chan Key
	wake     chan struct{}
	mu       sync.Mutex
	pending  []Pair
	havePend bool

	// Owned by the Run goroutine.
	states   map[Key]*state
	nodes    map[uint16]netip.AddrPort
	sched    schedule
	results  chan result
	inflight int
	nodeBusy map[uint16]int      // handshakes in flight per remote node
	parked   map[uint16][]*state // due, waiting for their node's slot
	synced   bool
	bundle   []*x509.Certificate
}

type state struct {
	key       Key
	node      netip.AddrPort
	wanted    bool      // in the latest SetPairs
	expiry    time.Time // of the entry written, zero if none
	authAt    time.Time
	local     *x509.Certificate // our leaf of the last successful handshake
	due       time.Time
	idx       int
	inflight  bool
	failures  int
	nextRetry time.Time
}

type result struct {
	st     *state
	expiry time.Time
	local  *x509.Certificate
	err    error
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithWorkers bounds concurrent handshakes (default DefaultWorkers).
func WithWorkers(n int) Option { return func(m *Manager) { m.workers = n } }

// WithPerNode bounds concurrent handshakes towards one node (default
// DefaultPerNode, below the handshake server's per-peer limit so a busy
// node is not met with refusals).
func WithPerNode(n int) Option { return func(m *Manager) { m.perNode = n } }

// WithQueueSize bounds queued on-demand requests (default DefaultQueueSize).
func WithQueueSize(n int) Option { return func(m *Manager) { m.requests = make(chan Key, n) } }

// WithGCInterval sets how often the map is listed and cleaned (default
// DefaultGCInterval).
func WithGCInterval(d time.Duration) Option { return func(m *Manager) { m.gcEvery = d } }

// WithBackoff sets the retry delay after a failed handshake: min doubling
// up to max, with ±20% jitter (default DefaultBackoffMin..DefaultBackoffMax).
func WithBackoff(min, max time.Duration) Option {
	return func(m *Manager) { m.boMin, m.boMax = min, max }
}

// WithMaxRelations bounds the relations tracked (default
// DefaultMaxRelations, the auth map's size).
func WithMaxRelations(n int) Option { return func(m *Manager) { m.maxRel = n } }

// New returns a manager writing m, presenting SVIDs of src through authn.
func New(m Map, src auth.Source, authn Authenticator, opts ...Option) *Manager {
	mg := &Manager{m: m, src: src, authn: authn, log: slog.Default(), workers: DefaultWorkers, perNode: DefaultPerNode,
		gcEvery: DefaultGCInterval, boMin: DefaultBackoffMin, boMax: DefaultBackoffMax,
		maxRel: DefaultMaxRelations, requests: make(chan Key, DefaultQueueSize), wake: make(chan struct{}, 1),
		stats: counter.New(CountAuthenticated, CountFailed, CountRevoked, CountRemoved, CountExpired, CountStale,
			CountRestored, CountRequests, CountDropped, CountUnknownNode, CountRotations, CountMapErrors),
		states: map[Key]*state{}, nodes: map[uint16]netip.AddrPort{},
		nodeBusy: map[uint16]int{}, parked: map[uint16][]*state{}}
	for _, o := range opts {
		o(mg)
	}
	mg.results = make(chan result, mg.workers)
	return mg
}

// Stats returns the counters (names Count*).
func (mg *Manager) Stats() map[string]uint64 { return mg.stats.Snapshot() }

// SetPairs replaces the set of relations policy requires authenticated.
// It is authoritative: an entry for a key not in it (including one made
// on demand) is deleted. Never blocks; the latest call wins.
func (mg *Manager) SetPairs(pairs []Pair) {
	mg.mu.Lock()
	mg.pending = slices.Clone(pairs)
	mg.havePend = true
	mg.mu.Unlock()
	select {
	case mg.wake <- struct{}{}:
	default:
	}
}

// Request asks for k to be authenticated now: the datapath's miss signal
// (from its ring-buffer reader). Never blocks: when the queue is full the
// request is dropped and counted, and the datapath will signal again.
func (mg *Manager) Request(k Key) {
	select {
	case mg.requests <- k:
	default:
		mg.stats.Inc(CountDropped)
	}
}

// Run drives the manager until ctx ends, then waits for handshakes in
// flight. It is the only goroutine touching the Map.
func (mg *Manager) Run(ctx context.Context) error {
	changed, cancel := mg.src.Subscribe()
	defer cancel()
	if b, err := mg.src.Bundle(); err == nil {
		mg.bundle = b.X509Authorities()
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	defer func() {
		stopWorkers()
		for mg.inflight > 0 {
			<-mg.results
			mg.inflight--
		}
	}()
	gc := time.NewTicker(mg.gcEvery)
	defer gc.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		mg.dispatch(wctx, now)
		wait := time.Hour
		if st := mg.sched.next(); st != nil && mg.inflight < mg.workers {
			wait = max(st.due.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-mg.wake:
			mg.mu.Lock()
			pairs, ok := mg.pending, mg.havePend
			mg.pending, mg.havePend = nil, false
			mg.mu.Unlock()
			if ok {
				mg.applyPairs(pairs, time.Now())
			}
		case k := <-mg.requests:
			mg.request(k, time.Now())
		case r := <-mg.results:
			mg.inflight--
			mg.finish(r, time.Now())
		case <-changed:
			mg.rotated(ctx, time.Now())
		case <-gc.C:
			mg.gc(time.Now())
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// dispatch starts handshakes for due relations while workers are free.
func (mg *Manager) dispatch(ctx context.Context, now time.Time) {
	for mg.inflight < mg.workers {
		st := mg.sched.next()
		if st == nil || st.due.After(now) {
			return
		}
		heap.Pop(&mg.sched)
		if !st.wanted && !st.expiry.IsZero() {
			// An on-demand relation is not renewed: it was due
			// at its expiry and goes. A miss brings it back.
			mg.drop(st, CountExpired)
			continue
		}
		if n := st.key.RemoteNode; mg.nodeBusy[n] >= mg.perNode {
			mg.parked[n] = append(mg.parked[n], st)
			continue
		}
		mg.start(ctx, st)
	}
}

// unpark puts the relations waiting for node back on the schedule, now
// that one of its handshakes finished.
func (mg *Manager) unpark(node uint16, now time.Time) {
	for _, st := range mg.parked[node] {
		// Skip those dropped or rescheduled meanwhile.
		if mg.states[st.key] == st && st.idx < 0 && !st.inflight {
			mg.sched.at(st, later(now, st.due))
		}
	}
	delete(mg.parked, node)
}

func (mg *Manager) start(ctx context.Context, st *state) {
	st.inflight = true
	mg.inflight++
	mg.nodeBusy[st.key.RemoteNode]++
	k, node := st.key, st.node
	go func() {
		res, err := mg.authn.Authenticate(ctx, k.Local, k.Remote, node)
		mg.results <- result{st: st, expiry: res.Expiry, local: res.Local, err: err}
	}()
}

// finish records a handshake's outcome.
func (mg *Manager) finish(r result, now time.Time) {
	st := r.st
	st.inflight = false
	if mg.nodeBusy[st.key.RemoteNode]--; mg.nodeBusy[st.key.RemoteNode] <= 0 {
		delete(mg.nodeBusy, st.key.RemoteNode)
	}
	mg.unpark(st.key.RemoteNode, now)
	if mg.states[st.key] != st {
		return // removed (and maybe re-added) meanwhile
	}
	err := r.err
	if err == nil && !r.expiry.After(now) {
		err = errors.New("handshake proved a relation that has already expired")
	}
	if err == nil {
		if werr := mg.m.Upsert(st.key, r.expiry); werr != nil {
			mg.stats.Inc(CountMapErrors)
			mg.log.Error("writing auth entry", "key", st.key, "error", werr)
			err = werr
		}
	}
	if err != nil {
		mg.stats.Inc(CountFailed)
		st.failures++
		st.nextRetry = now.Add(mg.backoff(st.failures))
		var rej interface{ Rejected() bool }
		if errors.As(err, &rej) && rej.Rejected() && !st.expiry.IsZero() {
			// The peer no longer proves what the entry says:
			// fail closed now rather than at expiry.
			if derr := mg.m.Delete(st.key); derr != nil {
				mg.stats.Inc(CountMapErrors)
				mg.log.Error("deleting auth entry of a rejected peer", "key", st.key, "error", derr)
			} else {
				mg.stats.Inc(CountRevoked)
				mg.log.Warn("peer rejected on re-authentication; entry deleted", "key", st.key, "error", err)
				st.expiry, st.local = time.Time{}, nil
			}
		}
		switch {
		case st.wanted:
			mg.sched.at(st, st.nextRetry)
		case !st.expiry.IsZero():
			mg.sched.at(st, st.expiry)
		default:
			// On demand and nothing proved: idle until the next
			// miss, which waits for nextRetry.
		}
		return
	}
	mg.stats.Inc(CountAuthenticated)
	mg.log.Debug("relation authenticated", "key", st.key, "expiry", r.expiry)
	st.failures, st.nextRetry = 0, time.Time{}
	st.expiry, st.authAt, st.local = r.expiry, now, r.local
	if st.wanted {
		// Renew at two thirds of the proof's life.
		mg.sched.at(st, now.Add(r.expiry.Sub(now)*2/3))
	} else {
		mg.sched.at(st, r.expiry)
	}
}

func (mg *Manager) backoff(failures int) time.Duration {
	d := mg.boMin
	for i := 1; i < failures && d < mg.boMax; i++ {
		d *= 2
	}
	d = min(d, mg.boMax)
	// ±20% jitter, so many relations to one failed node spread out.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// applyPairs makes the tracked relations exactly pairs.
func (mg *Manager) applyPairs(pairs []Pair, now time.Time) {
	want := make(map[Key]Pair, len(pairs))
	nodes := map[uint16]netip.AddrPort{}
	for _, p := range pairs {
		if p.Local == 0 || p.Remote == 0 || !p.Node.IsValid() {
			mg.log.Error("ignoring an invalid auth pair", "key", p.Key, "node", p.Node)
			continue
		}
		if a, ok := nodes[p.RemoteNode]; ok && a != p.Node {
			mg.log.Error("two addresses for one node; keeping the first", "node", p.RemoteNode, "kept", a, "ignored", p.Node)
		} else {
			nodes[p.RemoteNode] = p.Node
		}
		want[p.Key] = p
	}
	mg.nodes = nodes
	for k, st := range mg.states {
		if _, ok := want[k]; !ok {
			mg.drop(st, CountRemoved)
		}
	}
	for k := range want {
		st := mg.states[k]
		if st == nil {
			if len(mg.states) >= mg.maxRel {
				mg.stats.Inc(CountDropped)
				continue
			}
			st = &state{key: k, idx: -1}
			mg.states[k] = st
		}
		st.node = nodes[k.RemoteNode]
		if !st.wanted {
			st.wanted = true
			switch {
			case st.inflight:
			case st.expiry.After(now):
				// Proved on demand already: renew on the
				// wanted schedule.
				mg.sched.at(st, st.authAt.Add(st.expiry.Sub(st.authAt)*2/3))
			default:
				mg.sched.at(st, later(now, st.nextRetry))
			}
		}
	}
	if !mg.synced {
		// Only now is it known what the map should hold.
		mg.synced = true
		mg.gc(now)
	}
}

// drop forgets a relation and deletes its entry.
func (mg *Manager) drop(st *state, why string) {
	mg.sched.remove(st)
	delete(mg.states, st.key)
	if st.expiry.IsZero() {
		return
	}
	if err := mg.m.Delete(st.key); err != nil {
		// GC deletes it later: the key is no longer tracked.
		mg.stats.Inc(CountMapErrors)
		mg.log.Error("deleting auth entry", "key", st.key, "error", err)
		return
	}
	mg.stats.Inc(why)
	mg.log.Debug("auth entry deleted", "key", st.key, "reason", why)
}

// request handles a datapath miss for k.
func (mg *Manager) request(k Key, now time.Time) {
	mg.stats.Inc(CountRequests)
	if st := mg.states[k]; st != nil {
		switch {
		case st.expiry.After(now):
			// Valid as far as we know: the map lost it (a
			// datapath restart, say). Write it again.
			if err := mg.m.Upsert(k, st.expiry); err != nil {
				mg.stats.Inc(CountMapErrors)
				mg.log.Error("restoring auth entry", "key", k, "error", err)
				return
			}
			mg.stats.Inc(CountRestored)
		case !st.inflight:
			mg.sched.at(st, later(now, st.nextRetry))
		}
		return
	}
	node, ok := mg.nodes[k.RemoteNode]
	if !ok {
		mg.stats.Inc(CountUnknownNode)
		mg.log.Debug("auth request for a node without a known address", "key", k)
		return
	}
	if k.Local == 0 || k.Remote == 0 || len(mg.states) >= mg.maxRel {
		mg.stats.Inc(CountDropped)
		return
	}
	st := &state{key: k, node: node, idx: -1}
	mg.states[k] = st
	mg.sched.at(st, now)
}

// rotated re-authenticates relations whose local SVID changed, or all of
// them when an authority left the bundle.
func (mg *Manager) rotated(ctx context.Context, now time.Time) {
	all := false
	if b, err := mg.src.Bundle(); err == nil {
		cur := b.X509Authorities()
		for _, old := range mg.bundle {
			if !slices.ContainsFunc(cur, old.Equal) {
				all = true
				break
			}
		}
		mg.bundle = cur
	}
	current := map[auth.Identity]*x509.Certificate{}
	for _, st := range mg.states {
		if st.inflight || st.local == nil || !st.wanted {
			continue
		}
		leaf, ok := current[st.key.Local]
		if !ok {
			// A short bound: a Source that has to wait for an SVID
			// is not asked again until the next change.
			sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			svid, err := mg.src.SVID(sctx, st.key.Local)
			cancel()
			if err == nil {
				leaf = svid.Certificates[0]
			}
			current[st.key.Local] = leaf
		}
		if all || (leaf != nil && !leaf.Equal(st.local)) {
			mg.stats.Inc(CountRotations)
			mg.sched.at(st, later(now, st.nextRetry))
		}
	}
}

// gc lists the map and deletes expired entries and entries of relations
// nobody tracks, and restores tracked valid entries the map lost.
func (mg *Manager) gc(now time.Time) {
	entries, err := mg.m.List()
	if err != nil {
		mg.stats.Inc(CountMapErrors)
		mg.log.Error("listing auth entries", "error", err)
		return
	}
	seen := make(map[Key]bool, len(entries))
	for _, e := range entries {
		seen[e.Key] = true
		st := mg.states[e.Key]
		why := ""
		switch {
		case !now.Before(e.Expiry):
			why = CountExpired
		case st == nil && mg.synced:
			why = CountStale
		}
		if why == "" {
			continue
		}
		if err := mg.m.Delete(e.Key); err != nil {
			mg.stats.Inc(CountMapErrors)
			mg.log.Error("deleting auth entry", "key", e.Key, "error", err)
			continue
		}
		mg.stats.Inc(why)
		if st != nil && why == CountExpired {
			if st.wanted {
				st.expiry, st.local = time.Time{}, nil
			} else if !st.inflight {
				mg.sched.remove(st)
				delete(mg.states, st.key)
			}
		}
	}
	for k, st := range mg.states {
		if seen[k] || !st.expiry.After(now) {
			continue
		}
		if err := mg.m.Upsert(k, st.expiry); err != nil {
			mg.stats.Inc(CountMapErrors)
			continue
		}
		mg.stats.Inc(CountRestored)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
