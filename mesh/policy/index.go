package policy

import (
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// labelIndex finds the identities a selector can match without looking at
// every identity: a selector with an In requirement of one value only
// needs the identities carrying that key and value (any source); the
// selector is still checked in full on each candidate.
type labelIndex struct {
	ids   []identity.Identity
	byKey map[string][]int // "key\x00value" → positions in ids
}

func newLabelIndex(ids []identity.Identity) *labelIndex {
	x := &labelIndex{ids: ids, byKey: map[string][]int{}}
	for i, id := range ids {
		for _, l := range id.Labels {
			k := l.Key + "\x00" + l.Value
			x.byKey[k] = append(x.byKey[k], i)
		}
	}
	return x
}

// candidates returns the positions worth checking for s, and false when
// every identity must be checked.
func (x *labelIndex) candidates(s selector) ([]int, bool) {
	var best []int
	found := false
	for _, r := range s.reqs {
		if r.op != opIn || len(r.values) != 1 {
			continue
		}
		c := x.byKey[r.key+"\x00"+r.values[0]]
		if !found || len(c) < len(best) {
			best, found = c, true
		}
	}
	return best, found
}

// match calls fn for every identity s matches, in index order.
func (x *labelIndex) match(s selector, fn func(identity.Identity)) {
	if c, ok := x.candidates(s); ok {
		for _, i := range c {
			if s.matches(x.ids[i].Labels) {
				fn(x.ids[i])
			}
		}
		return
	}
	for _, id := range x.ids {
		if s.matches(id.Labels) {
			fn(id)
		}
	}
}

// selectPeers returns the identities p covers, sorted; nil with all=true
// for the wildcard.
func (ev *evaluator) selectPeers(p peers) (ids []model.Identity, all bool) {
	if p.all {
		return nil, true
	}
	seen := map[model.Identity]bool{}
	add := func(id identity.Identity) {
		if !seen[id.ID] {
			seen[id.ID] = true
			ids = append(ids, id.ID)
		}
	}
	for _, s := range p.sels {
		ev.all.match(s, add)
	}
	if len(p.cidrs) > 0 {
		for _, id := range ev.st.Identities {
			for _, c := range p.cidrs {
				if c.matches(id) {
					add(id)
					break
				}
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, false
}
