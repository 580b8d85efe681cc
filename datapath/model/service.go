package model

import (
	"fmt"
	"net/netip"
)

// Service is one Service frontend as socket-level translation sees it: a
// connect or datagram from a Pod of this node to Frontend:Port over Proto
// goes to one of Backends instead. A frontend with no backends refuses
// connections (fail closed: the Service address itself is never let
// through).
//
// Two kinds of rows are markers that are never translated and carry no
// backends: an SCTP frontend (the socket programs see TCP and UDP only)
// and a NodePort, whose Frontend is NodePortFrontend (the port on every
// node's address). Under egress enforcement a new flow to either is
// dropped, as is one to any address of the Service ranges.
type Service struct {
	Frontend netip.Addr
	Port     uint16
	Proto    uint8 // ProtoTCP, ProtoUDP, or ProtoSCTP for a marker
	Backends []Backend
}

// NodePortFrontend is the Frontend of a NodePort marker row.
var NodePortFrontend = netip.IPv6Unspecified()

// Backend is a ready endpoint of a Service: a Pod address and the port the
// Service's targetPort resolved to on it.
type Backend struct {
	Addr netip.Addr
	Port uint16
}

// MaxBackends bounds the backends of one frontend (the slot number is 16
// bits wide, slot 0 is the frontend).
const MaxBackends = 65535

// Validate checks one frontend. IPv6 frontends are accepted although the
// socket programs translate IPv4 only: in the table they still make
// from_workload refuse to judge a flow addressed to them.
func (s Service) Validate() error {
	if !s.Frontend.IsValid() || s.Frontend.Is4In6() || s.Frontend.Zone() != "" {
		return fmt.Errorf("service %s: frontend must be a plain IPv4 or IPv6 address", s.Frontend)
	}
	if s.Frontend.IsUnspecified() && s.Frontend != NodePortFrontend {
		return fmt.Errorf("service %s: an unspecified frontend is a NodePort marker and must be %s", s.Frontend, NodePortFrontend)
	}
	if s.Port == 0 {
		return fmt.Errorf("service %s: port 0", s.Frontend)
	}
	if s.Proto != ProtoTCP && s.Proto != ProtoUDP && s.Proto != ProtoSCTP {
		return fmt.Errorf("service %s:%d: protocol %d is not TCP, UDP or SCTP", s.Frontend, s.Port, s.Proto)
	}
	if (s.Proto == ProtoSCTP || s.Frontend == NodePortFrontend) && len(s.Backends) > 0 {
		return fmt.Errorf("service %s:%d/%d: an SCTP or NodePort row is a marker and takes no backends", s.Frontend, s.Port, s.Proto)
	}
	if len(s.Backends) > MaxBackends {
		return fmt.Errorf("service %s:%d: %d backends, at most %d", s.Frontend, s.Port, len(s.Backends), MaxBackends)
	}
	for _, b := range s.Backends {
		if !b.Addr.IsValid() || b.Addr.Is4() != s.Frontend.Is4() || b.Addr.Is4In6() || b.Port == 0 {
			return fmt.Errorf("service %s:%d: backend %s:%d must be of the frontend's family, with a port", s.Frontend, s.Port, b.Addr, b.Port)
		}
	}
	return nil
}

// ValidateRange checks one Service range (a ServiceCIDR or a ClusterIP
// as a host prefix).
func ValidateRange(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return fmt.Errorf("service range %s: must be a plain IPv4 or IPv6 prefix", p)
	}
	return nil
}
