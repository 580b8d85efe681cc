// Package dataplane is the boundary between the agent (which reads user
// intent and builds IR) and whatever delivers IR to proxies (the xDS server).
// It holds only interfaces and plain status types, imports nothing outside
// the standard library and mesh/ir, and so can be implemented by xds/
// without xds/ importing Kubernetes code, and consumed by the agent without
// the agent importing Envoy code.
package dataplane

import (
	"context"
	"time"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// Publisher delivers configuration to the node's proxies.
type Publisher interface {
	// Publish makes cfg the desired configuration. It validates cfg
	// (rejecting it whole, with an error wrapping ir.ErrInvalid), is called
	// from one goroutine at a time, returns once the configuration is
	// queued for delivery (not when proxies ACK it), and must keep the
	// previous configuration serving when it fails.
	Publish(ctx context.Context, cfg *ir.Config) (Publication, error)
	// Proxies reports every proxy that has connected, with what it
	// acknowledged or rejected. Safe to call from any goroutine.
	Proxies() []Proxy
	// Changed returns a channel that is closed the next time what Proxies
	// reports may have changed (a proxy answered, connected or went away).
	// A waiter takes the channel, then reads Proxies, and waits on it only
	// if what it read does not satisfy it: it never polls and misses no
	// change. Safe to call from any goroutine.
	Changed() <-chan struct{}
}

// Publication describes what Publish queued.
type Publication struct {
	// Versions maps a resource type ("Listener", "RouteConfiguration",
	// "Cluster", "ClusterLoadAssignment", "Secret") to the version now
	// desired for it. Only types with at least one resource are listed:
	// they are the ones a proxy must acknowledge before the configuration
	// counts as programmed.
	Versions map[string]string
	// Changed is false when cfg produced exactly what was already
	// published, and nothing was pushed.
	Changed bool
	// Warnings name parts of cfg the data plane could not express exactly,
	// and what it did instead.
	Warnings []string
}

// Proxy is one connected (or formerly connected) proxy.
type Proxy struct {
	Node      string      `json:"node"`
	Connected bool        `json:"connected"`
	Since     time.Time   `json:"since"`
	Types     []TypeState `json:"types"`
}

// TypeState is a proxy's view of one resource type.
type TypeState struct {
	Type string `json:"type"`
	// Sent is the last version sent to the proxy, Acked the last it
	// accepted.
	Sent  string `json:"sent,omitempty"`
	Acked string `json:"acked,omitempty"`
	// Nack is the most recent rejection, if it is newer than the last ACK.
	Nack *Nack `json:"nack,omitempty"`
}

// Nack is a proxy's rejection of an update, with its error text.
type Nack struct {
	Version string    `json:"version"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	// Resources are the resources of the rejected update the proxy did
	// not already run (new, or changed): a proxy rejects an update whole,
	// so the rejected resource is among them.
	Resources []string `json:"resources,omitempty"`
	// Objects are the objects Resources were made for, read from their
	// names; empty when none could be told (the rejection then concerns
	// every object of its type).
	Objects []Object `json:"objects,omitempty"`
}

// Object is a user-facing object a resource was made for.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Kinds of Object. ObjectPolicy stands for network policy as a whole: the
// L7 rules of every policy of a direction share one proxy listener.
const (
	ObjectGateway = "Gateway"
	ObjectPolicy  = "Policy"
	ObjectService = "Service"
	ObjectSecret  = "Secret"
	// ObjectIngress is an Ingress; with no name, the shared Ingress
	// listener set (every Ingress in shared mode).
	ObjectIngress = "Ingress"
	// The Envoy config kinds (mesh/envoyconfig); a clusterwide one has no
	// namespace.
	ObjectEnvoyConfig            = "CiliumEnvoyConfig"
	ObjectClusterwideEnvoyConfig = "CiliumClusterwideEnvoyConfig"
)

// AckedAll reports whether the proxy accepted every version in want.
func (p Proxy) AckedAll(want map[string]string) bool {
	for typ, v := range want {
		ok := false
		for _, ts := range p.Types {
			if ts.Type == typ && ts.Acked == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
