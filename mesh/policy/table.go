package policy

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
)

// table merges the contributions of every accepted policy, per local
// identity and direction.
type table struct {
	groups map[groupKey]*group
}

type groupKey struct {
	subject model.Identity
	dir     model.Direction
}

type group struct {
	// enables: some selecting rule turns on default deny; firstRule names
	// the first selecting rule (for the allow-all row's cookie).
	enables   bool
	firstRule string
	filters   map[l4]*filter
}

// filter is everything said about one datapath key.
type filter struct {
	kind     l7Kind
	kindRule string // the rule that set kind, for conflict errors
	allows   []*contribution
	denies   []*contribution
}

func newTable() *table { return &table{groups: map[groupKey]*group{}} }

// add merges the contributions of one policy, or none of them: different
// L7 kinds on one key are a conflict, reported naming both rules.
func (t *table) add(cs []*contribution) error {
	pending := map[groupKey]map[l4]string{}
	for _, c := range cs {
		k := c.kind()
		if c.mark || k == l7None {
			continue
		}
		gk := groupKey{c.subject, c.rule.dir}
		if g := t.groups[gk]; g != nil {
			if f := g.filters[c.key]; f != nil && f.kind != l7None && f.kind != k {
				return conflict(c, f.kind, f.kindRule)
			}
		}
		if pending[gk] == nil {
			pending[gk] = map[l4]string{}
		}
		if prev, ok := pending[gk][c.key]; ok && prev[0] != byte(k) {
			return conflict(c, l7Kind(prev[0]), prev[1:])
		}
		pending[gk][c.key] = string(byte(k)) + c.rule.name
	}
	for _, c := range cs {
		gk := groupKey{c.subject, c.rule.dir}
		g := t.groups[gk]
		if g == nil {
			g = &group{filters: map[l4]*filter{}, firstRule: c.rule.name}
			t.groups[gk] = g
		}
		if c.mark {
			g.enables = g.enables || c.rule.enables
			continue
		}
		f := g.filters[c.key]
		if f == nil {
			f = &filter{}
			g.filters[c.key] = f
		}
		if k := c.kind(); k != l7None && f.kind == l7None {
			f.kind, f.kindRule = k, c.rule.name
		}
		if c.rule.deny {
			f.denies = append(f.denies, c)
		} else {
			f.allows = append(f.allows, c)
		}
	}
	return nil
}

// proxiedRules are the rules allowing flows the datapath redirects to
// the proxy: those on a port with L7 rules, and the L3-only and any-port
// rules of the same endpoint, whose allow-all policies the proxy applies
// on such a port (see l7).
func (t *table) proxiedRules() map[*rule]bool {
	out := map[*rule]bool{}
	for _, g := range t.groups {
		l7 := false
		for _, f := range g.filters {
			if f.kind == l7None {
				continue
			}
			l7 = true
			for _, c := range f.allows {
				out[c.rule] = true
			}
		}
		if !l7 {
			continue
		}
		for _, wide := range []l4{{model.ProtoAny, 0}, {model.ProtoTCP, 0}} {
			if wf := g.filters[wide]; wf != nil {
				for _, c := range wf.allows {
					out[c.rule] = true
				}
			}
		}
	}
	return out
}

func conflict(c *contribution, other l7Kind, otherRule string) error {
	return fmt.Errorf("%s: %s rules on %s %s of identity %d conflict with the %s rules of %s on the same port",
		c.rule.name, c.kind(), c.rule.dir, c.key, c.subject, other, otherRule)
}

// cookie is a stable number for a rule name, echoed in datapath events.
func cookie(name string, cookies map[uint32]string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	v := h.Sum32()
	if v == 0 {
		v = 1
	}
	if _, taken := cookies[v]; !taken {
		cookies[v] = name
	}
	return v
}

