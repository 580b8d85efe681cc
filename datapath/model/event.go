package model

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// EventType says what an event reports.
type EventType uint8

const (
	EventDrop         EventType = 1
	EventRedirect     EventType = 2 // a new flow was handed to the proxy
	EventAuthRequired EventType = 3 // a flow was dropped for lack of an auth entry
)

func (t EventType) String() string {
	switch t {
	case EventDrop:
		return "drop"
	case EventRedirect:
		return "redirect"
	case EventAuthRequired:
		return "auth-required"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// ErrBadEvent wraps every failure to decode an event.
var ErrBadEvent = errors.New("malformed datapath event")

// Event is one record from the datapath's ring buffer (decoded by
// datapath.DecodeEvent).
type Event struct {
	Type      EventType
	Reason    Reason
	Direction Direction
	// BootTime is when the program ran, on CLOCK_BOOTTIME.
	BootTime time.Duration
	// Time is BootTime on the wall clock, filled in by EventReader.
	Time  time.Time
	Proto uint8
	// Source and Destination are the packet's addresses; Destination's
	// port is the policy port (the ICMP type for ICMP).
	Source      netip.AddrPort
	Destination netip.AddrPort
	IfIndex     int
	// Endpoint is the local endpoint id the decision was made for.
	Endpoint uint16
	// LocalIdentity is the local workload's identity, RemoteIdentity the
	// peer's, RemoteNode the node the peer lives on.
	LocalIdentity  Identity
	RemoteIdentity Identity
	RemoteNode     uint16
	Auth           AuthType
	ProxyPort      uint16
	Cookie         uint32
}

// AuthKey returns the auth table key an auth-required event asks for.
func (e Event) AuthKey() AuthKey {
	return AuthKey{Local: e.LocalIdentity, Remote: e.RemoteIdentity, RemoteNode: e.RemoteNode, Type: e.Auth}
}
