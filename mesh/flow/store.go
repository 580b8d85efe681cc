package flow

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Resolver maps an address to the identity and workload behind it. The
// agent installs one after every policy compilation; it is called from
// Add's goroutine and must not block.
type Resolver interface {
	Resolve(addr netip.Addr) (identity uint32, workload string)
}

// LabelResolver is implemented by a Resolver that also knows the labels
// of identities: Labels returns them as "source:key=value", sorted, or nil
// for an identity it does not know. The Store keeps the slice in every
// flow of that identity (shared, so memory grows with identities, not
// flows): it must not be modified afterwards. Same goroutine and blocking
// rules as Resolve.
type LabelResolver interface {
	Labels(identity uint32) []string
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(netip.Addr) (uint32, string)

// Resolve calls f.
func (f ResolverFunc) Resolve(a netip.Addr) (uint32, string) { return f(a) }

// DefaultCapacity is how many flows a Store keeps by default.
const DefaultCapacity = 4096

// Store keeps the most recent flows. All methods are safe for concurrent
// use; Add never blocks on readers.
type Store struct {
	mu       sync.Mutex
	ring     []Flow
	next     int
	full     bool
	added    uint64 // flows added so far; the newest has sequence number added
	resolver Resolver
	out      *json.Encoder
	log      *slog.Logger
	// changed is the channel Changed hands out: nil until a follower
	// asks for one, closed and set back to nil by the next add, so an
	// add allocates nothing and a batch wakes its followers once.
	changed chan struct{}
	// counts is Counts' tally; its keys are bounded (countKey).
	counts map[Count]uint64
	// memo is AddAll's scratch: the resolver's answer for each address
	// of the batch at hand (at most maxMemo), emptied for every batch.
	memo []resolved
}

// maxMemo bounds how many distinct addresses AddAll remembers within one
// batch, which it searches in order (a batch of the policy hop has two):
// the addresses beyond it are resolved per flow, so a batch of distinct
// addresses costs a bounded search and cannot grow the scratch.
const maxMemo = 32

// resolved is what the resolver said about one address.
type resolved struct {
	addr     netip.Addr
	identity uint32
	workload string
	// labels are the identity's (LabelResolver), nil without one.
	labels []string
}

// Option configures a Store.
type Option func(*Store)

// WithCapacity sets how many flows are kept (default DefaultCapacity).
func WithCapacity(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.ring = make([]Flow, n)
		}
	}
}

