package resource

import (
	"net/netip"
	"sort"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	datapathv1 "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
)

// maxRBACDepth bounds the nesting of and/or/not rules, so a hostile
// configuration cannot exhaust the stack when evaluated.
const maxRBACDepth = 32

// rbacScope is where an RBAC configuration is evaluated: per HTTP request
// or once per connection (the network filter). A few rules only make sense
// in one of them; the decoder NACKs them in the other.
type rbacScope uint8

const (
	scopeHTTP rbacScope = iota
	scopeNetwork
)

func decodeRBAC(r *rbacfilterv3.RBAC, p path) (*RBAC, error) {
	return decodeRules(r.GetRules(), append(p, "rules"), scopeHTTP)
}

// decodeNetworkRBAC decodes the network RBAC filter
// (envoy.extensions.filters.network.rbac.v3.RBAC). Its shadow rules,
// matchers and delay_deny are outside the allowlist; CONTINUOUS
// enforcement would need a verdict per read and is NACKed too.
func decodeNetworkRBAC(r *netrbacv3.RBAC, p path) (*RBAC, error) {
	if r.GetStatPrefix() == "" {
		return nil, fieldErr(append(p, "stat_prefix"), "must not be empty")
	}
	if e := r.GetEnforcementType(); e != netrbacv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		return nil, fieldErr(append(p, "enforcement_type"), "%s not supported by nodemesh-proxy (the verdict is taken once per connection)", e)
	}
	out, err := decodeRules(r.GetRules(), append(p, "rules"), scopeNetwork)
	if err != nil {
		return nil, err
	}
	out.StatPrefix = r.GetStatPrefix()
	return out, nil
}

func decodeRules(rules *rbacv3.RBAC, rp path, scope rbacScope) (*RBAC, error) {
	if rules == nil {
		return &RBAC{}, nil
	}
	out := &RBAC{Enforce: true}
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		out.Action = RBACAllow
	case rbacv3.RBAC_DENY:
		out.Action = RBACDeny
	default:
		return nil, fieldErr(append(rp, "action"), "%s not supported by nodemesh-proxy", rules.GetAction())
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for n := range rules.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pol := rules.GetPolicies()[n]
		pp := append(rp, "policies", "["+strconv.Quote(n)+"]")
		dp := &RBACPolicy{Name: n}
		if len(pol.GetPermissions()) == 0 {
			return nil, fieldErr(append(pp, "permissions"), "at least one permission is required")
		}
		if len(pol.GetPrincipals()) == 0 {
			return nil, fieldErr(append(pp, "principals"), "at least one principal is required")
		}
		for i, perm := range pol.GetPermissions() {
			d, err := decodePermission(perm, append(pp, "permissions", "["+strconv.Itoa(i)+"]"), scope, 0)
			if err != nil {
				return nil, err
			}
			dp.Permissions = append(dp.Permissions, d)
		}
		for i, prin := range pol.GetPrincipals() {
			d, err := decodePrincipal(prin, append(pp, "principals", "["+strconv.Itoa(i)+"]"), scope, 0)
			if err != nil {
				return nil, err
			}
			dp.Principals = append(dp.Principals, d)
		}
		out.Policies = append(out.Policies, dp)
	}
	return out, nil
}

func cidr(c *corev3.CidrRange, p path) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fieldErr(append(p, "address_prefix"), "%q is not an IP address", c.GetAddressPrefix())
	}
	bits := a.BitLen()
	if v := c.GetPrefixLen(); v != nil {
		bits = int(v.GetValue())
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, fieldErr(append(p, "prefix_len"), "%d exceeds the address length %d", bits, a.BitLen())
	}
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

