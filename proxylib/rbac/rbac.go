package rbac

import (
	"bytes"
	"crypto/x509"
	"net/netip"
	"sort"

	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/route"
)

// Input is the request view RBAC decides on. Req's Path includes the query.
type Input struct {
	Req    *route.Request
	Local  netip.AddrPort // the connection's (original) destination
	Remote netip.AddrPort // the downstream peer
	// Peer holds the peer certificate's URI SANs, DNS SANs and subject, in
	// that order; Authenticated says a client certificate was verified.
	Peer          []string
	Authenticated bool
	// ServerName is the connection's requested server name (SNI), empty
	// without one; only the network filter's requested_server_name
	// reads it.
	ServerName []byte
	// Identity is the source identity the datapath judged the connection
	// with (the datapath identity listener filter), 0 when unknown.
	// IdentityOnly says the peer address does not stand for it (the
	// datapath took it from a routing listener's mark): address
	// principals never match, only the identity judges the peer.
	Identity     uint32
	IdentityOnly bool
}

// AppendPeerNames appends the names an authenticated principal matches
// of a client certificate leaf to dst: its URI SANs, its DNS SANs, then
// its subject, the order Envoy tries them in.
func AppendPeerNames(dst []string, leaf *x509.Certificate) []string {
	for _, u := range leaf.URIs {
		dst = append(dst, u.String())
	}
	dst = append(dst, leaf.DNSNames...)
	return append(dst, leaf.Subject.String())
}

// Engine is a compiled RBAC configuration.
type Engine struct {
	cfg      *resource.RBAC
	byDst    map[netip.Addr][]int32 // policy indices pinned to a destination, ascending
	wildcard []int32                // policies not pinned, ascending
}

// New compiles cfg; nil or rule-less configurations allow everything.
func New(cfg *resource.RBAC) *Engine {
	if cfg == nil || !cfg.Enforce {
		return &Engine{cfg: cfg}
	}
	cfg = cheapFirst(cfg)
	e := &Engine{cfg: cfg}
	e.byDst = map[netip.Addr][]int32{}
	for i, p := range cfg.Policies {
		dsts, ok := pinned(p)
		if !ok {
			e.wildcard = append(e.wildcard, int32(i))
			continue
		}
		for a := range dsts {
			e.byDst[a] = append(e.byDst[a], int32(i))
		}
	}
	return e
}

// Enforcing reports whether the engine can deny anything.
func (e *Engine) Enforcing() bool { return e != nil && e.cfg != nil && e.cfg.Enforce }

// pinned returns the destination addresses every permission of p requires,
// or false when some permission admits other destinations.
func pinned(p *resource.RBACPolicy) (map[netip.Addr]bool, bool) {
	out := map[netip.Addr]bool{}
	for _, perm := range p.Permissions {
		s, ok := required(perm)
		if !ok {
			return nil, false
		}
		for a := range s {
			out[a] = true
		}
	}
	return out, true
}

// required returns a set of addresses one of which a request's destination
// must equal for perm to match, or false when there is no such bound.
func required(perm *resource.Permission) (map[netip.Addr]bool, bool) {
	switch perm.Kind {
	case resource.PermDestinationIP:
		if perm.CIDR.IsSingleIP() {
			return map[netip.Addr]bool{perm.CIDR.Addr(): true}, true
		}
	case resource.PermAnd:
		for _, r := range perm.Rules {
			if s, ok := required(r); ok {
				return s, true
			}
		}
	case resource.PermOr:
		out := map[netip.Addr]bool{}
		for _, r := range perm.Rules {
			s, ok := required(r)
			if !ok {
				return nil, false
			}
			for a := range s {
				out[a] = true
			}
		}
		return out, true
	}
	return nil, false
}

// Evaluate decides a request: allowed, and the name of the policy that
// matched ("" when none did).
func (e *Engine) Evaluate(in *Input) (bool, string) {
	if !e.Enforcing() {
		return true, ""
	}
	pinned := e.byDst[in.Local.Addr().Unmap()]
	i, j := 0, 0
	for i < len(pinned) || j < len(e.wildcard) {
		var k int32
		switch {
		case j == len(e.wildcard) || (i < len(pinned) && pinned[i] < e.wildcard[j]):
			k = pinned[i]
			i++
		default:
			k = e.wildcard[j]
			j++
		}
		if p := e.cfg.Policies[k]; policyMatches(p, in) {
			return e.cfg.Action == resource.RBACAllow, p.Name
		}
	}
	return e.cfg.Action == resource.RBACDeny, ""
}

// EvaluateLinear decides without the index, trying every policy in order.
// It is the reference Evaluate is checked against.
func (e *Engine) EvaluateLinear(in *Input) (bool, string) {
	if !e.Enforcing() {
		return true, ""
	}
	for _, p := range e.cfg.Policies {
		if policyMatches(p, in) {
			return e.cfg.Action == resource.RBACAllow, p.Name
		}
	}
	return e.cfg.Action == resource.RBACDeny, ""
}

// Matches reports whether one policy matches a request: any of its
// permissions and any of its principals, as Evaluate judges each policy.
func Matches(p *resource.RBACPolicy, in *Input) bool { return policyMatches(p, in) }

