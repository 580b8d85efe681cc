package translator

import (
	"fmt"
	"net/netip"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
	datapathv1 "github.com/nodemesh/nodemesh/proxylib/api/datapath/v1"
)

// rbacConfig builds the RBAC filter configuration of one direction: an
// ALLOW policy per IR HTTP policy, so a request passes when any of them
// matches and is denied (403) otherwise.
//
// The local workload is the destination for ingress and the source for
// egress: ingress permissions name the endpoint addresses
// (destination_ip) and principals the peers (direct_remote_ip, the
// connection's real source under TPROXY); egress permissions name the
// peers as destinations and principals the endpoints. A peer term with
// exceptions is "inside the prefix and not inside any exception"
// (and_ids/not_id, and_rules/not_rule).
func (b *builder) rbacConfig(p *ir.Policy, l *ir.PolicyListener) (*corev3.TypedExtensionConfig, error) {
	return b.extensionConfig(rbacExtensionName(l.Direction), &rbacfilterv3.RBAC{
		Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: rbacPolicies(p, l.Direction)},
	})
}

// hasIngressHTTP reports whether any local endpoint has ingress HTTP
// rules.
func hasIngressHTTP(p *ir.Policy) bool {
	for _, h := range p.HTTP {
		if h.Direction == ir.PolicyIngress {
			return true
		}
	}
	return false
}

// destinationRBAC is what the egress listener checks after its own rules
// when the destination is a local endpoint with ingress HTTP rules: the
// datapath never redirects the proxy's own connections again, so the
// destination's ingress rules are enforced on this hop. Destinations
// without ingress HTTP rules (on this node) are allowed by the extra
// policy unpolicedDestination; a local destination that is L7-policed at
// ingress but has no rule for this client cannot be reached anyway (its
// datapath rows do not allow the client).
func destinationRBAC(p *ir.Policy) *rbacfilterv3.RBAC {
	policies := rbacPolicies(p, ir.PolicyIngress)
	var policed []*rbacv3.Permission
	seen := map[string]bool{}
	for _, h := range p.HTTP {
		if h.Direction != ir.PolicyIngress {
			continue
		}
		key := fmt.Sprint(h.Endpoints, h.Port)
		if seen[key] {
			continue
		}
		seen[key] = true
		policed = append(policed, &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
			anyPermission(destinationIPs(h.Endpoints)),
			{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: h.Port}},
		}}}})
	}
	policies[unpolicedDestination] = &rbacv3.Policy{
		Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_NotRule{NotRule: anyPermission(policed)}}},
		Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
	}
	return &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: policies}}
}

// unpolicedDestination names the destination RBAC's allowance for
// destinations without ingress HTTP rules; IR policy names never start
// with "nodemesh/".
const unpolicedDestination = "nodemesh/destination-without-ingress-http-rules"

// rbacPolicies builds one RBAC policy per IR HTTP policy of a direction.
func rbacPolicies(p *ir.Policy, d ir.PolicyDirection) map[string]*rbacv3.Policy {
	policies := map[string]*rbacv3.Policy{}
	for _, h := range p.HTTP {
		if h.Direction != d {
			continue
		}
		perms := []*rbacv3.Permission{}
		var principal *rbacv3.Principal
		if h.Direction == ir.PolicyIngress {
			perms = append(perms, anyPermission(destinationIPs(h.Endpoints)))
			principal = identityPeerPrincipal(h.Peers)
		} else {
			perms = append(perms, peerPermission(h.Peers))
			principal = anyPrincipal(remoteIPs(h.Endpoints))
		}
		perms = append(perms, &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: h.Port}})
		perms = append(perms, requestPermissions(h.Request)...)
		policies[h.Name] = &rbacv3.Policy{
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: perms}}}},
			Principals:  []*rbacv3.Principal{principal},
		}
	}
	return policies
}

// requestPermissions are the request matchers of a rule: method, path (as
// sent, with its query, like Cilium's :path match) and Host as RE2 full
// matches, and required headers.
func requestPermissions(r *ir.HTTPRequestRule) []*rbacv3.Permission {
	if r == nil {
		return nil
	}
	var out []*rbacv3.Permission
	regex := func(name, expr string) {
		if expr == "" {
			return
		}
		out = append(out, headerPermission(&routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: expr}}},
		}}))
	}
	regex(":method", r.Method)
	regex(":path", r.Path)
	regex(":authority", r.Host)
	for _, h := range r.Headers {
		m := &routev3.HeaderMatcher{Name: h.Name}
		if h.Present {
			m.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		} else {
			m.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Value},
			}}
		}
		out = append(out, headerPermission(m))
	}
	return out
}

func headerPermission(m *routev3.HeaderMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: m}}
}

func cidr(prefix string) *corev3.CidrRange {
	p := netip.MustParsePrefix(prefix) // validated by ir.Config.Validate
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

func destinationIPs(prefixes []string) []*rbacv3.Permission {
	out := make([]*rbacv3.Permission, len(prefixes))
	for i, p := range prefixes {
		out[i] = &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidr(p)}}
	}
	return out
}

func remoteIPs(prefixes []string) []*rbacv3.Principal {
	out := make([]*rbacv3.Principal, len(prefixes))
	for i, p := range prefixes {
		out[i] = &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(p)}}
	}
	return out
}

// anyPermission is one permission, or an or_rules of several.
func anyPermission(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

// anyPrincipal is one principal, or an or_ids of several.
func anyPrincipal(ps []*rbacv3.Principal) *rbacv3.Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ps}}}
}

func peerPrincipal(s ir.PeerSet) *rbacv3.Principal {
	if s.Any {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	}
	ids := make([]*rbacv3.Principal, len(s.Terms))
	for i, t := range s.Terms {
		in := remoteIPs([]string{t.Prefix})[0]
		if len(t.Except) == 0 {
			ids[i] = in
			continue
		}
		ids[i] = &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: []*rbacv3.Principal{
			in, {Identifier: &rbacv3.Principal_NotId{NotId: anyPrincipal(remoteIPs(t.Except))}},
		}}}}
	}
	return anyPrincipal(ids)
}

// identityPeerPrincipal is peerPrincipal that also matches the peers'
// identities, as the datapath identity listener filter reports them
// (filter_state datapathv1.SourceIdentityKey, the decimal identity). A
// connection whose identity the datapath took from a routing mark is
// never matched by its address there, only by these.
func identityPeerPrincipal(s ir.PeerSet) *rbacv3.Principal {
	if s.Any || len(s.Identities) == 0 {
		return peerPrincipal(s)
	}
	var ids []*rbacv3.Principal
	if len(s.Terms) > 0 {
		ids = append(ids, peerPrincipal(ir.PeerSet{Terms: s.Terms}))
	}
	for _, id := range s.Identities {
		ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_FilterState{FilterState: &matcherv3.FilterStateMatcher{
			Key: datapathv1.SourceIdentityKey,
			Matcher: &matcherv3.FilterStateMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: strconv.FormatUint(uint64(id), 10)},
			}},
		}}})
	}
	return anyPrincipal(ids)
}

func peerPermission(s ir.PeerSet) *rbacv3.Permission {
	if s.Any {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	rules := make([]*rbacv3.Permission, len(s.Terms))
	for i, t := range s.Terms {
		in := destinationIPs([]string{t.Prefix})[0]
		if len(t.Except) == 0 {
			rules[i] = in
			continue
		}
		rules[i] = &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
			in, {Rule: &rbacv3.Permission_NotRule{NotRule: anyPermission(destinationIPs(t.Except))}},
		}}}}
	}
	return anyPermission(rules)
}
