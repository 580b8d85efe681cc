package resource

import (
	"net/netip"
	"regexp"
	"strings"

	headermatchv1 "github.com/nodemesh/nodemesh/proxylib/api/headermatch/v1"
)

// decodeHeaderMatch decodes a header match filter configuration. Each
// rule's scope becomes an RBAC policy, so the filter decides where a rule
// applies exactly as the RBAC filter decides where a policy matches.
func decodeHeaderMatch(m *headermatchv1.HeaderMatchPolicy, p path) (*HeaderMatchPolicy, error) {
	if err := m.Validate(); err != nil {
		// Validate renders the field path itself.
		return nil, fieldErr(p, "%v", err)
	}
	out := &HeaderMatchPolicy{}
	for _, r := range m.GetRules() {
		and := &Permission{Kind: PermAnd, Rules: []*Permission{
			{Kind: PermOr, Rules: destinationTerms(r.GetDestinations())},
			{Kind: PermDestinationPort, Port: r.GetDestinationPort()},
		}}
		for _, f := range []struct{ name, expr string }{{":method", r.GetMethod()}, {":path", r.GetPath()}, {":authority", r.GetAuthority()}} {
			if f.expr == "" {
				continue
			}
			re := regexp.MustCompile("^(?:" + f.expr + ")$") // validated above
			and.Rules = append(and.Rules, &Permission{Kind: PermHeader, Header: HeaderMatch{Name: f.name, Kind: HeaderString, String: NewRegexMatch(re)}})
		}
		for _, h := range r.GetHeaders() {
			hm := HeaderMatch{Name: strings.ToLower(h.GetName()), Kind: HeaderPresent, Present: true}
			if !h.GetPresent() {
				hm.Kind, hm.String = HeaderString, StringMatch{Kind: MatchExact, Exact: h.GetValue()}
			}
			and.Rules = append(and.Rules, &Permission{Kind: PermHeader, Header: hm})
		}
		rule := &HeaderMatchRule{Name: r.GetName(), Applies: &RBACPolicy{
			Name:        r.GetName(),
			Permissions: []*Permission{and},
			Principals:  []*Principal{{Kind: PrinOr, IDs: sourceTerms(r.GetSources())}},
		}}
		for _, hm := range r.GetHeaderMatches() {
			rule.Matches = append(rule.Matches, HeaderMatchAction{
				Name:   strings.ToLower(hm.GetName()),
				Value:  hm.GetValue(),
				Action: MismatchAction(hm.GetMismatchAction()), // LOG..REPLACE are 1..4, validated above
				Redact: hm.GetRedact(),
			})
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

// destinationTerms are address terms as destination_ip permissions: in
// the prefix and in none of its exceptions.
func destinationTerms(ts []*headermatchv1.AddressTerm) []*Permission {
	out := make([]*Permission, len(ts))
	for i, t := range ts {
		in := &Permission{Kind: PermDestinationIP, CIDR: mustPrefix(t.GetPrefix())}
		if len(t.GetExcept()) == 0 {
			out[i] = in
			continue
		}
		ex := &Permission{Kind: PermOr}
		for _, e := range t.GetExcept() {
			ex.Rules = append(ex.Rules, &Permission{Kind: PermDestinationIP, CIDR: mustPrefix(e)})
		}
		out[i] = &Permission{Kind: PermAnd, Rules: []*Permission{in, {Kind: PermNot, Not: ex}}}
	}
	return out
}

// sourceTerms are address terms as direct_remote_ip principals.
func sourceTerms(ts []*headermatchv1.AddressTerm) []*Principal {
	out := make([]*Principal, len(ts))
	for i, t := range ts {
		in := &Principal{Kind: PrinDirectRemoteIP, CIDR: mustPrefix(t.GetPrefix())}
		if len(t.GetExcept()) == 0 {
			out[i] = in
			continue
		}
		ex := &Principal{Kind: PrinOr}
		for _, e := range t.GetExcept() {
			ex.IDs = append(ex.IDs, &Principal{Kind: PrinDirectRemoteIP, CIDR: mustPrefix(e)})
		}
		out[i] = &Principal{Kind: PrinAnd, IDs: []*Principal{in, {Kind: PrinNot, Not: ex}}}
	}
	return out
}

// mustPrefix parses a prefix Validate already checked.
func mustPrefix(s string) netip.Prefix {
	p, _ := headermatchv1.ParsePrefix(s)
	return p
}
