package policy

import (
	"fmt"
	"strings"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// ciliumParser reads CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy
// rules.
type ciliumParser struct {
	src     source
	cluster string
	secrets secretLookup
	out     *parsed
}

func parseCilium(src source, spec *ciliumv2.Rule, specs ciliumv2.Rules, cluster string, secrets secretLookup) (*parsed, error) {
	p := &ciliumParser{src: src, cluster: cluster, secrets: secrets, out: &parsed{src: src}}
	if spec == nil && len(specs) == 0 {
		return nil, fmt.Errorf("spec: a policy needs spec or specs")
	}
	if spec != nil {
		if err := p.rule(spec, "spec", src.prefix()); err != nil {
			return nil, err
		}
	}
	for k, r := range specs {
		f := fmt.Sprintf("specs[%d]", k)
		if r == nil {
			return nil, fmt.Errorf("%s: null rule", f)
		}
		if err := p.rule(r, f, fmt.Sprintf("%s/specs/%d", src.prefix(), k)); err != nil {
			return nil, err
		}
	}
	return p.out, nil
}

func (p *ciliumParser) namespaced() bool { return p.src.kind == KindCNP }

func (p *ciliumParser) rule(r *ciliumv2.Rule, field, name string) error {
	if r.NodeSelector != nil {
		return fieldError(field+".nodeSelector", "host policies (nodeSelector) are not supported by nodemesh")
	}
	if r.EndpointSelector == nil {
		return fieldError(field+".endpointSelector", "required")
	}
	subject, err := parseSelector(r.EndpointSelector, field+".endpointSelector", "", "")
	if err != nil {
		return err
	}
	if p.namespaced() {
		subject = subject.with(nsRequirement(p.src.namespace))
	}
	enableIn, enableEg := true, true
	if d := r.EnableDefaultDeny; d != nil {
		if d.Ingress != nil {
			enableIn = *d.Ingress
		}
		if d.Egress != nil {
			enableEg = *d.Egress
		}
	}
	for i := range r.Ingress {
		in := &r.Ingress[i]
		f := fmt.Sprintf("%s.ingress[%d]", field, i)
		ru := &rule{name: fmt.Sprintf("%s/ingress/%d", name, i), subject: subject, dir: model.Ingress, enables: enableIn}
		if err := p.ingressPeers(ru, &in.IngressCommonRule, f); err != nil {
			return err
		}
		if err := p.ports(ru, in.ToPorts, in.ICMPs, f); err != nil {
			return err
		}
		if err := p.auth(ru, in.Authentication, f); err != nil {
			return err
		}
		p.finish(ru)
	}
	for i := range r.IngressDeny {
		in := &r.IngressDeny[i]
		f := fmt.Sprintf("%s.ingressDeny[%d]", field, i)
		ru := &rule{name: fmt.Sprintf("%s/ingressDeny/%d", name, i), subject: subject, dir: model.Ingress, deny: true, enables: enableIn}
		if err := p.ingressPeers(ru, &in.IngressCommonRule, f); err != nil {
			return err
		}
		if err := p.ports(ru, denyPorts(in.ToPorts), in.ICMPs, f); err != nil {
			return err
		}
		p.finish(ru)
	}
	for i := range r.Egress {
		eg := &r.Egress[i]
		f := fmt.Sprintf("%s.egress[%d]", field, i)
		ru := &rule{name: fmt.Sprintf("%s/egress/%d", name, i), subject: subject, dir: model.Egress, enables: enableEg}
		if len(eg.ToFQDNs) > 0 {
			return fieldError(f+".toFQDNs", "DNS-based rules need a DNS proxy, which nodemesh does not have")
		}
		if err := p.egressPeers(ru, &eg.EgressCommonRule, f); err != nil {
			return err
		}
		if err := p.ports(ru, eg.ToPorts, eg.ICMPs, f); err != nil {
			return err
		}
		if err := p.auth(ru, eg.Authentication, f); err != nil {
			return err
		}
		p.finish(ru)
	}
	for i := range r.EgressDeny {
		eg := &r.EgressDeny[i]
		f := fmt.Sprintf("%s.egressDeny[%d]", field, i)
		ru := &rule{name: fmt.Sprintf("%s/egressDeny/%d", name, i), subject: subject, dir: model.Egress, deny: true, enables: enableEg}
		if err := p.egressPeers(ru, &eg.EgressCommonRule, f); err != nil {
			return err
		}
		if err := p.ports(ru, denyPorts(eg.ToPorts), eg.ICMPs, f); err != nil {
			return err
		}
		p.finish(ru)
	}
	// A rule with an empty ingress (or egress) list still selects its
	// endpoints for that direction: Cilium's "ingress: [{}]" denies all.
	if len(r.Ingress) == 0 && len(r.IngressDeny) == 0 && r.Ingress != nil {
		p.out.rules = append(p.out.rules, &rule{name: name + "/ingress", subject: subject, dir: model.Ingress, enables: enableIn})
	}
	if len(r.Egress) == 0 && len(r.EgressDeny) == 0 && r.Egress != nil {
		p.out.rules = append(p.out.rules, &rule{name: name + "/egress", subject: subject, dir: model.Egress, enables: enableEg})
	}
	return nil
}

// finish records a rule. A rule naming no peer applies to every peer when
// it names ports (Cilium's L4-only rules) and to none otherwise ("{}":
// default deny, nothing allowed).
func (p *ciliumParser) finish(ru *rule) {
	if ru.peers.empty() && ru.peersUnset && len(ru.ports) > 0 {
		ru.peers.all = true
	}
	p.out.add(ru)
}

func nsRequirement(ns string) requirement {
	return requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: opIn, values: []string{ns}}
}

