package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/nodemesh/nodemesh/auth"
)

// Defaults (see doc.go for why).
const (
	DefaultSVIDTTL = time.Hour
	DefaultCATTL   = 365 * 24 * time.Hour
)

// retryPersist is how long Run waits before retrying a rotation whose
// new state could not be written.
const retryPersist = 30 * time.Second

// Issuer is the built-in SPIFFE issuer of one trust domain. It implements
// auth.Source.
type Issuer struct {
	td      spiffeid.TrustDomain
	dir     string
	svidTTL time.Duration
	caTTL   time.Duration
	now     func() time.Time
	log     *slog.Logger
	notify  auth.Notifier
	kick    chan struct{}

	mu     sync.Mutex
	st     authorities
	peers  []*x509.Certificate
	bundle *x509bundle.Bundle
	svids  map[auth.Identity]*cached
}

type cached struct {
	svid     *x509svid.SVID
	rotateAt time.Time
	used     time.Time
}

var _ auth.Source = (*Issuer)(nil)

// Option configures an Issuer.
type Option func(*Issuer)

// WithSVIDTTL sets the lifetime of minted SVIDs (default DefaultSVIDTTL).
func WithSVIDTTL(d time.Duration) Option { return func(i *Issuer) { i.svidTTL = d } }

// WithCATTL sets the lifetime of new authorities (default DefaultCATTL). It
// must be at least four SVID lifetimes, so an authority retired at three
// quarters of its life still outlives every SVID it signed.
func WithCATTL(d time.Duration) Option { return func(i *Issuer) { i.caTTL = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(i *Issuer) { i.log = l } }

// WithClock replaces time.Now, for tests of the rotation schedule.
func WithClock(now func() time.Time) Option { return func(i *Issuer) { i.now = now } }

// New loads the trust domain's authorities from stateDir (creating the
// directory 0700 and a first authority when there is none) and returns the
// issuer. Call Run to rotate SVIDs and authorities on schedule.
func New(td spiffeid.TrustDomain, stateDir string, opts ...Option) (*Issuer, error) {
	if td.IsZero() {
		return nil, errors.New("creating issuer: trust domain required")
	}
	if stateDir == "" {
		return nil, errors.New("creating issuer: state directory required")
	}
	i := &Issuer{
		td: td, dir: stateDir, svidTTL: DefaultSVIDTTL, caTTL: DefaultCATTL,
		now: time.Now, log: slog.Default(), kick: make(chan struct{}, 1),
		svids: map[auth.Identity]*cached{},
	}
	for _, o := range opts {
		o(i)
	}
	if i.svidTTL < 2*time.Second {
		return nil, fmt.Errorf("creating issuer: SVID lifetime %s: want at least 2s (certificate times have one-second resolution)", i.svidTTL)
	}
	if i.caTTL < 4*i.svidTTL {
		return nil, fmt.Errorf("creating issuer: CA lifetime %s: want at least four SVID lifetimes (%s)", i.caTTL, 4*i.svidTTL)
	}
	st, err := loadState(stateDir, td)
	if err != nil {
		return nil, fmt.Errorf("creating issuer: %w", err)
	}
	i.st = st
	// Authorities remember the longest SVID lifetime they signed with, so
	// a restart with a longer one keeps the retired ones long enough.
	grown := false
	for _, a := range i.st.all() {
		if a.key != nil && a.maxSVIDTTL < i.svidTTL {
			a.maxSVIDTTL = i.svidTTL
			grown = true
		}
	}
	changed, err := i.rotateAuthorities(i.now())
	if err != nil {
		return nil, fmt.Errorf("creating issuer: %w", err)
	}
	if grown && !changed {
		if err := saveState(i.dir, i.td, i.st); err != nil {
			return nil, fmt.Errorf("creating issuer: %w", err)
		}
	}
	i.rebuildBundle()
	return i, nil
}

// TrustDomain implements auth.Source.
func (i *Issuer) TrustDomain() spiffeid.TrustDomain { return i.td }

// Subscribe implements auth.Source.
func (i *Issuer) Subscribe() (<-chan struct{}, func()) { return i.notify.Subscribe() }

// SVID implements auth.Source: it returns the cached SVID of id or mints
// one with the active authority. An SVID past its rotation point is never
// returned, whether or not Run is running.
func (i *Issuer) SVID(ctx context.Context, id auth.Identity) (*x509svid.SVID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	i.mu.Lock()
	now := i.now()
	c := i.svids[id]
	if c != nil && now.Before(c.rotateAt) {
		c.used = now
		s := c.svid
		i.mu.Unlock()
		return s, nil
	}
	s, err := i.mintLocked(id, now)
	i.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if c != nil {
		i.notify.Notify() // a stale SVID was replaced: that is a rotation
	}
	select {
	case i.kick <- struct{}{}:
	default:
	}
	return s, nil
}

func (i *Issuer) mintLocked(id auth.Identity, now time.Time) (*x509svid.SVID, error) {
	a := i.st.active
	if a == nil || !now.Before(a.cert.NotAfter) {
		return nil, fmt.Errorf("minting SVID for identity %d: the active authority expired and was not rotated (is Run running?): %w", id, auth.ErrNoSVID)
	}
	s, err := a.mint(i.td, id, now, i.svidTTL)
	if err != nil {
		return nil, fmt.Errorf("minting SVID for identity %d: %w", id, err)
	}
	nb := s.Certificates[0].NotAfter
	i.svids[id] = &cached{svid: s, rotateAt: now.Add(nb.Sub(now) / 2), used: now}
	return s, nil
}

// Bundle implements auth.Source: the issuer's own authorities (active,
// prepared, retired) and the peer authorities set with SetPeerAuthorities.
func (i *Issuer) Bundle() (*x509bundle.Bundle, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.bundle, nil
}

// Authorities returns the issuer's own authority certificates (active,
// prepared and retired): what other nodes of the trust domain must trust,
// handed to their SetPeerAuthorities by the composition root.
func (i *Issuer) Authorities() []*x509.Certificate {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []*x509.Certificate
	for _, a := range i.st.all() {
		out = append(out, a.cert)
	}
	return out
}

// SetPeerAuthorities replaces the authorities of the trust domain's other
// issuers (other nodes), which the bundle includes. Every certificate must
// be a CA allowed to sign and, if it names a SPIFFE ID, the trust domain's;
// otherwise nothing changes.
func (i *Issuer) SetPeerAuthorities(certs []*x509.Certificate) error {
	if err := i.CheckPeerAuthorities(certs); err != nil {
		return fmt.Errorf("setting peer authorities: %w", err)
	}
	i.mu.Lock()
	same := slices.EqualFunc(i.peers, certs, func(a, b *x509.Certificate) bool { return a.Equal(b) })
	if !same {
		i.peers = slices.Clone(certs)
		i.rebuildBundle()
	}
	i.mu.Unlock()
	if !same {
		i.notify.Notify()
	}
	return nil
}

// CheckPeerAuthorities says whether SetPeerAuthorities would accept certs,
// so a caller gathering them from several places (one file per node) can
// leave out a bad place and keep the others.
func (i *Issuer) CheckPeerAuthorities(certs []*x509.Certificate) error {
	for n, c := range certs {
		if err := checkAuthorityCert(i.td, c); err != nil {
			return fmt.Errorf("[%d] %s: %w", n, c.Subject, err)
		}
	}
	return nil
}

func (i *Issuer) rebuildBundle() {
	b := x509bundle.New(i.td)
	for _, a := range i.st.all() {
		b.AddX509Authority(a.cert)
	}
	for _, c := range i.peers {
		b.AddX509Authority(c)
	}
	i.bundle = b
}

// Run rotates SVIDs at half their lifetime and authorities on their
// schedule until ctx ends, and notifies subscribers of every change. It
// sleeps until the next due event; no polling.
func (i *Issuer) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-i.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		next := i.maintain(i.now())
		timer.Reset(next)
	}
}

