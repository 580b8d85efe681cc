package spire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"

	"github.com/nodemesh/nodemesh/auth"
)

// ErrRefused is wrapped by SVID's error while the SPIRE agent refuses this
// process as a delegate (its SPIFFE ID is not among the agent's
// authorized_delegates, or it has no registration entry at all).
var ErrRefused = errors.New("the SPIRE agent refused this process as a delegate")

// ErrNoBundle is returned by Bundle before the first bundle arrived.
var ErrNoBundle = errors.New("no trust bundle from the SPIRE agent yet")

// Source is an auth.Source backed by a SPIRE agent's Delegated Identity
// API. Run keeps its two subscriptions (SVIDs, bundles) open; SVID,
// Bundle and Subscribe serve from what they delivered last.
type Source struct {
	td         spiffeid.TrustDomain
	socket     string
	selector   *types.Selector
	maxSVIDs   int
	maxMsg     int
	backoffMin time.Duration
	backoffMax time.Duration
	now        func() time.Time
	log        *slog.Logger
	notify     auth.Notifier

	mu    sync.Mutex
	svids map[auth.Identity]*x509svid.SVID
	// expired are the identities the agent's last update had only an
	// expired SVID for (it could not renew them), with its NotAfter.
	expired map[auth.Identity]time.Time
	bundle  *x509bundle.Bundle
	// svidErr and bundleErr say why a stream is down (nil while it
	// delivers); svidRefused and bundleRefused are set while the agent
	// refuses that subscription (each cleared by its own next message).
	svidErr, bundleErr         error
	svidRefused, bundleRefused error
	// svidUp and bundleUp are set once a stream delivered a message
	// and cleared when it ends.
	svidUp, bundleUp bool
	// changed is closed and replaced whenever the SVIDs, the bundle or
	// the refusal change: SVID waiters look again.
	changed chan struct{}
	running bool
	stopped bool
}

var _ auth.Source = (*Source)(nil)

// New returns a Source for trust domain td that talks to the SPIRE
// agent's admin socket (admin_socket_path in the agent's configuration).
// Call Run to connect.
func New(td spiffeid.TrustDomain, adminSocket string, opts ...Option) (*Source, error) {
	if td.IsZero() {
		return nil, errors.New("creating SPIRE source: trust domain required")
	}
	if adminSocket == "" {
		return nil, errors.New("creating SPIRE source: admin socket path required")
	}
	abs, err := filepath.Abs(adminSocket)
	if err != nil {
		return nil, fmt.Errorf("creating SPIRE source: %w", err)
	}
	o := buildOptions(opts)
	if o.selector.Type == "" || o.selector.Value == "" {
		return nil, fmt.Errorf("creating SPIRE source: selector %q: want type:value", o.selector)
	}
	if o.maxSVIDs < 1 || o.maxMsg < 1 || o.backoffMin <= 0 || o.backoffMax < o.backoffMin {
		return nil, errors.New("creating SPIRE source: limits and backoff must be positive, backoff min <= max")
	}
	return &Source{
		td: td, socket: abs, selector: selectorProto(o.selector), maxSVIDs: o.maxSVIDs, maxMsg: o.maxMsg,
		backoffMin: o.backoffMin, backoffMax: o.backoffMax, now: o.now, log: o.log,
		svids: map[auth.Identity]*x509svid.SVID{}, changed: make(chan struct{}),
	}, nil
}

// TrustDomain implements auth.Source.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// Subscribe implements auth.Source: a wake-up after the set of SVIDs
// (added, rotated, removed) or the bundle changed, or a stream went down
// or came back (Status).
func (s *Source) Subscribe() (<-chan struct{}, func()) { return s.notify.Subscribe() }

// SVID implements auth.Source. It returns id's SVID from the agent's last
// update if it has not expired, and only once a trust bundle arrived too
// (an SVID is of no use without the authorities to verify the peer with).
// Otherwise it waits for an update until ctx ends. It returns at once,
// wrapping auth.ErrNoSVID, while the agent refuses this process
// (ErrRefused) and after Run returned.
func (s *Source) SVID(ctx context.Context, id auth.Identity) (*x509svid.SVID, error) {
	if id == 0 {
		return nil, fmt.Errorf("identity 0: %w", auth.ErrNoSVID)
	}
	for {
		s.mu.Lock()
		sv := s.svids[id]
		if sv != nil && s.now().Before(sv.Certificates[0].NotAfter) && s.bundle != nil {
			s.mu.Unlock()
			return sv, nil
		}
		if err := s.refusedLocked(); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("SVID of identity %d: %w: %w", id, auth.ErrNoSVID, err)
		}
		if s.stopped {
			s.mu.Unlock()
			return nil, fmt.Errorf("SVID of identity %d: the SPIRE source stopped: %w", id, auth.ErrNoSVID)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			why := s.whyLocked(id)
			s.mu.Unlock()
			return nil, fmt.Errorf("waiting for the SVID of identity %d (%s): %w: %w", id, why, auth.ErrNoSVID, ctx.Err())
		}
	}
}

// refusedLocked is the agent's refusal that keeps an SVID from being
// served: of the SVID subscription, or of the bundle subscription while
// there is no bundle yet.
func (s *Source) refusedLocked() error {
	if s.svidRefused != nil {
		return s.svidRefused
	}
	if s.bundle == nil {
		return s.bundleRefused
	}
	return nil
}