func decodePermission(m *rbacv3.Permission, p path, scope rbacScope, depth int) (*Permission, error) {
	if depth > maxRBACDepth {
		return nil, fieldErr(p, "rules nested deeper than %d", maxRBACDepth)
	}
	set := func(kind PermissionKind, rules []*rbacv3.Permission, field string) (*Permission, error) {
		if len(rules) == 0 {
			return nil, fieldErr(append(p, field, "rules"), "at least one rule is required")
		}
		out := &Permission{Kind: kind}
		for i, r := range rules {
			d, err := decodePermission(r, append(p, field, "rules", "["+strconv.Itoa(i)+"]"), scope, depth+1)
			if err != nil {
				return nil, err
			}
			out.Rules = append(out.Rules, d)
		}
		return out, nil
	}
	switch r := m.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return nil, fieldErr(append(p, "any"), "must be true")
		}
		return &Permission{Kind: PermAny}, nil
	case *rbacv3.Permission_AndRules:
		return set(PermAnd, r.AndRules.GetRules(), "and_rules")
	case *rbacv3.Permission_OrRules:
		return set(PermOr, r.OrRules.GetRules(), "or_rules")
	case *rbacv3.Permission_NotRule:
		d, err := decodePermission(r.NotRule, append(p, "not_rule"), scope, depth+1)
		if err != nil {
			return nil, err
		}
		return &Permission{Kind: PermNot, Not: d}, nil
	case *rbacv3.Permission_Header:
		if scope == scopeNetwork {
			// Envoy would match it against an empty header map, where
			// an inverted matcher matches every connection: refused
			// rather than carried with that surprise.
			return nil, fieldErr(append(p, "header"), "a request rule; the network RBAC filter has no request")
		}
		hm, err := headerMatch(r.Header, append(p, "header"))
		if err != nil {
			return nil, err
		}
		return &Permission{Kind: PermHeader, Header: hm}, nil
	case *rbacv3.Permission_UrlPath:
		if scope == scopeNetwork {
			return nil, fieldErr(append(p, "url_path"), "a request rule; the network RBAC filter has no request")
		}
		sm, err := stringMatch(r.UrlPath.GetPath(), append(p, "url_path", "path"))
		if err != nil {
			return nil, err
		}
		return &Permission{Kind: PermURLPath, Path: sm}, nil
	case *rbacv3.Permission_DestinationIp:
		c, err := cidr(r.DestinationIp, append(p, "destination_ip"))
		if err != nil {
			return nil, err
		}
		return &Permission{Kind: PermDestinationIP, CIDR: c}, nil
	case *rbacv3.Permission_DestinationPort:
		return &Permission{Kind: PermDestinationPort, Port: r.DestinationPort}, nil
	case *rbacv3.Permission_DestinationPortRange:
		s, e := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if s < 0 || e < s {
			return nil, fieldErr(append(p, "destination_port_range"), "[%d, %d) is not a port range", s, e)
		}
		return &Permission{Kind: PermDestinationPortRange, PortStart: uint32(s), PortEnd: uint32(e)}, nil
	case *rbacv3.Permission_RequestedServerName:
		if scope != scopeNetwork {
			// The connection manager does not hand the SNI to its
			// filters.
			return nil, fieldErr(append(p, "requested_server_name"), "only supported by nodemesh-proxy in the network RBAC filter")
		}
		sm, err := stringMatch(r.RequestedServerName, append(p, "requested_server_name"))
		if err != nil {
			return nil, err
		}
		return &Permission{Kind: PermRequestedServerName, ServerName: sm}, nil
	}
	return nil, fieldErr(p, "a rule is required")
}

