package gateway

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	ciliumv2alpha1 "github.com/nodemesh/nodemesh/api/cilium/v2alpha1"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// ClassParameters resolves a GatewayClass's spec.parametersRef: nil and
// no problem without one; the named CiliumGatewayClassConfig when it
// exists and every field it sets can be honoured; otherwise a problem
// naming the reference or the field (the class is then
// InvalidParameters). hostNetwork is Options.HostNetwork. The controller
// shapes each Gateway's Service from the returned config.
func ClassParameters(in *input.Snapshot, gc *gwv1.GatewayClass, hostNetwork bool) (*ciliumv2alpha1.CiliumGatewayClassConfig, string) {
	p := gc.Spec.ParametersRef
	if p == nil {
		return nil, ""
	}
	if string(p.Group) != ciliumv2alpha1.Group || string(p.Kind) != ciliumv2alpha1.GatewayClassConfigKind {
		return nil, fmt.Sprintf("spec.parametersRef: %s %s is not supported; nodemesh GatewayClasses take a %s.%s", p.Kind, p.Name,
			ciliumv2alpha1.GatewayClassConfigKind, ciliumv2alpha1.Group)
	}
	if p.Namespace == nil || *p.Namespace == "" {
		return nil, fmt.Sprintf("spec.parametersRef: %s %s needs a namespace (the kind is namespaced)", p.Kind, p.Name)
	}
	key := input.Key{Namespace: string(*p.Namespace), Name: p.Name}
	var cfg *ciliumv2alpha1.CiliumGatewayClassConfig
	for _, c := range in.GatewayClassConfigs {
		if c.Namespace == key.Namespace && c.Name == key.Name {
			cfg = c
			break
		}
	}
	if cfg == nil {
		return nil, fmt.Sprintf("spec.parametersRef: %s %s not found", p.Kind, key)
	}
	if problems := CheckClassConfig(cfg, hostNetwork); len(problems) > 0 {
		return nil, fmt.Sprintf("spec.parametersRef: %s %s: %s", p.Kind, key, strings.Join(problems, "; "))
	}
	return cfg, ""
}

// CheckClassConfig lists the fields of cfg nodemesh cannot honour; each
// is refused rather than ignored, since running a Gateway exposed other
// than asked (reachable from sources it should not be, say) fails open.
func CheckClassConfig(cfg *ciliumv2alpha1.CiliumGatewayClassConfig, hostNetwork bool) []string {
	var out []string
	if n := len(cfg.Spec.Description); n > 64 {
		out = append(out, fmt.Sprintf("spec.description: %d characters, at most 64", n))
	}
	s := cfg.Spec.Service
	if s == nil {
		return out
	}
	if hostNetwork {
		return append(out, "spec.service: Gateways run in host-network mode, where no Service is created")
	}
	switch s.Type {
	case "", corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeNodePort:
		out = append(out, "spec.service.type: NodePort is not supported: node proxies listen on the Gateway's load-balancer address, "+
			"the datapath does not serve NodePorts, and kube-proxy refuses NodePort traffic for a Service without endpoints")
	default:
		out = append(out, fmt.Sprintf("spec.service.type: %q is not LoadBalancer or NodePort", s.Type))
	}
	switch s.ExternalTrafficPolicy {
	case "", corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal:
	default:
		out = append(out, fmt.Sprintf("spec.service.externalTrafficPolicy: %q is not Cluster or Local", s.ExternalTrafficPolicy))
	}
	if s.LoadBalancerClass != nil && *s.LoadBalancerClass == "" {
		out = append(out, "spec.service.loadBalancerClass: empty")
	}
	// A Gateway is served on one address: a dual-stack Service would get
	// a second load-balancer address nothing listens on.
	if len(s.IPFamilies) > 1 {
		out = append(out, "spec.service.ipFamilies: a Gateway is served on one address, so one family at most")
	}
	for i, f := range s.IPFamilies {
		if f != corev1.IPv4Protocol && f != corev1.IPv6Protocol {
			out = append(out, fmt.Sprintf("spec.service.ipFamilies[%d]: %q is not IPv4 or IPv6", i, f))
		}
	}
	if p := s.IPFamilyPolicy; p != nil && *p != corev1.IPFamilyPolicySingleStack {
		out = append(out, fmt.Sprintf("spec.service.ipFamilyPolicy: %s is not supported; a Gateway is served on one address (SingleStack)", *p))
	}
	if a := s.AllocateLoadBalancerNodePorts; a != nil && *a {
		out = append(out, "spec.service.allocateLoadBalancerNodePorts: true is not supported; nothing listens on node ports")
	}
	if len(s.LoadBalancerSourceRanges) > 0 {
		out = append(out, "spec.service.loadBalancerSourceRanges: not enforced by nodemesh (the node proxies accept every source on the load-balancer address)")
	}
	switch s.LoadBalancerSourceRangesPolicy {
	case "", "Allow", "Deny":
	default:
		out = append(out, fmt.Sprintf("spec.service.loadBalancerSourceRangesPolicy: %q is not Allow or Deny", s.LoadBalancerSourceRangesPolicy))
	}
	if d := s.TrafficDistribution; d != nil {
		switch *d {
		case corev1.ServiceTrafficDistributionPreferClose, "PreferSameZone", "PreferSameNode":
		default:
			out = append(out, fmt.Sprintf("spec.service.trafficDistribution: %q is not PreferClose, PreferSameZone or PreferSameNode", *d))
		}
	}
	return out
}