// maintain performs every due rotation and returns how long to sleep until
// the next one.
func (i *Issuer) maintain(now time.Time) time.Duration {
	i.mu.Lock()
	changed := false
	wait := time.Duration(-1)
	authChanged, err := i.rotateAuthorities(now)
	if err != nil {
		i.log.Error("rotating trust domain authorities; keeping the current ones", "trustDomain", i.td.Name(), "error", err)
		wait = retryPersist
	}
	if authChanged {
		i.rebuildBundle()
		changed = true
	}
	for id, c := range i.svids {
		if now.Before(c.rotateAt) {
			continue
		}
		if now.Sub(c.used) > i.svidTTL {
			// Nobody asked for it for a whole lifetime: forget it
			// instead of rotating it forever.
			delete(i.svids, id)
			continue
		}
		if _, err := i.mintLocked(id, now); err != nil {
			i.log.Error("rotating SVID", "identity", id, "error", err)
			continue
		}
		changed = true
	}
	next := i.nextEventLocked(now)
	i.mu.Unlock()
	if changed {
		i.notify.Notify()
	}
	if wait >= 0 && wait < next {
		return wait
	}
	return next
}

func (i *Issuer) nextEventLocked(now time.Time) time.Duration {
	next := now.Add(24 * time.Hour) // Run also wakes on every new SVID
	earlier := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	for _, c := range i.svids {
		earlier(c.rotateAt)
	}
	if a := i.st.active; a != nil {
		if i.st.prepared == nil {
			earlier(prepareAt(a))
		} else {
			earlier(activateAt(a))
		}
		earlier(a.cert.NotAfter)
	}
	for _, r := range i.st.retired {
		earlier(r.retireAfter)
	}
	d := next.Sub(now)
	if d < 0 {
		d = 0
	}
	// Certificate times have one-second resolution; waking a moment
	// late never matters, waking early only costs a loop.
	return d + 10*time.Millisecond
}

