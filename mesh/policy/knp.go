package policy

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/mesh/identity"
)

// parseKNP reads a Kubernetes NetworkPolicy (L3/L4 only). Selectors see
// Pod labels (source k8s); namespace selectors see the labels Cilium
// copies from the Namespace onto every Pod.
func parseKNP(np *networkingv1.NetworkPolicy) (*parsed, error) {
	src := source{kind: KindKNP, namespace: np.Namespace, name: np.Name}
	out := &parsed{src: src}
	subject, err := labelSelector(&np.Spec.PodSelector, "spec.podSelector", "")
	if err != nil {
		return nil, err
	}
	subject = subject.with(nsRequirement(np.Namespace))

	ingress, egress := false, false
	if len(np.Spec.PolicyTypes) == 0 {
		// The API server's default: Ingress always, Egress when rules exist.
		ingress, egress = true, len(np.Spec.Egress) > 0
	}
	for i, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		default:
			return nil, fieldError(fmt.Sprintf("spec.policyTypes[%d]", i), "unknown policy type %q (Ingress, Egress)", t)
		}
	}
	if !ingress && len(np.Spec.Ingress) > 0 {
		return nil, fieldError("spec.ingress", "set but policyTypes does not list Ingress")
	}
	if !egress && len(np.Spec.Egress) > 0 {
		return nil, fieldError("spec.egress", "set but policyTypes does not list Egress")
	}
	if ingress {
		// A NetworkPolicy always puts its Pods into default deny.
		out.rules = append(out.rules, &rule{name: src.prefix() + "/ingress", subject: subject, dir: model.Ingress, enables: true})
	}
	if egress {
		out.rules = append(out.rules, &rule{name: src.prefix() + "/egress", subject: subject, dir: model.Egress, enables: true})
	}
	for i, r := range np.Spec.Ingress {
		f := fmt.Sprintf("spec.ingress[%d]", i)
		ru := &rule{name: fmt.Sprintf("%s/ingress/%d", src.prefix(), i), subject: subject, dir: model.Ingress, enables: true}
		if err := knpPeers(ru, r.From, f+".from", np.Namespace); err != nil {
			return nil, err
		}
		if err := knpPorts(ru, r.Ports, f+".ports"); err != nil {
			return nil, err
		}
		out.add(ru)
	}
	for i, r := range np.Spec.Egress {
		f := fmt.Sprintf("spec.egress[%d]", i)
		ru := &rule{name: fmt.Sprintf("%s/egress/%d", src.prefix(), i), subject: subject, dir: model.Egress, enables: true}
		if err := knpPeers(ru, r.To, f+".to", np.Namespace); err != nil {
			return nil, err
		}
		if err := knpPorts(ru, r.Ports, f+".ports"); err != nil {
			return nil, err
		}
		out.add(ru)
	}
	return out, nil
}

func (p *parsed) add(ru *rule) {
	for _, c := range ru.peers.cidrs {
		p.cidrs = append(p.cidrs, c.prefix)
		p.cidrs = append(p.cidrs, c.except...)
	}
	p.rules = append(p.rules, ru)
}

// knpPeers: no peers means every peer, in or outside the cluster.
func knpPeers(ru *rule, peersIn []networkingv1.NetworkPolicyPeer, field, ns string) error {
	if len(peersIn) == 0 {
		ru.peers.all = true
		return nil
	}
	for i, pe := range peersIn {
		f := fmt.Sprintf("%s[%d]", field, i)
		if pe.IPBlock != nil {
			if pe.PodSelector != nil || pe.NamespaceSelector != nil {
				return fieldError(f, "ipBlock cannot be combined with podSelector or namespaceSelector")
			}
			pfx, err := parseCIDR(pe.IPBlock.CIDR)
			if err != nil {
				return fieldError(f+".ipBlock.cidr", "%v", err)
			}
			sel := cidrSel{prefix: pfx}
			for j, e := range pe.IPBlock.Except {
				ex, err := parseCIDR(e)
				if err != nil || ex.Bits() < pfx.Bits() || !pfx.Contains(ex.Addr()) {
					return fieldError(fmt.Sprintf("%s.ipBlock.except[%d]", f, j), "%q is not a prefix inside %s", e, pfx)
				}
				sel.except = append(sel.except, ex)
			}
			ru.peers.cidrs = append(ru.peers.cidrs, sel)
			continue
		}
		if pe.PodSelector == nil && pe.NamespaceSelector == nil {
			return fieldError(f, "a peer needs podSelector, namespaceSelector or ipBlock")
		}
		var s selector
		if pe.PodSelector != nil {
			ps, err := labelSelector(pe.PodSelector, f+".podSelector", "")
			if err != nil {
				return err
			}
			s = ps
		}
		if pe.NamespaceSelector != nil {
			nsSel, err := labelSelector(pe.NamespaceSelector, f+".namespaceSelector", identity.LabelNamespaceLabels+".")
			if err != nil {
				return err
			}
			s.reqs = append(s.reqs, nsSel.reqs...)
			// Only workloads have a namespace: {} means every Pod.
			s = s.with(requirement{source: identity.SourceK8s, key: identity.LabelNamespace, op: opExists})
		} else {
			s = s.with(nsRequirement(ns))
		}
		ru.peers.sels = append(ru.peers.sels, s)
	}
	return nil
}

func knpPorts(ru *rule, ports []networkingv1.NetworkPolicyPort, field string) error {
	if len(ports) == 0 {
		return nil // every port
	}
	pr := portRule{}
	for i, pp := range ports {
		f := fmt.Sprintf("%s[%d]", field, i)
		proto := model.ProtoTCP
		if pp.Protocol != nil {
			var err error
			if proto, err = parseProtocol(string(*pp.Protocol)); err != nil || proto == model.ProtoAny {
				return fieldError(f+".protocol", "unsupported protocol %q (TCP, UDP, SCTP)", *pp.Protocol)
			}
		}
		port, end := "0", int32(0)
		if pp.Port != nil {
			if pp.Port.Type == intstr.String {
				port = pp.Port.StrVal
			} else {
				if pp.Port.IntVal < 1 || pp.Port.IntVal > 65535 {
					return fieldError(f+".port", "%d out of range 1-65535", pp.Port.IntVal)
				}
				port = fmt.Sprint(pp.Port.IntVal)
			}
		}
		if pp.EndPort != nil {
			if pp.Port == nil {
				return fieldError(f+".endPort", "needs port")
			}
			end = *pp.EndPort
		}
		ps, err := parsePort(port, end, proto)
		if err != nil {
			return fieldError(f, "%v", err)
		}
		pr.specs = append(pr.specs, ps)
	}
	ru.ports = append(ru.ports, pr)
	return nil
}

// labelSelector converts a Kubernetes label selector on Pod labels (or,
// with keyPrefix, on Namespace labels) to a selector on k8s-source labels.
func labelSelector(ls *metav1.LabelSelector, field, keyPrefix string) (selector, error) {
	es := &ciliumv2.EndpointSelector{MatchLabels: ls.MatchLabels}
	for _, e := range ls.MatchExpressions {
		es.MatchExpressions = append(es.MatchExpressions, ciliumv2.LabelSelectorRequirement{Key: e.Key, Operator: string(e.Operator), Values: e.Values})
	}
	// Keys are plain Kubernetes label keys: never source-qualified.
	s, err := parseSelector(es, field, keyPrefix, identity.SourceK8s)
	if err != nil {
		return s, err
	}
	for i := range s.reqs {
		s.reqs[i].source = identity.SourceK8s
	}
	return s, nil
}