// WithJSONLines writes every added flow to w as one JSON object per line.
// Write errors are logged, not returned; w should not block for long.
func WithJSONLines(w io.Writer) Option { return func(s *Store) { s.out = json.NewEncoder(w) } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// NewStore returns an empty Store.
func NewStore(opts ...Option) *Store {
	s := &Store{ring: make([]Flow, DefaultCapacity), log: slog.Default(), counts: map[Count]uint64{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetResolver installs the resolver used for flows added from now on.
func (s *Store) SetResolver(r Resolver) {
	s.mu.Lock()
	s.resolver = r
	s.mu.Unlock()
}

// Add records a flow, filling in identities and workloads the flow does
// not carry yet (a workload only when the address still has the flow's
// identity).
func (s *Store) Add(f Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.resolution(false)
	s.record(&f, &r)
	s.counts[countKey(&f)]++
	s.wake()
}

// AddAll records flows as Add does, in their order and with consecutive
// sequence numbers, under one lock: a reader sees all of them or none,
// and followers are woken once. Each distinct address is resolved once
// per call. AddAll does not keep fs (the flows are copied) and does not
// modify it. This is the access log's path: one call per message of the
// proxy (about 64 entries), not one per entry.
func (s *Store) AddAll(fs []Flow) {
	if len(fs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.resolution(true)
	// Consecutive flows mostly share their count key (one protocol,
	// one verdict): tally runs, not flows.
	var run Count
	var n uint64
	for i := range fs {
		f := s.record(&fs[i], &r)
		if k := countKey(f); n == 0 || k != run {
			if n > 0 {
				s.counts[run] += n
			}
			run, n = k, 0
		}
		n++
	}
	s.counts[run] += n
	s.wake()
}

// resolution is the resolver of one add, with its LabelResolver and,
// for a batch, the memo of what it answered.
type resolution struct {
	resolver Resolver
	labels   LabelResolver
	batch    bool
	memo     *[]resolved
}

// resolution returns the current resolver, with the memo (cleared) when
// batch. Called with s.mu held.
func (s *Store) resolution(batch bool) resolution {
	r := resolution{resolver: s.resolver}
	if r.resolver == nil {
		return r
	}
	r.labels, _ = r.resolver.(LabelResolver)
	if batch {
		if s.memo == nil {
			s.memo = make([]resolved, 0, maxMemo)
		}
		clear(s.memo) // the previous batch's workloads and labels
		s.memo = s.memo[:0]
		r.batch, r.memo = true, &s.memo
	}
	return r
}

// lookup resolves a, from the memo when it has a.
func (r *resolution) lookup(a netip.Addr) resolved {
	if r.batch {
		for _, v := range *r.memo {
			if v.addr == a {
				return v
			}
		}
	}
	v := resolved{addr: a}
	v.identity, v.workload = r.resolver.Resolve(a)
	if r.labels != nil && v.identity != 0 {
		v.labels = r.labels.Labels(v.identity)
	}
	if r.batch && len(*r.memo) < maxMemo {
		*r.memo = append(*r.memo, v)
	}
	return v
}

// fill completes one endpoint: identity and workload from the resolver
// (an identity the reporter saw, the datapath's, wins over the current
// ipcache's; the workload is taken only if the address has that
// identity), then the identity's labels.
func (r *resolution) fill(ep *Endpoint) {
	if r.resolver == nil {
		return
	}
	var v resolved
	looked := false
	if (ep.Identity == 0 || ep.Workload == "") && ep.Address.IsValid() {
		v, looked = r.lookup(ep.Address.Addr().Unmap()), true
		if ep.Identity == 0 {
			ep.Identity = v.identity
		}
		if ep.Workload == "" && v.identity == ep.Identity {
			ep.Workload = v.workload
		}
	}
	if r.labels != nil && ep.Labels == nil && ep.Identity != 0 {
		if looked && v.identity == ep.Identity {
			ep.Labels = v.labels
		} else {
			ep.Labels = r.labels.Labels(ep.Identity)
		}
	}
}

// record copies f into the ring, completes its endpoints there, writes
// its flow-log line and returns the stored flow. Called with s.mu held.
func (s *Store) record(f *Flow, r *resolution) *Flow {
	stored := &s.ring[s.next]
	*stored = *f
	r.fill(&stored.Source)
	r.fill(&stored.Destination)
	s.added++
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	if s.out != nil {
		if err := s.out.Encode(stored); err != nil {
			s.log.Warn("writing flow log", "error", err)
		}
	}
	return stored
}

// wake wakes the followers waiting on Changed, if any. Called with s.mu
// held.
func (s *Store) wake() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Filter selects flows; zero fields match everything. Verdict and
// Protocol compare case-insensitively.
type Filter struct {
	Verdict  string
	Protocol string
	// Identity matches the source or the destination identity.
	Identity uint32
	// Workload matches the source or the destination workload
	// ("namespace/name").
	Workload string
	// Since keeps flows at or after this time.
	Since time.Time
}

// Match reports whether f passes the filter.
func (fl Filter) Match(f *Flow) bool {
	switch {
	case fl.Verdict != "" && !strings.EqualFold(fl.Verdict, f.Verdict):
		return false
	case fl.Protocol != "" && !strings.EqualFold(fl.Protocol, f.Protocol):
		return false
	case fl.Identity != 0 && fl.Identity != f.Source.Identity && fl.Identity != f.Destination.Identity:
		return false
	case fl.Workload != "" && fl.Workload != f.Source.Workload && fl.Workload != f.Destination.Workload:
		return false
	case !fl.Since.IsZero() && f.Time.Before(fl.Since):
		return false
	}
	return true
}

// Query returns up to limit of the newest flows matching fl, oldest first
// (limit <= 0: every match).
func (s *Store) Query(fl Filter, limit int) []Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Flow
	n := s.next
	if s.full {
		n = len(s.ring)
	}
	for i := 0; i < n && (limit <= 0 || len(out) < limit); i++ {
		// Walk from the newest backwards.
		idx := (s.next - 1 - i + len(s.ring)) % len(s.ring)
		if fl.Match(&s.ring[idx]) {
			out = append(out, s.ring[idx])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// After returns the flows matching fl that were added after sequence
// number seq (oldest first) and the sequence number of the newest flow
// added so far, which the next call passes back. Flows overwritten before
// they were read are skipped. Start with Last().
func (s *Store) After(seq uint64, fl Filter) ([]Flow, uint64) {
	batch, next, _ := s.Read(seq, 0)
	var out []Flow
	for i := range batch {
		if fl.Match(&batch[i]) {
			out = append(out, batch[i])
		}
	}
	return out, next
}

// Read is the follower's view of the ring: it returns up to max flows
// (max <= 0: as many as the ring holds) added after sequence number seq,
// oldest first, the sequence number to pass to the next call, and how
// many flows after seq were overwritten before this call could read them
// (lost: the reader fell more than the ring's capacity behind). A reader
// never holds up Add: it copies under the lock and Add never waits for
// it, so a slow reader loses flows instead of slowing the proxy. Start
// with Last() to read only new flows, or Oldest() to read every flow
// still held.
func (s *Store) Read(seq uint64, max int) (flows []Flow, next, lost uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(len(s.ring))
	if seq > s.added {
		// A sequence number from the future (a caller's bug): read
		// nothing, resume from the newest.
		return nil, s.added, 0
	}
	first := seq + 1
	if s.added > n && first <= s.added-n {
		lost = s.added - n + 1 - first
		first = s.added - n + 1
	}
	last := s.added
	if max > 0 && last >= first && last-first+1 > uint64(max) {
		last = first + uint64(max) - 1
	}
	if last < first {
		return nil, s.added, lost
	}
	flows = make([]Flow, 0, last-first+1)
	for q := first; q <= last; q++ {
		flows = append(flows, s.ring[(q-1)%n])
	}
	return flows, last, lost
}

// Oldest returns the sequence number just before the oldest flow the
// store still holds: Read(Oldest(), …) starts with that flow.
func (s *Store) Oldest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := uint64(len(s.ring)); s.added > n {
		return s.added - n
	}
	return 0
}

// Stats reports how many flows the store holds now, how many it can hold
// and how many were added since it was created.
func (s *Store) Stats() (held, capacity int, added uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held = s.next
	if s.full {
		held = len(s.ring)
	}
	return held, len(s.ring), s.added
}

// Last returns the sequence number of the newest flow (0: none yet).
func (s *Store) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.added
}

// Changed returns a channel closed at the next Add or AddAll (for
// followers): take it, then Read, then wait on it if Read had nothing
// new. Every follower that asked before the same add gets the same
// channel; it is made only when asked for, so adds with no follower
// waiting allocate nothing.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}
