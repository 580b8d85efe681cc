package resource

import "net/netip"

// RBACAction is the RBAC rules' action.
type RBACAction uint8

// RBAC actions.
const (
	RBACAllow RBACAction = iota
	RBACDeny
)

// RBAC is a decoded envoy.extensions.filters.http.rbac.v3.RBAC or
// envoy.extensions.filters.network.rbac.v3.RBAC. Without rules (Enforce
// false) the filter lets every request or connection pass.
type RBAC struct {
	// StatPrefix is the network filter's stat_prefix ("" for HTTP).
	StatPrefix string
	Enforce    bool
	Action     RBACAction
	Policies   []*RBACPolicy // sorted by name, the order Envoy evaluates them in
}

// RBACPolicy is one named policy: it matches when any permission and any
// principal match.
type RBACPolicy struct {
	Name        string
	Permissions []*Permission
	Principals  []*Principal
}

// PermissionKind is the rule of a Permission.
type PermissionKind uint8

// Permission rules.
const (
	PermAny PermissionKind = iota
	PermAnd
	PermOr
	PermNot
	PermHeader
	PermURLPath
	PermDestinationIP
	PermDestinationPort
	PermDestinationPortRange
	// PermRequestedServerName matches the connection's SNI (network
	// filter only).
	PermRequestedServerName
)

// Permission is a decoded envoy.config.rbac.v3.Permission.
type Permission struct {
	Kind   PermissionKind
	Rules  []*Permission // and / or
	Not    *Permission
	Header HeaderMatch
	Path   StringMatch
	// ServerName matches the requested server name ("" without SNI).
	ServerName StringMatch
	CIDR       netip.Prefix
	Port       uint32
	// PortRange is [start, end).
	PortStart, PortEnd uint32
}

// PrincipalKind is the rule of a Principal.
type PrincipalKind uint8

// Principal rules.
const (
	PrinAny PrincipalKind = iota
	PrinAnd
	PrinOr
	PrinNot
	// PrinDirectRemoteIP is also what source_ip, and remote_ip in the
	// network filter, decode to: the downstream peer address.
	PrinDirectRemoteIP
	PrinAuthenticated
	// PrinSourceIdentity is Envoy's filter_state principal on the key
	// datapathv1.SourceIdentityKey with an exact match: the source
	// identity the datapath judged the connection with (the datapath
	// identity listener filter); a connection without one never matches.
	PrinSourceIdentity
)

// Principal is a decoded envoy.config.rbac.v3.Principal.
type Principal struct {
	Kind PrincipalKind
	IDs  []*Principal
	Not  *Principal
	CIDR netip.Prefix
	// Name matches the peer certificate's principal; nil matches any
	// authenticated (TLS with a client certificate) connection.
	Name *StringMatch
	// Identity is PrinSourceIdentity's identity (never zero).
	Identity uint32
}