func decodePrincipal(m *rbacv3.Principal, p path, scope rbacScope, depth int) (*Principal, error) {
	if depth > maxRBACDepth {
		return nil, fieldErr(p, "identifiers nested deeper than %d", maxRBACDepth)
	}
	set := func(kind PrincipalKind, ids []*rbacv3.Principal, field string) (*Principal, error) {
		if len(ids) == 0 {
			return nil, fieldErr(append(p, field, "ids"), "at least one identifier is required")
		}
		out := &Principal{Kind: kind}
		for i, r := range ids {
			d, err := decodePrincipal(r, append(p, field, "ids", "["+strconv.Itoa(i)+"]"), scope, depth+1)
			if err != nil {
				return nil, err
			}
			out.IDs = append(out.IDs, d)
		}
		return out, nil
	}
	switch r := m.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return nil, fieldErr(append(p, "any"), "must be true")
		}
		return &Principal{Kind: PrinAny}, nil
	case *rbacv3.Principal_AndIds:
		return set(PrinAnd, r.AndIds.GetIds(), "and_ids")
	case *rbacv3.Principal_OrIds:
		return set(PrinOr, r.OrIds.GetIds(), "or_ids")
	case *rbacv3.Principal_NotId:
		d, err := decodePrincipal(r.NotId, append(p, "not_id"), scope, depth+1)
		if err != nil {
			return nil, err
		}
		return &Principal{Kind: PrinNot, Not: d}, nil
	case *rbacv3.Principal_DirectRemoteIp:
		c, err := cidr(r.DirectRemoteIp, append(p, "direct_remote_ip"))
		if err != nil {
			return nil, err
		}
		return &Principal{Kind: PrinDirectRemoteIP, CIDR: c}, nil
	case *rbacv3.Principal_SourceIp:
		// The connection's remote address, which the proxy (without a
		// PROXY protocol listener filter) never rewrites: the direct
		// peer, in either filter.
		c, err := cidr(r.SourceIp, append(p, "source_ip"))
		if err != nil {
			return nil, err
		}
		return &Principal{Kind: PrinDirectRemoteIP, CIDR: c}, nil
	case *rbacv3.Principal_RemoteIp:
		if scope != scopeNetwork {
			// Per request it is the x-forwarded-for derived client,
			// which the connection manager does not hand to its filters.
			return nil, fieldErr(append(p, "remote_ip"), "only supported by nodemesh-proxy in the network RBAC filter; use direct_remote_ip")
		}
		// On a connection it is the peer address (no PROXY protocol).
		c, err := cidr(r.RemoteIp, append(p, "remote_ip"))
		if err != nil {
			return nil, err
		}
		return &Principal{Kind: PrinDirectRemoteIP, CIDR: c}, nil
	case *rbacv3.Principal_FilterState:
		return decodeSourceIdentity(r.FilterState, append(p, "filter_state"))
	case *rbacv3.Principal_Authenticated_:
		out := &Principal{Kind: PrinAuthenticated}
		if pn := r.Authenticated.GetPrincipalName(); pn != nil {
			sm, err := stringMatch(pn, append(p, "authenticated", "principal_name"))
			if err != nil {
				return nil, err
			}
			out.Name = &sm
		}
		return out, nil
	}
	return nil, fieldErr(p, "an identifier is required")
}

// decodeSourceIdentity decodes the one filter state principal the proxy
// knows: the datapath source identity, matched exactly.
func decodeSourceIdentity(m *matcherv3.FilterStateMatcher, p path) (*Principal, error) {
	if m.GetKey() != datapathv1.SourceIdentityKey {
		return nil, fieldErr(append(p, "key"), "only %q is supported by nodemesh-proxy", datapathv1.SourceIdentityKey)
	}
	sm := m.GetStringMatch()
	exact, ok := sm.GetMatchPattern().(*matcherv3.StringMatcher_Exact)
	if !ok || sm.GetIgnoreCase() {
		return nil, fieldErr(append(p, "string_match"), "only an exact match of the decimal identity is supported")
	}
	id, err := strconv.ParseUint(exact.Exact, 10, 32)
	if err != nil || id == 0 || strconv.FormatUint(id, 10) != exact.Exact {
		return nil, fieldErr(append(p, "string_match", "exact"), "%q is not a non-zero decimal identity", exact.Exact)
	}
	return &Principal{Kind: PrinSourceIdentity, Identity: uint32(id)}, nil
}
