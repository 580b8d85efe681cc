package model

import (
	"errors"
	"fmt"
)

// Direction is the direction of a flow from the local workload's point of
// view.
type Direction uint8

const (
	Ingress Direction = 1 // towards the local workload
	Egress  Direction = 2 // from the local workload
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Verdict is what a policy row says about a new flow.
type Verdict uint8

const (
	Allow Verdict = 1
	Deny  Verdict = 2
	// Redirect allows the flow but hands it to the node proxy's
	// transparent listener on PolicyEntry.ProxyPort (TCP only).
	Redirect Verdict = 3
)

func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	case Redirect:
		return "redirect"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// AuthType names the mutual-authentication method a row requires. Zero
// means none.
type AuthType uint8

const (
	AuthNone   AuthType = 0
	AuthSPIFFE AuthType = 1 // SPIFFE mTLS handshake between node agents
)

// Protocol numbers used in policy rows.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// PolicyEntry is one row of the datapath policy table, as produced by
// policy compilation. It is deliberately plain: no selectors, no labels,
// only numbers the kernel can look up.
//
// A new flow is matched against the rows of its local identity and
// direction from most to least specific: exact port, then any port of the
// protocol, then any protocol; within each, the exact remote identity
// before IdentityAny. The first row found decides, except that a Deny row
// anywhere in that chain always wins. Rows are only consulted for a local
// identity and direction that Policy.Enforce marks as enforced.
type PolicyEntry struct {
	// Subject is the local identity the row belongs to (the workload the
	// policy selects). Never IdentityAny.
	Subject Identity
	// Remote is the peer's identity; IdentityAny matches every peer.
	Remote Identity
	// Direction is Ingress (Remote connects to Subject) or Egress (Subject
	// connects to Remote).
	Direction Direction
	// Proto is the IP protocol number, ProtoAny for all protocols.
	Proto uint8
	// Port is the destination port; for ICMP and ICMPv6 it is the message
	// type. Zero means every port (so ICMP type 0, echo reply, can only be
	// matched through the wildcard; replies pass through connection
	// tracking anyway). Must be zero when Proto is ProtoAny.
	Port uint16
	// Verdict is Allow, Deny or Redirect.
	Verdict Verdict
	// ProxyPort is the node proxy's transparent listener port; required
	// for Redirect, zero otherwise.
	ProxyPort uint16
	// Auth, when not AuthNone, makes the row "auth-required": the flow is
	// only allowed (or redirected) while the auth table holds an unexpired
	// entry for {Subject, Remote, remote node, Auth}. Not valid on Deny.
	Auth AuthType
	// Cookie is opaque to the datapath and echoed in events, so a drop can
	// be traced back to the rule that produced the row.
	Cookie uint32
}

// Enforcement says which directions of a local identity are default-deny.
type Enforcement uint8

const (
	EnforceIngress Enforcement = 1
	EnforceEgress  Enforcement = 2
)

// Has reports whether e enforces direction d.
func (e Enforcement) Has(d Direction) bool {
	switch d {
	case Ingress:
		return e&EnforceIngress != 0
	case Egress:
		return e&EnforceEgress != 0
	}
	return false
}

// Policy is the complete desired policy state of a node.
type Policy struct {
	// Enforce lists the local identities selected by at least one policy,
	// and in which directions. As in Cilium, the first rule selecting an
	// endpoint turns on default-deny for it; identities absent here allow
	// everything, whatever rows exist for them.
	Enforce map[Identity]Enforcement
	// Entries are the rows; at most one per {Subject, Remote, Direction,
	// Proto, Port}.
	Entries []PolicyEntry
}

// PolicyKey is the lookup key of a row.
type PolicyKey struct {
	Subject   Identity
	Remote    Identity
	Direction Direction
	Proto     uint8
	Port      uint16
}

// Key returns the row's lookup key.
func (e PolicyEntry) Key() PolicyKey {
	return PolicyKey{Subject: e.Subject, Remote: e.Remote, Direction: e.Direction, Proto: e.Proto, Port: e.Port}
}

// ErrInvalidPolicy wraps every validation failure.
var ErrInvalidPolicy = errors.New("invalid policy")

// Validate checks every row and reports the first problem with the row's
// index and field.
func (p Policy) Validate() error {
	seen := make(map[PolicyKey]int, len(p.Entries))
	for i, e := range p.Entries {
		if err := e.validate(); err != nil {
			return fmt.Errorf("%w: entries[%d]: %w", ErrInvalidPolicy, i, err)
		}
		if j, dup := seen[e.Key()]; dup {
			return fmt.Errorf("%w: entries[%d]: same key as entries[%d] (subject %s, remote %s, %s, proto %d, port %d)",
				ErrInvalidPolicy, i, j, e.Subject, e.Remote, e.Direction, e.Proto, e.Port)
		}
		seen[e.Key()] = i
	}
	for id, enf := range p.Enforce {
		if id == IdentityAny {
			return fmt.Errorf("%w: enforce: identity 0 is the wildcard, not a local identity", ErrInvalidPolicy)
		}
		if enf&^(EnforceIngress|EnforceEgress) != 0 {
			return fmt.Errorf("%w: enforce[%d]: unknown flags %#x", ErrInvalidPolicy, id, uint8(enf))
		}
	}
	return nil
}

func (e PolicyEntry) validate() error {
	switch {
	case e.Subject == IdentityAny:
		return errors.New("subject: must be a local identity, not 0")
	case e.Direction != Ingress && e.Direction != Egress:
		return fmt.Errorf("direction: %d is neither ingress (1) nor egress (2)", e.Direction)
	case e.Proto == ProtoAny && e.Port != 0:
		return fmt.Errorf("port: %d given without a protocol", e.Port)
	case e.Verdict != Allow && e.Verdict != Deny && e.Verdict != Redirect:
		return fmt.Errorf("verdict: unknown value %d", e.Verdict)
	case e.Verdict == Redirect && e.ProxyPort == 0:
		return errors.New("proxyPort: redirect needs the proxy's listener port")
	case e.Verdict == Redirect && e.Proto != ProtoTCP:
		return fmt.Errorf("proto: redirect to the proxy needs TCP (6), got %d", e.Proto)
	case e.Verdict != Redirect && e.ProxyPort != 0:
		return fmt.Errorf("proxyPort: %d set on a %s row", e.ProxyPort, e.Verdict)
	case e.Verdict == Deny && e.Auth != AuthNone:
		return errors.New("auth: a deny row cannot require authentication")
	}
	return nil
}

// Query describes a new flow for Decide.
type Query struct {
	Subject   Identity
	Remote    Identity
	Direction Direction
	Proto     uint8
	Port      uint16
}

// Decision is the outcome of a policy lookup.
type Decision struct {
	Verdict   Verdict
	Reason    Reason // Forwarded, Redirected, DropPolicy or DropPolicyDeny
	ProxyPort uint16
	Auth      AuthType // non-zero: allowed only with a valid auth entry
	Cookie    uint32
}

// PolicyIndex answers Decide queries over a validated Policy. It is the
// reference model of the lookup the BPF program performs, used to explain
// and to test the datapath.
type PolicyIndex struct {
	enforce map[Identity]Enforcement
	rows    map[PolicyKey]PolicyEntry
}

// Index builds a PolicyIndex. Later duplicates win; call Validate first to
// reject them.
func (p Policy) Index() *PolicyIndex {
	ix := &PolicyIndex{enforce: p.Enforce, rows: make(map[PolicyKey]PolicyEntry, len(p.Entries))}
	for _, e := range p.Entries {
		ix.rows[e.Key()] = e
	}
	return ix
}

// candidates returns the keys a lookup consults, most specific first.
func (q Query) candidates() []PolicyKey {
	k := func(remote Identity, proto uint8, port uint16) PolicyKey {
		return PolicyKey{Subject: q.Subject, Remote: remote, Direction: q.Direction, Proto: proto, Port: port}
	}
	keys := []PolicyKey{k(q.Remote, q.Proto, q.Port), k(IdentityAny, q.Proto, q.Port)}
	if q.Port != 0 {
		keys = append(keys, k(q.Remote, q.Proto, 0), k(IdentityAny, q.Proto, 0))
	}
	return append(keys, k(q.Remote, ProtoAny, 0), k(IdentityAny, ProtoAny, 0))
}

// Decide returns what the datapath does with a new flow, leaving the auth
// check to the caller (Decision.Auth).
func (ix *PolicyIndex) Decide(q Query) Decision {
	if !ix.enforce[q.Subject].Has(q.Direction) {
		return Decision{Verdict: Allow, Reason: ReasonForwarded}
	}
	var first *PolicyEntry
	for _, key := range q.candidates() {
		e, ok := ix.rows[key]
		if !ok {
			continue
		}
		if e.Verdict == Deny {
			return Decision{Verdict: Deny, Reason: DropPolicyDeny, Cookie: e.Cookie}
		}
		if first == nil {
			first = &e
		}
	}
	if first == nil {
		return Decision{Verdict: Deny, Reason: DropPolicy}
	}
	d := Decision{Verdict: first.Verdict, Reason: ReasonForwarded, Auth: first.Auth, Cookie: first.Cookie}
	if first.Verdict == Redirect {
		d.Reason = ReasonRedirected
		d.ProxyPort = first.ProxyPort
	}
	return d
}
