package model

import "fmt"

// Reason says why the datapath did what it did with a packet. The values
// are those of enum nm_reason in bpf/lib/common.h.
type Reason uint8

const (
	ReasonForwarded      Reason = 0  // passed (allowed, reply, related, unenforced)
	ReasonRedirected     Reason = 1  // handed to the node proxy
	DropPolicy           Reason = 2  // enforced and no row allows it (default deny)
	DropPolicyDeny       Reason = 3  // an explicit deny row matched
	DropAuthRequired     Reason = 4  // row requires mutual auth, no valid auth entry
	DropInvalid          Reason = 5  // malformed or truncated headers
	DropSpoofedSource    Reason = 6  // source address not owned by the sending interface
	DropFragUnknown      Reason = 7  // non-first fragment whose first fragment was not seen
	DropProxyUnavailable Reason = 8  // redirect, but nothing listens on the proxy port
	DropProxyUnsupported Reason = 9  // redirect for a protocol the proxy cannot take
	DropCTFull           Reason = 10 // connection tracking entry could not be written
	DropProxyAssign      Reason = 11 // the kernel refused to assign the proxy socket
	// DropServiceFrontend: a new flow under egress enforcement still
	// addressed to a Service frontend (it bypassed socket-level
	// translation), which policy cannot judge.
	DropServiceFrontend Reason = 12
	// DropRouteIdentity: a routing listener's upstream connection whose
	// mark names an identity its source address does not have, which the
	// destination's policy would hand to the ingress policy listener,
	// where the proxy does not read identities from connection tracking
	// (datapath.WithProxyIdentity): it would judge the peer by address
	// and apply the rules of the address's identity instead.
	DropRouteIdentity Reason = 13
)

var reasonNames = [...]string{
	ReasonForwarded:      "forwarded",
	ReasonRedirected:     "redirected",
	DropPolicy:           "policy-denied",
	DropPolicyDeny:       "policy-deny-rule",
	DropAuthRequired:     "auth-required",
	DropInvalid:          "invalid-packet",
	DropSpoofedSource:    "spoofed-source",
	DropFragUnknown:      "fragment-unknown",
	DropProxyUnavailable: "proxy-unavailable",
	DropProxyUnsupported: "proxy-unsupported-protocol",
	DropCTFull:           "conntrack-full",
	DropProxyAssign:      "proxy-assign-failed",
	DropServiceFrontend:  "service-frontend",
	DropRouteIdentity:    "route-identity-not-addressed",
}

// IsDrop reports whether packets with this reason were dropped.
func (r Reason) IsDrop() bool { return r >= DropPolicy }

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}