func policyMatches(p *resource.RBACPolicy, in *Input) bool {
	ok := false
	for _, perm := range p.Permissions {
		if permission(perm, in) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, prin := range p.Principals {
		if principal(prin, in) {
			return true
		}
	}
	return false
}

func permission(p *resource.Permission, in *Input) bool {
	switch p.Kind {
	case resource.PermAny:
		return true
	case resource.PermAnd:
		for _, r := range p.Rules {
			if !permission(r, in) {
				return false
			}
		}
		return true
	case resource.PermOr:
		for _, r := range p.Rules {
			if permission(r, in) {
				return true
			}
		}
		return false
	case resource.PermNot:
		return !permission(p.Not, in)
	case resource.PermHeader:
		return in.Req != nil && in.Req.MatchHeader(&p.Header)
	case resource.PermURLPath:
		if in.Req == nil {
			return false
		}
		return p.Path.Match(urlPath(in.Req.Path))
	case resource.PermDestinationIP:
		return in.Local.IsValid() && p.CIDR.Contains(in.Local.Addr().Unmap())
	case resource.PermDestinationPort:
		return in.Local.IsValid() && uint32(in.Local.Port()) == p.Port
	case resource.PermDestinationPortRange:
		port := uint32(in.Local.Port())
		return in.Local.IsValid() && port >= p.PortStart && port < p.PortEnd
	case resource.PermRequestedServerName:
		return p.ServerName.Match(in.ServerName)
	}
	return false
}

func principal(p *resource.Principal, in *Input) bool {
	switch p.Kind {
	case resource.PrinAny:
		return true
	case resource.PrinAnd:
		for _, r := range p.IDs {
			if !principal(r, in) {
				return false
			}
		}
		return true
	case resource.PrinOr:
		for _, r := range p.IDs {
			if principal(r, in) {
				return true
			}
		}
		return false
	case resource.PrinNot:
		return !principal(p.Not, in)
	case resource.PrinDirectRemoteIP:
		return !in.IdentityOnly && in.Remote.IsValid() && p.CIDR.Contains(in.Remote.Addr().Unmap())
	case resource.PrinSourceIdentity:
		return in.Identity != 0 && in.Identity == p.Identity
	case resource.PrinAuthenticated:
		if !in.Authenticated {
			return false
		}
		if p.Name == nil {
			return true
		}
		for _, n := range in.Peer {
			if p.Name.Match([]byte(n)) {
				return true
			}
		}
		return false
	}
	return false
}

// urlPath strips the query and fragment from a request path.
func urlPath(p []byte) []byte {
	if i := bytes.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// Policies returns the policy names in evaluation order.
func (e *Engine) Policies() []string {
	if e == nil || e.cfg == nil {
		return nil
	}
	out := make([]string, len(e.cfg.Policies))
	for i, p := range e.cfg.Policies {
		out[i] = p.Name
	}
	sort.Strings(out)
	return out
}

// cheapFirst returns a copy of cfg whose and_rules try cheap, selective
// checks (addresses, ports, literal prefixes) before regular expressions.
// Rules are pure predicates, so the order never changes a verdict; the
// decoded configuration itself is shared and left untouched.
func cheapFirst(cfg *resource.RBAC) *resource.RBAC {
	out := *cfg
	out.Policies = make([]*resource.RBACPolicy, len(cfg.Policies))
	for i, p := range cfg.Policies {
		cp := *p
		cp.Permissions = make([]*resource.Permission, len(p.Permissions))
		for j, perm := range p.Permissions {
			cp.Permissions[j], _ = reorder(perm)
		}
		out.Policies[i] = &cp
	}
	return &out
}

// reorder returns perm with its and_rules sorted by cost, and its cost.
func reorder(perm *resource.Permission) (*resource.Permission, int) {
	switch perm.Kind {
	case resource.PermAny, resource.PermDestinationIP, resource.PermDestinationPort, resource.PermDestinationPortRange:
		return perm, 0
	case resource.PermHeader:
		if perm.Header.Kind == resource.HeaderString {
			return perm, matchCost(&perm.Header.String)
		}
		return perm, 1
	case resource.PermURLPath:
		return perm, matchCost(&perm.Path)
	case resource.PermRequestedServerName:
		return perm, matchCost(&perm.ServerName)
	case resource.PermNot:
		n, c := reorder(perm.Not)
		cp := *perm
		cp.Not = n
		return &cp, c
	}
	cp := *perm
	cp.Rules = make([]*resource.Permission, len(perm.Rules))
	costs := make([]int, len(perm.Rules))
	total := 0
	for i, r := range perm.Rules {
		cp.Rules[i], costs[i] = reorder(r)
		total += costs[i]
	}
	if perm.Kind == resource.PermAnd {
		idx := make([]int, len(cp.Rules))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return costs[idx[a]] < costs[idx[b]] })
		sorted := make([]*resource.Permission, len(idx))
		for i, k := range idx {
			sorted[i] = cp.Rules[k]
		}
		cp.Rules = sorted
	}
	return &cp, total
}

func matchCost(m *resource.StringMatch) int {
	switch {
	case m.Regex == nil, m.RegexLiteral:
		return 1
	case m.RegexPrefix != "":
		return 2
	}
	return 3
}
