package policy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// selector is a conjunction of label requirements on an identity's
// labels. The empty selector matches every identity.
type selector struct {
	reqs []requirement
}

type operator uint8

const (
	opIn operator = iota
	opNotIn
	opExists
	opDoesNotExist
)

type requirement struct {
	source string // identity.SourceAny matches every source
	key    string
	op     operator
	values []string
}

func (r requirement) matches(ls identity.Labels) bool {
	v, ok := ls.Lookup(r.source, r.key)
	switch r.op {
	case opExists:
		return ok
	case opDoesNotExist:
		return !ok
	case opIn:
		return ok && contains(r.values, v)
	case opNotIn:
		return !ok || !contains(r.values, v)
	}
	return false
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func (s selector) matches(ls identity.Labels) bool {
	for _, r := range s.reqs {
		if !r.matches(ls) {
			return false
		}
	}
	return true
}

// mentions reports whether the selector has a requirement on key (any
// source) or on any key of the given source.
func (s selector) mentions(key, source string) bool {
	for _, r := range s.reqs {
		if r.key == key || (source != "" && r.source == source) {
			return true
		}
	}
	return false
}

func (s selector) with(r requirement) selector {
	return selector{reqs: append(append([]requirement(nil), s.reqs...), r)}
}

// parseSelector turns a Cilium endpoint selector into a selector. Keys
// carry their label source ("k8s:app"); keyPrefix is prepended to every
// key after the source is split off (NetworkPolicy namespace selectors
// use it), and defaultSource replaces a missing source.
func parseSelector(es *ciliumv2.EndpointSelector, field string, keyPrefix, defaultSource string) (selector, error) {
	var s selector
	if es == nil {
		return s, nil
	}
	keys := make([]string, 0, len(es.MatchLabels))
	for k := range es.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		src, key, err := selectorKey(k, keyPrefix, defaultSource)
		if err != nil {
			return s, fmt.Errorf("%s.matchLabels[%q]: %w", field, k, err)
		}
		s.reqs = append(s.reqs, requirement{source: src, key: key, op: opIn, values: []string{es.MatchLabels[k]}})
	}
	for i, e := range es.MatchExpressions {
		f := fmt.Sprintf("%s.matchExpressions[%d]", field, i)
		src, key, err := selectorKey(e.Key, keyPrefix, defaultSource)
		if err != nil {
			return s, fmt.Errorf("%s.key: %w", f, err)
		}
		r := requirement{source: src, key: key, values: append([]string(nil), e.Values...)}
		switch e.Operator {
		case "In", "NotIn":
			r.op = opIn
			if e.Operator == "NotIn" {
				r.op = opNotIn
			}
			if len(e.Values) == 0 {
				return s, fmt.Errorf("%s.values: %s needs at least one value", f, e.Operator)
			}
		case "Exists", "DoesNotExist":
			r.op = opExists
			if e.Operator == "DoesNotExist" {
				r.op = opDoesNotExist
			}
			if len(e.Values) > 0 {
				return s, fmt.Errorf("%s.values: %s takes no values", f, e.Operator)
			}
		default:
			return s, fmt.Errorf("%s.operator: unknown operator %q (In, NotIn, Exists, DoesNotExist)", f, e.Operator)
		}
		s.reqs = append(s.reqs, r)
	}
	return s, nil
}

func selectorKey(k, keyPrefix, defaultSource string) (string, string, error) {
	if k == "" {
		return "", "", fmt.Errorf("empty key")
	}
	src, key := identity.ParseSelectorKey(k)
	if src == identity.SourceAny && defaultSource != "" && !strings.HasPrefix(k, identity.SourceAny+":") {
		src = defaultSource
	}
	if key == "" {
		return "", "", fmt.Errorf("empty key after source %q", src)
	}
	return src, keyPrefix + key, nil
}

// peers is who a rule is about on the remote side.
type peers struct {
	// all is the wildcard: every remote identity, known or not.
	all   bool
	sels  []selector
	cidrs []cidrSel
}

func (p peers) empty() bool { return !p.all && len(p.sels) == 0 && len(p.cidrs) == 0 }

// cidrSel selects the CIDR identities inside prefix but not inside any of
// except; a /0 prefix also selects the world identity.
type cidrSel struct {
	prefix netip.Prefix
	except []netip.Prefix
}

func (c cidrSel) matches(id identity.Identity) bool {
	if c.prefix.Bits() == 0 && id.ID == model.IdentityWorld {
		return true
	}
	if !id.Labels.Has(identity.CIDRLabel(c.prefix)) {
		if c.prefix.Bits() != 0 || !isCIDRIdentity(id, c.prefix.Addr().Is4()) {
			return false
		}
	}
	for _, e := range c.except {
		if id.Labels.Has(identity.CIDRLabel(e)) {
			return false
		}
	}
	return true
}

// isCIDRIdentity reports whether id stands for a prefix of the family.
func isCIDRIdentity(id identity.Identity, v4 bool) bool {
	for _, l := range id.Labels {
		if l.Source == identity.SourceCIDR {
			p, err := netip.ParsePrefix(l.Key)
			return err == nil && p.Addr().Is4() == v4
		}
	}
	return false
}

// parseCIDR accepts a prefix or a bare address (a single-address prefix).
func parseCIDR(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		n, ok := identity.NormalizePrefix(p)
		if !ok {
			return netip.Prefix{}, fmt.Errorf("%q: not a usable prefix", s)
		}
		return n, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR prefix nor an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// entitySelectors returns the selectors of a Cilium entity, or all=true
// for "all".
func entitySelectors(entity, cluster string) (sels []selector, all bool, err error) {
	reserved := func(name string) selector {
		return selector{reqs: []requirement{{source: identity.SourceReserved, key: name, op: opExists}}}
	}
	switch entity {
	case "all":
		return nil, true, nil
	case "none":
		return nil, false, nil
	case "world", "world-ipv4", "world-ipv6":
		return []selector{reserved("world")}, false, nil
	case "host", "remote-node", "kube-apiserver", "ingress", "health", "init", "unmanaged":
		return []selector{reserved(entity)}, false, nil
	case "cluster":
		for _, n := range []string{"host", "remote-node", "kube-apiserver", "ingress", "health", "init", "unmanaged"} {
			sels = append(sels, reserved(n))
		}
		sels = append(sels, selector{reqs: []requirement{{source: identity.SourceK8s, key: identity.LabelCluster, op: opIn, values: []string{cluster}}}})
		return sels, false, nil
	}
	return nil, false, fmt.Errorf("unknown entity %q (all, world, world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, ingress, health, init, unmanaged, none)", entity)
}
