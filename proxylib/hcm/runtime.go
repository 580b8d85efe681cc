package hcm

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/headermatch"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"

	"github.com/nodemesh/nodemesh/proxylib/route"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Routing is the per-request view of the configuration: route tables by
// RouteConfiguration name and active clusters by name. Never mutated after
// it is stored.
type Routing struct {
	Routes   map[string]*route.Table
	Clusters map[string]*upstream.Cluster
	// Filters holds ECDS filter configurations by TypedExtensionConfig
	// name.
	Filters map[string]*FilterConfig
}

// FilterConfig is one discovered filter configuration, compiled: an RBAC
// filter, a header match filter or a Kafka policy.
type FilterConfig struct {
	TypeURL     string
	RBAC        *rbac.Engine
	HeaderMatch *headermatch.Engine
	Kafka       *resource.KafkaPolicy
}

// Runtime is shared by every handler of the proxy.
type Runtime struct {
	routing atomic.Pointer[Routing]
	// LocalAddress is appended to x-forwarded-for for loopback peers, as
	// Envoy appends its own address.
	LocalAddress string
	Logger       *slog.Logger
	// ALS delivers access-log entries (nil: access logging is off).
	ALS *accesslog.Manager
	// Requests counts the HTTP requests of every handler (metrics).
	Requests *RequestStats
	// Loops serve plain-TCP HTTP/1.1 connections (nil: goroutines do);
	// set before any handler serves.
	Loops *Loops

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
	rt := &Runtime{LocalAddress: localAddress, Logger: logger, Requests: newRequestStats()}
	rt.routing.Store(&Routing{})
	return rt
}

// Store publishes a new routing snapshot.
func (rt *Runtime) Store(r *Routing) { rt.routing.Store(r) }

// Load returns the current routing snapshot.
func (rt *Runtime) Load() *Routing { return rt.routing.Load() }

// Cluster returns the named active cluster, or nil.
func (rt *Runtime) Cluster(name string) *upstream.Cluster { return rt.routing.Load().Clusters[name] }

// Filter returns the discovered filter configuration of that name, or nil.
func (rt *Runtime) Filter(name string) *FilterConfig { return rt.routing.Load().Filters[name] }

// KafkaPolicy returns the Kafka policy of that ECDS name, or nil.
func (rt *Runtime) KafkaPolicy(name string) *resource.KafkaPolicy {
	if f := rt.Filter(name); f != nil {
		return f.Kafka
	}
	return nil
}

// Resolve returns the address of a cluster's first host, for the access
// log service.
func (rt *Runtime) Resolve(cluster string) (string, bool) {
	c := rt.Cluster(cluster)
	if c == nil || len(c.Hosts) == 0 {
		return "", false
	}
	return c.Hosts[0].Addr, true
}

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