// endpointPeers turns from/toEndpoints into selectors. In a namespaced
// policy a selector that names no namespace (and no reserved label) only
// sees the policy's namespace; in a cluster-wide one the empty selector
// means every workload of the cluster, not every identity.
func (p *ciliumParser) endpointPeers(ru *rule, sels []ciliumv2.EndpointSelector, field string) error {
	for i := range sels {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, err := parseSelector(&sels[i], f, "", "")
		if err != nil {
			return err
		}
		switch {
		case p.namespaced() && !s.mentions(identity.LabelNamespace, identity.SourceReserved):
			s = s.with(nsRequirement(p.src.namespace))
		case !p.namespaced() && len(s.reqs) == 0:
			s = s.with(requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: opExists})
		}
		ru.peers.sels = append(ru.peers.sels, s)
	}
	return nil
}

func (p *ciliumParser) entityPeers(ru *rule, entities []string, field string) error {
	for i, e := range entities {
		sels, all, err := entitySelectors(e, p.cluster)
		if err != nil {
			return fieldError(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		ru.peers.all = ru.peers.all || all
		ru.peers.sels = append(ru.peers.sels, sels...)
	}
	return nil
}

func (p *ciliumParser) cidrPeers(ru *rule, cidrs []string, sets []ciliumv2.CIDRRule, field, setField string) error {
	for i, c := range cidrs {
		pfx, err := parseCIDR(c)
		if err != nil {
			return fieldError(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		ru.peers.cidrs = append(ru.peers.cidrs, cidrSel{prefix: pfx})
	}
	for i, c := range sets {
		f := fmt.Sprintf("%s[%d]", setField, i)
		if c.CIDRGroupRef != "" || c.CIDRGroupSelector != nil {
			return fieldError(f, "CiliumCIDRGroup references are not supported by nodemesh")
		}
		pfx, err := parseCIDR(c.Cidr)
		if err != nil {
			return fieldError(f+".cidr", "%v", err)
		}
		sel := cidrSel{prefix: pfx}
		for j, e := range c.ExceptCIDRs {
			ex, err := parseCIDR(e)
			if err != nil {
				return fieldError(fmt.Sprintf("%s.except[%d]", f, j), "%v", err)
			}
			if ex.Bits() < pfx.Bits() || !pfx.Contains(ex.Addr()) {
				return fieldError(fmt.Sprintf("%s.except[%d]", f, j), "%s is not inside %s", ex, pfx)
			}
			sel.except = append(sel.except, ex)
		}
		ru.peers.cidrs = append(ru.peers.cidrs, sel)
	}
	return nil
}

func (p *ciliumParser) ingressPeers(ru *rule, c *ciliumv2.IngressCommonRule, f string) error {
	switch {
	case len(c.FromRequires) > 0:
		return fieldError(f+".fromRequires", "not supported by nodemesh (deprecated in Cilium)")
	case len(c.FromGroups) > 0:
		return fieldError(f+".fromGroups", "cloud provider groups are not supported by nodemesh")
	case len(c.FromNodes) > 0:
		return fieldError(f+".fromNodes", "node selectors are not supported by nodemesh; use fromEntities remote-node")
	}
	ru.peersUnset = len(c.FromEndpoints) == 0 && len(c.FromEntities) == 0 && len(c.FromCIDR) == 0 && len(c.FromCIDRSet) == 0
	if err := p.endpointPeers(ru, c.FromEndpoints, f+".fromEndpoints"); err != nil {
		return err
	}
	if err := p.entityPeers(ru, c.FromEntities, f+".fromEntities"); err != nil {
		return err
	}
	return p.cidrPeers(ru, c.FromCIDR, c.FromCIDRSet, f+".fromCIDR", f+".fromCIDRSet")
}

func (p *ciliumParser) egressPeers(ru *rule, c *ciliumv2.EgressCommonRule, f string) error {
	switch {
	case len(c.ToRequires) > 0:
		return fieldError(f+".toRequires", "not supported by nodemesh (deprecated in Cilium)")
	case len(c.ToGroups) > 0:
		return fieldError(f+".toGroups", "cloud provider groups are not supported by nodemesh")
	case len(c.ToNodes) > 0:
		return fieldError(f+".toNodes", "node selectors are not supported by nodemesh; use toEntities remote-node")
	case len(c.ToServices) > 0:
		return fieldError(f+".toServices", "not supported by nodemesh; select the Service's Pods with toEndpoints")
	}
	ru.peersUnset = len(c.ToEndpoints) == 0 && len(c.ToEntities) == 0 && len(c.ToCIDR) == 0 && len(c.ToCIDRSet) == 0
	if err := p.endpointPeers(ru, c.ToEndpoints, f+".toEndpoints"); err != nil {
		return err
	}
	if err := p.entityPeers(ru, c.ToEntities, f+".toEntities"); err != nil {
		return err
	}
	return p.cidrPeers(ru, c.ToCIDR, c.ToCIDRSet, f+".toCIDR", f+".toCIDRSet")
}

func (p *ciliumParser) auth(ru *rule, a *ciliumv2.Authentication, f string) error {
	if a == nil {
		return nil
	}
	switch strings.ToLower(a.Mode) {
	case "", "disabled":
	case "required":
		ru.auth = true
	case "test-always-fail":
		return fieldError(f+".authentication.mode", "test-always-fail is not supported by nodemesh")
	default:
		return fieldError(f+".authentication.mode", "unknown mode %q (disabled, required)", a.Mode)
	}
	return nil
}

func denyPorts(in []ciliumv2.PortDenyRule) []ciliumv2.PortRule {
	out := make([]ciliumv2.PortRule, len(in))
	for i, d := range in {
		out[i] = ciliumv2.PortRule{Ports: d.Ports}
	}
	return out
}

// ports reads toPorts and icmps.
func (p *ciliumParser) ports(ru *rule, prs []ciliumv2.PortRule, icmps []ciliumv2.ICMPRule, field string) error {
	base := 0
	for t := range prs {
		pr := &prs[t]
		f := fmt.Sprintf("%s.toPorts[%d]", field, t)
		switch {
		case pr.TerminatingTLS != nil:
			return fieldError(f+".terminatingTLS", "TLS interception is not supported by nodemesh")
		case pr.OriginatingTLS != nil:
			return fieldError(f+".originatingTLS", "TLS interception is not supported by nodemesh")
		case len(pr.ServerNames) > 0:
			return fieldError(f+".serverNames", "not supported by nodemesh")
		case pr.Listener != nil:
			return fieldError(f+".listener", "redirects to CiliumEnvoyConfig listeners are not supported by nodemesh")
		}
		out := portRule{base: base}
		dnsAtL4 := false
		if r := pr.Rules; r != nil {
			kinds := 0
			for _, n := range []int{len(r.HTTP), len(r.Kafka), len(r.DNS), len(r.L7)} {
				if n > 0 {
					kinds++
				}
			}
			switch {
			case kinds > 1:
				return fieldError(f+".rules", "one port can carry only one kind of L7 rule")
			case len(r.DNS) > 0:
				if ru.dir != model.Egress || !allowsEveryName(r.DNS) {
					return fieldError(f+".rules.dns", "DNS rules need a DNS proxy, which nodemesh does not have")
				}
				// Every name allowed: the L4 allow of the ports below
				// (see doc.go); the status says so.
				dnsAtL4 = true
				p.out.dnsAtL4 = append(p.out.dnsAtL4, f+".rules.dns")
			case len(r.L7) > 0 || r.L7Proto != "":
				return fieldError(f+".rules.l7proto", "generic proxylib parsers are not supported by nodemesh")
			case len(r.HTTP) > 0:
				out.kind = l7HTTP
				for j, h := range r.HTTP {
					hf := fmt.Sprintf("%s.rules.http[%d]", f, j)
					hr, warn, err := httpRule(h, hf, p.src.namespace, p.secrets)
					if err != nil {
						return err
					}
					if warn != "" {
						p.out.warnings = append(p.out.warnings, warn)
						continue
					}
					out.l7 = append(out.l7, l7Entry{idx: j, http: hr})
				}
				base += len(r.HTTP)
			case len(r.Kafka) > 0:
				out.kind = l7Kafka
				for j, k := range r.Kafka {
					kr, err := kafkaRule(k, fmt.Sprintf("%s.rules.kafka[%d]", f, j))
					if err != nil {
						return err
					}
					out.l7 = append(out.l7, l7Entry{idx: j, kafka: kr})
				}
				base += len(r.Kafka)
			}
			if out.kind != l7None && ru.deny {
				return fieldError(f+".rules", "deny rules cannot carry L7 rules")
			}
		}
		if len(pr.Ports) == 0 {
			switch {
			case out.kind != l7None:
				return fieldError(f+".ports", "L7 rules need at least one port")
			case dnsAtL4:
				return fieldError(f+".ports", "DNS rules need at least one port")
			}
			out.specs = []portSpec{{proto: model.ProtoAny}}
		}
		for k, pp := range pr.Ports {
			pf := fmt.Sprintf("%s.ports[%d]", f, k)
			proto, err := parseProtocol(pp.Protocol)
			if err != nil {
				return fieldError(pf+".protocol", "%v", err)
			}
			ps, err := parsePort(pp.Port, pp.EndPort, proto)
			if err != nil {
				return fieldError(pf, "%v", err)
			}
			if dnsAtL4 && ps.port == 0 && ps.name == "" {
				return fieldError(pf+".port", "DNS rules need a port, not every port")
			}
			if out.kind != l7None {
				switch {
				case proto != model.ProtoAny && proto != model.ProtoTCP:
					return fieldError(pf+".protocol", "%s rules need TCP, not %s", out.kind, protoName(proto))
				case ps.port == 0 && ps.name == "":
					return fieldError(pf+".port", "%s rules need a port, not every port", out.kind)
				}
				// L7 is enforced on TCP; ANY stands for TCP here.
				ps.proto = model.ProtoTCP
			}
			out.specs = append(out.specs, ps)
		}
		ru.ports = append(ru.ports, out)
	}
	for i, ic := range icmps {
		for j, fl := range ic.Fields {
			f := fmt.Sprintf("%s.icmps[%d].fields[%d]", field, i, j)
			if fl.Type == nil {
				return fieldError(f+".type", "required")
			}
			k, err := parseICMP(fl.Family, fl.Type.Str, fl.Type.IsString, fl.Type.Int)
			if err != nil {
				return fieldError(f, "%v", err)
			}
			ru.ports = append(ru.ports, portRule{specs: []portSpec{{proto: k.proto, port: k.port, end: k.port}}})
		}
	}
	return nil
}

// allowsEveryName reports whether a DNS rule list allows every name: each
// entry is exactly matchPattern "*". Such a list admits every well-formed
// query, so its L4 allow is all it grants; any narrower list needs a DNS
// proxy to enforce.
func allowsEveryName(rules []ciliumv2.PortRuleDNS) bool {
	for _, d := range rules {
		if d.MatchName != "" || d.MatchPattern != "*" {
			return false
		}
	}
	return len(rules) > 0
}