// whyLocked explains why id's SVID is not available, for the error a
// waiter gets when it gives up: what is wrong with the identity, then
// what is wrong with the streams.
func (s *Source) whyLocked(id auth.Identity) string {
	if !s.running && !s.stopped {
		return "the source is not running"
	}
	var why []string
	sv := s.svids[id]
	switch na, ok := s.expired[id]; {
	case sv != nil && !s.now().Before(sv.Certificates[0].NotAfter):
		why = append(why, "its SVID expired at "+sv.Certificates[0].NotAfter.UTC().Format(time.RFC3339))
	case sv == nil && ok:
		why = append(why, "the SPIRE agent holds only an expired SVID for it (NotAfter "+na.UTC().Format(time.RFC3339)+"): it could not renew it; can it reach the SPIRE server?")
	}
	if s.bundle == nil {
		w := "no trust bundle yet"
		if s.bundleErr != nil {
			w += " (bundle stream: " + s.bundleErr.Error() + ")"
		}
		why = append(why, w)
	}
	if s.svidErr != nil {
		why = append(why, "SVID stream: "+s.svidErr.Error())
	} else if sv == nil && len(why) == 0 {
		why = append(why, "the SPIRE agent has no SVID for it (no registration entry for this node?)")
	}
	return strings.Join(why, "; ")
}

// Bundle implements auth.Source: the trust domain's authorities from the
// agent's last bundle update. It keeps serving the last good bundle while
// the stream is down.
func (s *Source) Bundle() (*x509bundle.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundle == nil {
		if s.bundleErr != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoBundle, s.bundleErr)
		}
		return nil, ErrNoBundle
	}
	return s.bundle, nil
}

// wakeLocked wakes SVID waiters.
func (s *Source) wakeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Source) setSVIDs(set svidSet) {
	for i, err := range set.problems {
		if i == 8 {
			s.log.Error("SPIRE agent sent broken SVIDs", "more", len(set.problems)-i)
			break
		}
		s.log.Error("SPIRE agent sent a broken SVID", "error", err)
	}
	if set.dropped > 0 {
		s.log.Error("SPIRE agent sent more SVIDs than the limit; keeping the lowest identities", "limit", s.maxSVIDs, "dropped", set.dropped)
	}
	if len(set.expired) > 0 {
		s.log.Warn("SPIRE agent sent expired SVIDs; it could not renew them", "count", len(set.expired))
	}
	s.mu.Lock()
	changed := !sameSVIDs(s.svids, set.svids)
	wake := changed || !s.svidUp
	s.svids, s.expired = set.svids, set.expired
	s.svidErr, s.svidRefused, s.svidUp = nil, nil, true
	if wake {
		s.wakeLocked()
	}
	s.mu.Unlock()
	s.log.Debug("SVIDs from the SPIRE agent", "count", len(set.svids), "changed", changed, "skipped", set.skipped)
	if wake {
		s.notify.Notify()
	}
}

func (s *Source) setBundle(b *x509bundle.Bundle) {
	s.mu.Lock()
	changed := !sameBundle(s.bundle, b)
	wake := changed || !s.bundleUp
	s.bundle = b
	s.bundleErr, s.bundleRefused, s.bundleUp = nil, nil, true
	if wake {
		s.wakeLocked()
	}
	s.mu.Unlock()
	s.log.Debug("trust bundle from the SPIRE agent", "authorities", len(b.X509Authorities()), "changed", changed)
	if wake {
		s.notify.Notify()
	}
}

// streamDown records why a stream ended. A refusal wakes the waiters so
// they fail at once rather than wait for an SVID that cannot come.
func (s *Source) streamDown(bundle bool, err error, refused error) {
	s.mu.Lock()
	var wasUp bool
	if bundle {
		wasUp = s.bundleUp
		s.bundleErr, s.bundleRefused, s.bundleUp = err, refused, false
	} else {
		wasUp = s.svidUp
		s.svidErr, s.svidRefused, s.svidUp = err, refused, false
	}
	if refused != nil {
		s.wakeLocked()
	}
	s.mu.Unlock()
	if wasUp {
		s.notify.Notify()
	}
}

// errConnecting is Status before both subscriptions delivered.
var errConnecting = errors.New("waiting for the SPIRE agent's first update")

// Status reports the subscriptions' health, for status pages and
// readiness: nil once both streams delivered since they last (re)opened
// and no SVID the agent handed out has expired unrenewed, otherwise why
// not (a refusal wraps ErrRefused). Subscribers are woken
// when it changes as well. The Source keeps serving what it has either
// way.
func (s *Source) Status() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.svidRefused != nil:
		return s.svidRefused
	case s.bundleRefused != nil:
		return s.bundleRefused
	case s.svidErr != nil:
		return fmt.Errorf("SVID stream: %w", s.svidErr)
	case s.bundleErr != nil:
		return fmt.Errorf("bundle stream: %w", s.bundleErr)
	case !s.svidUp || !s.bundleUp:
		return errConnecting
	}
	// Both streams deliver, but the agent may be unable to renew (the
	// SPIRE server is away): it keeps the old SVIDs, which expire here.
	now, n := s.now(), len(s.expired)
	for _, sv := range s.svids {
		if !now.Before(sv.Certificates[0].NotAfter) {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%d SVIDs expired without being renewed by the SPIRE agent (can it reach the SPIRE server?)", n)
	}
	return nil
}

func (s *Source) setRunning(running bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if running {
		if s.running || s.stopped {
			return errors.New("running SPIRE source: Run was called before")
		}
		s.running = true
		return nil
	}
	s.running, s.stopped = false, true
	s.wakeLocked()
	return nil
}
