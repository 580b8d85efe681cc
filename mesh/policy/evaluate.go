package policy

import (
	"fmt"
	"sort"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// evaluator applies parsed policies to one identity.State.
type evaluator struct {
	st   *identity.State
	opts Options
	// local endpoints, and the local ones by identity.
	local   []*identity.Endpoint
	localBy map[model.Identity][]*identity.Endpoint
	// localIDs are the identities of local endpoints, sorted.
	localIDs []identity.Identity
	// all endpoints by identity (for egress named ports).
	allBy map[model.Identity][]*identity.Endpoint

	peerSets map[*rule]*ir.PeerSet
	// all and localIdx index every identity and the local ones by label.
	all, localIdx *labelIndex
}

func newEvaluator(st *identity.State, opts Options) *evaluator {
	ev := &evaluator{st: st, opts: opts, localBy: map[model.Identity][]*identity.Endpoint{},
		allBy: map[model.Identity][]*identity.Endpoint{}, peerSets: map[*rule]*ir.PeerSet{}}
	for _, ep := range st.Endpoints {
		ev.allBy[ep.Identity] = append(ev.allBy[ep.Identity], ep)
		if opts.NodeName == "" || ep.Node == "" || ep.Node == opts.NodeName {
			ev.local = append(ev.local, ep)
			if len(ev.localBy[ep.Identity]) == 0 {
				ls, _ := st.Labels(ep.Identity)
				ev.localIDs = append(ev.localIDs, identity.Identity{ID: ep.Identity, Labels: ls})
			}
			ev.localBy[ep.Identity] = append(ev.localBy[ep.Identity], ep)
		}
	}
	if opts.IngressEndpoint {
		ev.addIngressEndpoint()
	}
	sort.Slice(ev.localIDs, func(i, j int) bool { return ev.localIDs[i].ID < ev.localIDs[j].ID })
	ev.all, ev.localIdx = newLabelIndex(st.Identities), newLabelIndex(ev.localIDs)
	return ev
}

// contribution is what one rule says about one local identity, direction
// and datapath key. A contribution with pr == nil and no key is only a
// marker that the rule selects the identity (for default deny).
type contribution struct {
	rule    *rule
	subject model.Identity
	// mark: the contribution only records that rule selects subject.
	mark bool
	key  l4
	// pr is the port rule the key came from; nil for an L3-only rule.
	pr      *portRule
	peerAll bool
	peerIDs []model.Identity
}

func (c *contribution) kind() l7Kind {
	if c.pr == nil {
		return l7None
	}
	return c.pr.kind
}

// evaluate returns the contributions of a parsed policy and how many
// local endpoints it selects.
func (ev *evaluator) evaluate(p *parsed) ([]*contribution, int, error) {
	var out []*contribution
	selected := map[*identity.Endpoint]bool{}
	rows := 0
	for _, r := range p.rules {
		var subjects []model.Identity
		ev.localIdx.match(r.subject, func(id identity.Identity) {
			subjects = append(subjects, id.ID)
			for _, ep := range ev.localBy[id.ID] {
				selected[ep] = true
			}
		})
		if len(subjects) == 0 {
			continue
		}
		ids, all := ev.selectPeers(r.peers)
		width := len(ids)
		if all {
			width = 1
		}
		for _, s := range subjects {
			out = append(out, &contribution{rule: r, subject: s, mark: true})
			if width == 0 {
				continue // no peer: the rule only enables default deny
			}
			if len(r.ports) == 0 {
				out = append(out, &contribution{rule: r, subject: s, key: l4{model.ProtoAny, 0}, peerAll: all, peerIDs: ids})
				rows += width
				continue
			}
			for i := range r.ports {
				pr := &r.ports[i]
				for _, spec := range pr.specs {
					if spec.width()*width > ev.opts.MaxRowsPerPolicy {
						return nil, 0, fmt.Errorf("%s: expands to more than %d datapath rows", r.name, ev.opts.MaxRowsPerPolicy)
					}
					for _, k := range spec.expand(ev.namedPorts(r, s, ids, all)) {
						out = append(out, &contribution{rule: r, subject: s, key: k, pr: pr, peerAll: all, peerIDs: ids})
						rows += width
					}
				}
				if rows > ev.opts.MaxRowsPerPolicy {
					return nil, 0, fmt.Errorf("%s: expands to more than %d datapath rows", r.name, ev.opts.MaxRowsPerPolicy)
				}
			}
		}
	}
	return out, len(selected), nil
}

// namedPorts are the container ports a named port resolves against: the
// selected endpoints' for ingress, the peers' for egress (Cilium's rule).
func (ev *evaluator) namedPorts(r *rule, subject model.Identity, peers []model.Identity, all bool) []identity.NamedPort {
	var out []identity.NamedPort
	if r.dir == model.Ingress {
		for _, ep := range ev.localBy[subject] {
			out = append(out, ep.Ports...)
		}
		return out
	}
	if all {
		for _, ep := range ev.st.Endpoints {
			out = append(out, ep.Ports...)
		}
		return out
	}
	for _, id := range peers {
		for _, ep := range ev.allBy[id] {
			out = append(out, ep.Ports...)
		}
	}
	return out
}
