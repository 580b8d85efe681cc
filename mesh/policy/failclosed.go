package policy

import (
	"fmt"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// scopeRule is what a policy restricts, known without accepting it: the
// endpoints one of its rules selects, the direction the rule is about,
// and whether the rule could also narrow what other policies allow
// (strict). A rejected policy keeps its scope closed (see doc.go, "Fail
// closed"): every selected endpoint is in default deny in that direction,
// and a strict scope blocks the direction entirely.
type scopeRule struct {
	subject selector
	dir     model.Direction
	strict  bool
}

// scope derives the scope of a parsed policy from its rules: a rule that
// denies, requires authentication or carries L7 rules is strict.
func (p *parsed) scope() []scopeRule {
	var out []scopeRule
	for _, r := range p.rules {
		strict := r.deny || r.auth
		for _, pr := range r.ports {
			strict = strict || pr.kind != l7None
		}
		out = append(out, scopeRule{subject: r.subject, dir: r.dir, strict: strict})
	}
	return out
}

// scopeCilium derives the scope of a CiliumNetworkPolicy or
// CiliumClusterwideNetworkPolicy that did not parse, from its raw rules,
// as far as anything can be read. An endpointSelector that does not parse
// stands for every endpoint the policy could select (its namespace, or
// every endpoint for a cluster-wide policy). Host policies (nodeSelector)
// select no endpoint. A direction is covered when the rule has an allow
// or deny section for it, even an empty one; it is strict when the rule
// has deny rules, authentication or L7 rules there, or cannot be read.
func scopeCilium(src source, spec *ciliumv2.Rule, specs ciliumv2.Rules) []scopeRule {
	all := selector{}
	if src.kind == KindCNP {
		all = all.with(nsRequirement(src.namespace))
	}
	var rules []*ciliumv2.Rule
	if spec != nil {
		rules = append(rules, spec)
	}
	rules = append(rules, specs...)
	var out []scopeRule
	for _, r := range rules {
		if r == nil {
			// An unreadable rule could have selected anything in scope,
			// in both directions, with denies.
			out = append(out, scopeRule{subject: all, dir: model.Ingress, strict: true},
				scopeRule{subject: all, dir: model.Egress, strict: true})
			continue
		}
		if r.NodeSelector != nil && r.EndpointSelector == nil {
			continue
		}
		subject := all
		if r.EndpointSelector != nil {
			if s, err := parseSelector(r.EndpointSelector, "", "", ""); err == nil {
				subject = s
				if src.kind == KindCNP {
					subject = subject.with(nsRequirement(src.namespace))
				}
			}
		}
		if r.Ingress != nil || r.IngressDeny != nil {
			strict := len(r.IngressDeny) > 0
			for _, in := range r.Ingress {
				strict = strict || requiresAuth(in.Authentication) || hasL7(in.ToPorts)
			}
			out = append(out, scopeRule{subject: subject, dir: model.Ingress, strict: strict})
		}
		if r.Egress != nil || r.EgressDeny != nil {
			strict := len(r.EgressDeny) > 0
			for _, eg := range r.Egress {
				strict = strict || requiresAuth(eg.Authentication) || hasL7(eg.ToPorts)
			}
			out = append(out, scopeRule{subject: subject, dir: model.Egress, strict: strict})
		}
	}
	return out
}

func requiresAuth(a *ciliumv2.Authentication) bool {
	if a == nil {
		return false
	}
	m := strings.ToLower(a.Mode)
	return m != "" && m != "disabled"
}

func hasL7(prs []ciliumv2.PortRule) bool {
	for _, pr := range prs {
		if pr.Rules != nil {
			return true
		}
	}
	return false
}

// scopeKNP derives the scope of a NetworkPolicy that did not parse: its
// Pods (all of its namespace when the podSelector does not parse) in the
// directions policyTypes names — both for a type it does not know — or,
// without policyTypes, ingress plus egress when egress rules exist. A
// NetworkPolicy only allows, so its scope is never strict.
func scopeKNP(np *networkingv1.NetworkPolicy) []scopeRule {
	subject := selector{}
	if s, err := labelSelector(&np.Spec.PodSelector, "", ""); err == nil {
		subject = s
	}
	subject = subject.with(nsRequirement(np.Namespace))
	ingress, egress := len(np.Spec.PolicyTypes) == 0 || len(np.Spec.Ingress) > 0, len(np.Spec.Egress) > 0
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			ingress, egress = true, true
		}
	}
	var out []scopeRule
	if ingress {
		out = append(out, scopeRule{subject: subject, dir: model.Ingress})
	}
	if egress {
		out = append(out, scopeRule{subject: subject, dir: model.Egress})
	}
	return out
}

// closedScope holds the scope of a rejected policy shut: for every local
// identity a scope rule selects, a marker that puts it into default deny,
// and for a strict one a deny row for every peer, port and protocol. A
// (subject, direction) pair in keep is left alone: the previous version
// of the policy, still enforced, speaks for it. It returns the
// contributions and how many local endpoints they hold.
func (ev *evaluator) closedScope(src source, scope []scopeRule, keep map[groupKey]bool) ([]*contribution, int) {
	var out []*contribution
	selected := map[*identity.Endpoint]bool{}
	for _, sr := range scope {
		name := fmt.Sprintf("%s/fail-closed/%s", src.prefix(), sr.dir)
		ev.localIdx.match(sr.subject, func(id identity.Identity) {
			if keep[groupKey{id.ID, sr.dir}] {
				return
			}
			for _, ep := range ev.localBy[id.ID] {
				selected[ep] = true
			}
			r := &rule{name: name, subject: sr.subject, dir: sr.dir, enables: true}
			out = append(out, &contribution{rule: r, subject: id.ID, mark: true})
			if sr.strict {
				deny := &rule{name: name, subject: sr.subject, dir: sr.dir, deny: true, enables: true}
				out = append(out, &contribution{rule: deny, subject: id.ID, key: l4{model.ProtoAny, 0}, peerAll: true})
			}
		})
	}
	return out, len(selected)
}

// closedMessage says what the closed scope does, per direction.
func closedMessage(cs []*contribution) string {
	state := map[model.Direction]string{}
	for _, c := range cs {
		switch {
		case c.rule.deny:
			state[c.rule.dir] = "blocked entirely (the policy has deny, authentication or L7 rules there, which could narrow what other policies allow)"
		case state[c.rule.dir] == "":
			state[c.rule.dir] = "in default deny (only what other policies allow passes)"
		}
	}
	var parts []string
	for _, d := range []model.Direction{model.Ingress, model.Egress} {
		if s := state[d]; s != "" {
			parts = append(parts, fmt.Sprintf("%s of the endpoints it selects is %s", d, s))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "fail closed: " + strings.Join(parts, "; ")
}
