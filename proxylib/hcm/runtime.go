package hcm

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Routing is the per-request view of the configuration: route tables by
// RouteConfiguration name and active clusters by name. Never mutated after
// it is stored.
type Routing struct {
	Routes   map[string]*route.Table
	Clusters map[string]*upstream.Cluster
}

// Runtime is shared by every handler of the proxy.
type Runtime struct {
	routing atomic.Pointer[Routing]
	// LocalAddress is appended to x-forwarded-for for loopback peers, as
	// Envoy appends its own address.
	LocalAddress string
	Logger       *slog.Logger

	date atomic.Pointer[dateValue]
}

type dateValue struct {
	sec int64
	b   []byte
}

// NewRuntime returns a runtime with an empty routing snapshot.
func NewRuntime(localAddress string, logger *slog.Logger) *Runtime {
	if logger == nil {
		logger = slog.Default()
	}
	rt := &Runtime{LocalAddress: localAddress, Logger: logger}
	rt.routing.Store(&Routing{})
	return rt
}

// Store publishes a new routing snapshot.
func (rt *Runtime) Store(r *Routing) { rt.routing.Store(r) }

// Load returns the current routing snapshot.
func (rt *Runtime) Load() *Routing { return rt.routing.Load() }

// dateHeader returns the HTTP date for now, formatted once per second.
func (rt *Runtime) dateHeader(now time.Time) []byte {
	sec := now.Unix()
	if d := rt.date.Load(); d != nil && d.sec == sec {
		return d.b
	}
	d := &dateValue{sec: sec, b: now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")}
	rt.date.Store(d)
	return d.b
}
