package policy

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// l7 builds the proxy's policy: for every key whose filter has an L7
// kind, one policy per L7 rule of every contribution allowing it, plus an
// allow-all policy for every L4-only (same port) or L3-only (every port)
// contribution, which nullifies the L7 restriction for its peers.
// Policies coming from the same rule and port are merged across local
// identities (their endpoints are joined).
func (t *table) l7(ev *evaluator, opts Options) *ir.Policy {
	type merged struct {
		http      *ir.HTTPPolicy
		kafka     *ir.KafkaPolicy
		endpoints map[netip.Prefix]bool
	}
	out := map[string]*merged{}
	listeners := map[string]*ir.PolicyListener{}
	for _, gk := range t.sortedGroups() {
		g := t.groups[gk]
		dir := irDirection(gk.dir)
		for _, key := range g.sortedKeys() {
			f := g.filters[key]
			if f.kind == l7None {
				continue
			}
			lname := ir.PolicyListenerName(dir, f.kind.protocol())
			if listeners[lname] == nil {
				listeners[lname] = &ir.PolicyListener{Name: lname, Direction: dir, Protocol: f.kind.protocol(),
					Address: opts.Listeners.Address, Port: uint32(opts.Listeners.port(gk.dir, f.kind)),
					OriginalSource: opts.Listeners.OriginalSource, ConntrackMap: opts.Listeners.ConntrackMap}
			}
			endpoints := ev.endpointPrefixes(gk.subject)
			contribs := append([]*contribution(nil), f.allows...)
			for _, wide := range []l4{{model.ProtoAny, 0}, {model.ProtoTCP, 0}} {
				if wf := g.filters[wide]; wf != nil {
					contribs = append(contribs, wf.allows...)
				}
			}
			byIdentity := dir == ir.PolicyIngress && f.kind == l7HTTP && opts.Listeners.ConntrackMap != ""
			for _, c := range contribs {
				peers := ev.peerSet(c)
				if peers == nil || len(peers.Terms) == 0 && !peers.Any && !byIdentity {
					continue // the peers have no address: nothing can match
				}
				if !byIdentity && len(peers.Identities) > 0 {
					// Only an ingress HTTP listener that reads the
					// datapath's identities matches them.
					byAddr := *peers
					byAddr.Identities = nil
					peers = &byAddr
				}
				add := func(name string, http *ir.HTTPRequestRule, kafka *ir.KafkaRequestRule) {
					id := string(dir) + " " + name
					m := out[id]
					if m == nil {
						m = &merged{endpoints: map[netip.Prefix]bool{}}
						if f.kind == l7HTTP {
							m.http = &ir.HTTPPolicy{Name: name, Direction: dir, Port: uint32(key.port), Peers: *peers, Request: http}
						} else {
							m.kafka = &ir.KafkaPolicy{Name: name, Direction: dir, Port: uint32(key.port), Peers: *peers, Request: kafka}
						}
						out[id] = m
					}
					for _, e := range endpoints {
						m.endpoints[e] = true
					}
				}
				if c.kind() == f.kind {
					for _, e := range c.pr.l7 {
						add(fmt.Sprintf("%s/port/%d/%s/%d", c.rule.name, key.port, f.kind, c.pr.base+e.idx), e.http, e.kafka)
					}
				} else {
					add(fmt.Sprintf("%s/port/%d", c.rule.name, key.port), nil, nil)
				}
			}
		}
	}
	if len(listeners) == 0 {
		return nil
	}
	p := &ir.Policy{UpstreamMark: opts.UpstreamMark, AccessLogSocket: opts.AccessLogSocket}
	for _, l := range listeners {
		p.Listeners = append(p.Listeners, l)
	}
	sort.Slice(p.Listeners, func(i, j int) bool { return p.Listeners[i].Name < p.Listeners[j].Name })
	for _, m := range out {
		eps := sortedPrefixes(m.endpoints)
		if m.http != nil {
			m.http.Endpoints = eps
			p.HTTP = append(p.HTTP, m.http)
		} else {
			m.kafka.Endpoints = eps
			p.Kafka = append(p.Kafka, m.kafka)
		}
	}
	sort.Slice(p.HTTP, func(i, j int) bool {
		a, b := p.HTTP[i], p.HTTP[j]
		return a.Direction < b.Direction || a.Direction == b.Direction && a.Name < b.Name
	})
	sort.Slice(p.Kafka, func(i, j int) bool {
		a, b := p.Kafka[i], p.Kafka[j]
		return a.Direction < b.Direction || a.Direction == b.Direction && a.Name < b.Name
	})
	return p
}

func irDirection(d model.Direction) ir.PolicyDirection {
	if d == model.Egress {
		return ir.PolicyEgress
	}
	return ir.PolicyIngress
}

func sortedPrefixes(m map[netip.Prefix]bool) []string {
	ps := make([]netip.Prefix, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sortPrefixes(ps)
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func sortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}

// endpointPrefixes are the local addresses of an identity.
func (ev *evaluator) endpointPrefixes(id model.Identity) []netip.Prefix {
	var out []netip.Prefix
	for _, ep := range ev.localBy[id] {
		for _, a := range ep.IPs {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

// peerSet expresses a contribution's remote identities as addresses, from
// the ipcache: every prefix of a member identity, minus the more specific
// prefixes of non-members inside it; world adds 0.0.0.0/0 and ::/0 minus
// every prefix of a non-member. The result holds for an address exactly
// when the ipcache's longest match (world when nothing matches) is a
// member. Nil means no address can match.
func (ev *evaluator) peerSet(c *contribution) *ir.PeerSet {
	if c.peerAll {
		return &ir.PeerSet{Any: true}
	}
	if ps, ok := ev.peerSets[c.rule]; ok {
		return ps
	}
	member := map[model.Identity]bool{}
	for _, id := range c.peerIDs {
		member[id] = true
	}
	cache := ev.st.IPCache
	var terms []ir.AddressTerm
	except := func(outer netip.Prefix) []string {
		if outer.IsSingleIP() {
			return nil // nothing is more specific than one address
		}
		var ex []netip.Prefix
		for _, e := range cache {
			if !member[e.Identity] && e.Prefix.Bits() > outer.Bits() && outer.Contains(e.Prefix.Addr()) {
				ex = append(ex, e.Prefix)
			}
		}
		out := make([]string, len(ex))
		for i, p := range ex {
			out[i] = p.String()
		}
		return out
	}
	for _, e := range cache {
		if member[e.Identity] {
			terms = append(terms, ir.AddressTerm{Prefix: e.Prefix.String(), Except: except(e.Prefix)})
		}
	}
	if member[model.IdentityWorld] {
		for _, all := range []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")} {
			terms = append(terms, ir.AddressTerm{Prefix: all.String(), Except: except(all)})
		}
	}
	var ids []uint32
	for id := range member {
		if id != 0 {
			ids = append(ids, uint32(id))
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var ps *ir.PeerSet
	if len(terms) > 0 || len(ids) > 0 {
		ps = &ir.PeerSet{Terms: terms, Identities: ids}
	}
	ev.peerSets[c.rule] = ps
	return ps
}
