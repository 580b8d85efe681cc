package model

import (
	"fmt"
	"net/netip"
)

// Service is one Service frontend as socket-level translation sees it: a
// connect or datagram from a Pod of this node to Frontend:Port over Proto
// goes to one of Backends instead. A frontend with no backends refuses
// connections (fail closed: the ClusterIP itself is never let through).
type Service struct {
	Frontend netip.Addr
	Port     uint16
	Proto    uint8 // ProtoTCP or ProtoUDP
	Backends []Backend
}

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
	if s.Port == 0 {
		return fmt.Errorf("service %s: port 0", s.Frontend)
	}
	if s.Proto != ProtoTCP && s.Proto != ProtoUDP {
		return fmt.Errorf("service %s:%d: protocol %d is neither TCP nor UDP", s.Frontend, s.Port, s.Proto)
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
