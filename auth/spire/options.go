package spire

import (
	"log/slog"
	"time"
)

// Defaults (see doc.go for why).
const (
	// DefaultSelectorType and DefaultSelectorValue form the selector
	// every identity entry carries and the Source subscribes by.
	DefaultSelectorType  = "nodemesh"
	DefaultSelectorValue = "mutual-auth"

	DefaultMaxSVIDs       = 8192
	DefaultMaxMessageSize = 16 << 20
	DefaultMaxEntries     = 1 << 17
	DefaultBackoffMin     = time.Second
	DefaultBackoffMax     = 30 * time.Second
)

// Selector is a SPIRE selector, type:value (for example
// nodemesh:mutual-auth).
type Selector struct {
	Type, Value string
}

func (s Selector) String() string { return s.Type + ":" + s.Value }

// Option configures a Source or a Registrar. Each says which it applies
// to; the other ignores it.
type Option func(*options)

type options struct {
	log        *slog.Logger
	selector   Selector
	maxSVIDs   int
	maxMsg     int
	backoffMin time.Duration
	backoffMax time.Duration
	now        func() time.Time
	svidTTL    time.Duration
	maxEntries int
}

// WithLogger sets the logger (default slog.Default()). Source and
// Registrar.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithSelector sets the selector the identity entries carry (default
// nodemesh:mutual-auth). Source (subscribes by it) and Registrar (creates
// entries with it and only ever touches entries that carry exactly it).
func WithSelector(s Selector) Option { return func(o *options) { o.selector = s } }

// WithMaxSVIDs bounds the SVIDs the Source holds (default
// DefaultMaxSVIDs). An update with more keeps the lowest identities and
// logs an error. Source.
func WithMaxSVIDs(n int) Option { return func(o *options) { o.maxSVIDs = n } }

// WithMaxMessageSize bounds one message received from SPIRE (default
// DefaultMaxMessageSize); a larger one ends the stream with an error.
// Source (DialServer, for the Registrar, uses the default).
func WithMaxMessageSize(n int) Option { return func(o *options) { o.maxMsg = n } }

// WithBackoff sets the reconnect delay after a stream ends: min doubling
// to max, ±20% jitter, back to min once a stream delivered a message
// (default DefaultBackoffMin, DefaultBackoffMax). Source.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = minDelay, maxDelay }
}

// WithClock replaces time.Now for the expiry checks. Source.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithSVIDTTL sets the X.509-SVID lifetime of the entries the Registrar
// creates, in whole seconds (default 0: the SPIRE server's
// default_x509_svid_ttl). Sync also updates existing entries whose
// lifetime differs. Registrar.
func WithSVIDTTL(d time.Duration) Option { return func(o *options) { o.svidTTL = d } }

// WithMaxEntries bounds how many entries the Registrar reads back from
// the server in one Sync (default DefaultMaxEntries). Registrar.
func WithMaxEntries(n int) Option { return func(o *options) { o.maxEntries = n } }

func buildOptions(opts []Option) options {
	o := options{
		log:        slog.Default(),
		selector:   Selector{DefaultSelectorType, DefaultSelectorValue},
		maxSVIDs:   DefaultMaxSVIDs,
		maxMsg:     DefaultMaxMessageSize,
		backoffMin: DefaultBackoffMin,
		backoffMax: DefaultBackoffMax,
		now:        time.Now,
		maxEntries: DefaultMaxEntries,
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}