func lifetime(a *authority) time.Duration { return a.cert.NotAfter.Sub(a.created) }

// prepareAt is when the next authority is created and published in the
// bundle: at half the active one's life.
func prepareAt(a *authority) time.Time { return a.created.Add(lifetime(a) / 2) }

// activateAt is when the prepared authority takes over signing: at three
// quarters of the active one's life, so every verifier has had a quarter
// of a lifetime to learn the new authority.
func activateAt(a *authority) time.Time { return a.created.Add(lifetime(a) * 3 / 4) }

// rotateAuthorities advances the authority schedule. A new state is
// written before it is used: if writing fails nothing changes, so a
// restart never loses an authority that signed something.
func (i *Issuer) rotateAuthorities(now time.Time) (bool, error) {
	next := authorities{active: i.st.active, prepared: i.st.prepared}
	changed := false
	for _, r := range i.st.retired {
		if now.Before(r.retireAfter) && now.Before(r.cert.NotAfter) {
			next.retired = append(next.retired, r)
		} else {
			changed = true
		}
	}
	if next.prepared != nil && !now.Before(next.prepared.cert.NotAfter) {
		next.prepared, changed = nil, true
	}
	if next.active == nil || !now.Before(next.active.cert.NotAfter) {
		// First start, or the agent was down past the authority's
		// life: every SVID it signed has expired (they never outlive
		// it), so it is dropped rather than retired.
		if next.active != nil {
			i.log.Warn("the active authority expired while not running; starting a new one", "trustDomain", i.td.Name(), "expired", next.active.cert.NotAfter)
		}
		if next.prepared != nil {
			next.active, next.prepared = next.prepared, nil
		} else {
			a, err := newAuthority(i.td, now, i.caTTL, i.svidTTL)
			if err != nil {
				return false, err
			}
			next.active = a
		}
		changed = true
	}
	if next.prepared == nil && !now.Before(prepareAt(next.active)) {
		a, err := newAuthority(i.td, now, i.caTTL, i.svidTTL)
		if err != nil {
			return false, err
		}
		next.prepared = a
		changed = true
	}
	if next.prepared != nil && !now.Before(activateAt(next.active)) {
		old := *next.active
		old.key = nil
		old.retireAfter = now.Add(old.maxSVIDTTL)
		if old.cert.NotAfter.Before(old.retireAfter) {
			old.retireAfter = old.cert.NotAfter
		}
		next.retired = append(next.retired, &old)
		next.active, next.prepared = next.prepared, nil
		changed = true
	}
	if !changed {
		return false, nil
	}
	if err := saveState(i.dir, i.td, next); err != nil {
		return false, err
	}
	i.st = next
	i.log.Info("trust domain authorities changed", "trustDomain", i.td.Name(),
		"active", next.active.cert.SerialNumber, "activeExpires", next.active.cert.NotAfter,
		"prepared", next.prepared != nil, "retired", len(next.retired))
	return true, nil
}