// rows builds the datapath table.
func (t *table) rows(l Listeners, cookies map[uint32]string) model.Policy {
	out := model.Policy{Enforce: map[model.Identity]model.Enforcement{}}
	rows := map[model.PolicyKey]*model.PolicyEntry{}
	put := func(e model.PolicyEntry) {
		k := e.Key()
		old := rows[k]
		switch {
		case old == nil:
			rows[k] = &e
		case old.Verdict == model.Deny:
		case e.Verdict == model.Deny:
			rows[k] = &e
		default:
			// Two allows for one key: the same verdict (a key's L7 kind
			// is unique), authentication if either needs it.
			if e.Auth != model.AuthNone {
				old.Auth = e.Auth
			}
			if e.Cookie < old.Cookie {
				old.Cookie = e.Cookie
			}
		}
	}
	for _, gk := range t.sortedGroups() {
		g := t.groups[gk]
		subject := gk.subject
		flag := model.EnforceIngress
		if gk.dir == model.Egress {
			flag = model.EnforceEgress
		}
		out.Enforce[subject] |= flag
		if !g.enables {
			// Selected, but no rule asks for default deny (Cilium's
			// enableDefaultDeny: false): everything stays allowed while
			// the rules' redirects and denies still apply.
			put(model.PolicyEntry{Subject: subject, Remote: model.IdentityAny, Direction: gk.dir,
				Proto: model.ProtoAny, Verdict: model.Allow, Cookie: cookie(g.firstRule, cookies)})
		}
		for _, key := range g.sortedKeys() {
			f := g.filters[key]
			verdict, proxy := model.Allow, uint16(0)
			if f.kind != l7None {
				verdict, proxy = model.Redirect, l.port(gk.dir, f.kind)
			}
			for _, c := range f.allows {
				auth := model.AuthNone
				if c.rule.auth {
					auth = model.AuthSPIFFE
				}
				for _, r := range remotes(c) {
					put(model.PolicyEntry{Subject: subject, Remote: r, Direction: gk.dir, Proto: key.proto, Port: key.port,
						Verdict: verdict, ProxyPort: proxy, Auth: auth, Cookie: cookie(c.rule.name, cookies)})
				}
			}
			for _, c := range f.denies {
				for _, r := range remotes(c) {
					put(model.PolicyEntry{Subject: subject, Remote: r, Direction: gk.dir, Proto: key.proto, Port: key.port,
						Verdict: model.Deny, Cookie: cookie(c.rule.name, cookies)})
				}
			}
		}
	}
	inheritAuth(rows)
	out.Entries = make([]model.PolicyEntry, 0, len(rows))
	for _, e := range rows {
		out.Entries = append(out.Entries, *e)
	}
	sort.Slice(out.Entries, func(i, j int) bool { return keyLess(out.Entries[i].Key(), out.Entries[j].Key()) })
	return out
}

func remotes(c *contribution) []model.Identity {
	if c.peerAll {
		return []model.Identity{model.IdentityAny}
	}
	return c.peerIDs
}

// inheritAuth makes a row require authentication when a less specific
// allow row covering the same flows does: the datapath stops at the most
// specific row, and Cilium requires authentication whenever any rule
// allowing the flow does.
func inheritAuth(rows map[model.PolicyKey]*model.PolicyEntry) {
	for k, e := range rows {
		if e.Verdict == model.Deny || e.Auth != model.AuthNone {
			continue
		}
		for _, remote := range []model.Identity{k.Remote, model.IdentityAny} {
			for _, cover := range []struct {
				proto uint8
				port  uint16
			}{{k.Proto, k.Port}, {k.Proto, 0}, {model.ProtoAny, 0}} {
				ck := model.PolicyKey{Subject: k.Subject, Remote: remote, Direction: k.Direction, Proto: cover.proto, Port: cover.port}
				if ck == k {
					continue
				}
				if c := rows[ck]; c != nil && c.Verdict != model.Deny && c.Auth != model.AuthNone {
					e.Auth = c.Auth
				}
			}
		}
	}
}

func keyLess(a, b model.PolicyKey) bool {
	switch {
	case a.Subject != b.Subject:
		return a.Subject < b.Subject
	case a.Direction != b.Direction:
		return a.Direction < b.Direction
	case a.Proto != b.Proto:
		return a.Proto < b.Proto
	case a.Port != b.Port:
		return a.Port < b.Port
	}
	return a.Remote < b.Remote
}

func (t *table) sortedGroups() []groupKey {
	out := make([]groupKey, 0, len(t.groups))
	for k := range t.groups {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].subject != out[j].subject {
			return out[i].subject < out[j].subject
		}
		return out[i].dir < out[j].dir
	})
	return out
}

func (g *group) sortedKeys() []l4 {
	out := make([]l4, 0, len(g.filters))
	for k := range g.filters {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].proto != out[j].proto {
			return out[i].proto < out[j].proto
		}
		return out[i].port < out[j].port
	})
	return out
}
