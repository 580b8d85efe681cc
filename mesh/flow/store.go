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
	changed  chan struct{}
	// counts is Counts' tally; its keys are bounded (countKey).
	counts map[Count]uint64
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
	s := &Store{ring: make([]Flow, DefaultCapacity), log: slog.Default(), changed: make(chan struct{}), counts: map[Count]uint64{}}
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
	if s.resolver != nil {
		for _, ep := range []*Endpoint{&f.Source, &f.Destination} {
			if (ep.Identity == 0 || ep.Workload == "") && ep.Address.IsValid() {
				id, wl := s.resolver.Resolve(ep.Address.Addr().Unmap())
				// An identity the reporter saw (the datapath's) wins
				// over the current ipcache's.
				if ep.Identity == 0 {
					ep.Identity = id
				}
				if ep.Workload == "" && id == ep.Identity {
					ep.Workload = wl
				}
			}
			if lr, ok := s.resolver.(LabelResolver); ok && ep.Labels == nil && ep.Identity != 0 {
				ep.Labels = lr.Labels(ep.Identity)
			}
		}
	}
	s.ring[s.next] = f
	s.counts[countKey(&f)]++
	s.added++
	s.next++
	if s.next == len(s.ring) {
		s.next, s.full = 0, true
	}
	if s.out != nil {
		if err := s.out.Encode(f); err != nil {
			s.log.Warn("writing flow log", "error", err)
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
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

// Changed returns a channel closed at the next Add (for followers).
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}
