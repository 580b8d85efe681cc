package v2

import "k8s.io/apimachinery/pkg/runtime"

// Deep copies, written by hand (the project has no code generator); a test
// fills every field at random and checks the copy is equal and shares no
// memory with the original.

// DeepCopyInto copies in into out.
func (in *CiliumNetworkPolicy) DeepCopyInto(out *CiliumNetworkPolicy) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = in.Spec.DeepCopy()
	out.Specs = in.Specs.DeepCopy()
	if in.Status != nil {
		out.Status = in.Status.DeepCopy()
	}
}

// DeepCopy returns a copy of in.
func (in *CiliumNetworkPolicy) DeepCopy() *CiliumNetworkPolicy {
	if in == nil {
		return nil
	}
	out := new(CiliumNetworkPolicy)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *CiliumNetworkPolicy) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *CiliumNetworkPolicyList) DeepCopyInto(out *CiliumNetworkPolicyList) {
	*out = *in
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = copySlice(in.Items, (*CiliumNetworkPolicy).DeepCopyInto)
}

// DeepCopy returns a copy of in.
func (in *CiliumNetworkPolicyList) DeepCopy() *CiliumNetworkPolicyList {
	if in == nil {
		return nil
	}
	out := new(CiliumNetworkPolicyList)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *CiliumNetworkPolicyList) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *CiliumClusterwideNetworkPolicy) DeepCopyInto(out *CiliumClusterwideNetworkPolicy) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = in.Spec.DeepCopy()
	out.Specs = in.Specs.DeepCopy()
	if in.Status != nil {
		out.Status = in.Status.DeepCopy()
	}
}

// DeepCopy returns a copy of in.
func (in *CiliumClusterwideNetworkPolicy) DeepCopy() *CiliumClusterwideNetworkPolicy {
	if in == nil {
		return nil
	}
	out := new(CiliumClusterwideNetworkPolicy)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *CiliumClusterwideNetworkPolicy) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *CiliumClusterwideNetworkPolicyList) DeepCopyInto(out *CiliumClusterwideNetworkPolicyList) {
	*out = *in
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = copySlice(in.Items, (*CiliumClusterwideNetworkPolicy).DeepCopyInto)
}

// DeepCopy returns a copy of in.
func (in *CiliumClusterwideNetworkPolicyList) DeepCopy() *CiliumClusterwideNetworkPolicyList {
	if in == nil {
		return nil
	}
	out := new(CiliumClusterwideNetworkPolicyList)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *CiliumClusterwideNetworkPolicyList) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopy returns a copy of in.
func (in Rules) DeepCopy() Rules {
	if in == nil {
		return nil
	}
	out := make(Rules, len(in))
	for i, r := range in {
		out[i] = r.DeepCopy()
	}
	return out
}

// DeepCopy returns a copy of in.
func (in *Rule) DeepCopy() *Rule {
	if in == nil {
		return nil
	}
	out := new(Rule)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *Rule) DeepCopyInto(out *Rule) {
	*out = *in
	out.EndpointSelector = in.EndpointSelector.DeepCopy()
	out.NodeSelector = in.NodeSelector.DeepCopy()
	out.Ingress = copySlice(in.Ingress, (*IngressRule).DeepCopyInto)
	out.IngressDeny = copySlice(in.IngressDeny, (*IngressDenyRule).DeepCopyInto)
	out.Egress = copySlice(in.Egress, (*EgressRule).DeepCopyInto)
	out.EgressDeny = copySlice(in.EgressDeny, (*EgressDenyRule).DeepCopyInto)
	out.Labels = copyValues(in.Labels)
	if in.EnableDefaultDeny != nil {
		out.EnableDefaultDeny = &DefaultDenyConfig{
			Ingress: copyPtr(in.EnableDefaultDeny.Ingress),
			Egress:  copyPtr(in.EnableDefaultDeny.Egress),
		}
	}
	out.Log = copyPtr(in.Log)
}

// DeepCopy returns a copy of in.
func (in *EndpointSelector) DeepCopy() *EndpointSelector {
	if in == nil {
		return nil
	}
	out := new(EndpointSelector)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyInto copies in into out.
func (in *EndpointSelector) DeepCopyInto(out *EndpointSelector) {
	*out = *in
	out.MatchLabels = copyMap(in.MatchLabels)
	out.MatchExpressions = copySlice(in.MatchExpressions, func(in, out *LabelSelectorRequirement) {
		*out = *in
		out.Values = copyValues(in.Values)
	})
}

// DeepCopyInto copies in into out.
func (in *IngressCommonRule) DeepCopyInto(out *IngressCommonRule) {
	*out = *in
	out.FromEndpoints = copySlice(in.FromEndpoints, (*EndpointSelector).DeepCopyInto)
	out.FromRequires = copySlice(in.FromRequires, (*EndpointSelector).DeepCopyInto)
	out.FromCIDR = copyValues(in.FromCIDR)
	out.FromCIDRSet = copySlice(in.FromCIDRSet, (*CIDRRule).DeepCopyInto)
	out.FromEntities = copyValues(in.FromEntities)
	out.FromGroups = copySlice(in.FromGroups, (*Groups).DeepCopyInto)
	out.FromNodes = copySlice(in.FromNodes, (*EndpointSelector).DeepCopyInto)
}

// DeepCopyInto copies in into out.
func (in *IngressRule) DeepCopyInto(out *IngressRule) {
	*out = *in
	in.IngressCommonRule.DeepCopyInto(&out.IngressCommonRule)
	out.ToPorts = copySlice(in.ToPorts, (*PortRule).DeepCopyInto)
	out.ICMPs = copySlice(in.ICMPs, (*ICMPRule).DeepCopyInto)
	out.Authentication = copyPtr(in.Authentication)
}

// DeepCopyInto copies in into out.
func (in *IngressDenyRule) DeepCopyInto(out *IngressDenyRule) {
	*out = *in
	in.IngressCommonRule.DeepCopyInto(&out.IngressCommonRule)
	out.ToPorts = copySlice(in.ToPorts, (*PortDenyRule).DeepCopyInto)
	out.ICMPs = copySlice(in.ICMPs, (*ICMPRule).DeepCopyInto)
}

// DeepCopyInto copies in into out.
func (in *EgressCommonRule) DeepCopyInto(out *EgressCommonRule) {
	*out = *in
	out.ToEndpoints = copySlice(in.ToEndpoints, (*EndpointSelector).DeepCopyInto)
	out.ToRequires = copySlice(in.ToRequires, (*EndpointSelector).DeepCopyInto)
	out.ToCIDR = copyValues(in.ToCIDR)
	out.ToCIDRSet = copySlice(in.ToCIDRSet, (*CIDRRule).DeepCopyInto)
	out.ToEntities = copyValues(in.ToEntities)
	out.ToServices = copySlice(in.ToServices, (*Service).DeepCopyInto)
	out.ToGroups = copySlice(in.ToGroups, (*Groups).DeepCopyInto)
	out.ToNodes = copySlice(in.ToNodes, (*EndpointSelector).DeepCopyInto)
}

// DeepCopyInto copies in into out.
func (in *EgressRule) DeepCopyInto(out *EgressRule) {
	*out = *in
	in.EgressCommonRule.DeepCopyInto(&out.EgressCommonRule)
	out.ToPorts = copySlice(in.ToPorts, (*PortRule).DeepCopyInto)
	out.ToFQDNs = copyValues(in.ToFQDNs)
	out.ICMPs = copySlice(in.ICMPs, (*ICMPRule).DeepCopyInto)
	out.Authentication = copyPtr(in.Authentication)
}

// DeepCopyInto copies in into out.
func (in *EgressDenyRule) DeepCopyInto(out *EgressDenyRule) {
	*out = *in
	in.EgressCommonRule.DeepCopyInto(&out.EgressCommonRule)
	out.ToPorts = copySlice(in.ToPorts, (*PortDenyRule).DeepCopyInto)
	out.ICMPs = copySlice(in.ICMPs, (*ICMPRule).DeepCopyInto)
}

// DeepCopyInto copies in into out.
func (in *CIDRRule) DeepCopyInto(out *CIDRRule) {
	*out = *in
	out.CIDRGroupSelector = in.CIDRGroupSelector.DeepCopy()
	out.ExceptCIDRs = copyValues(in.ExceptCIDRs)
}

// DeepCopyInto copies in into out.
func (in *Groups) DeepCopyInto(out *Groups) {
	*out = *in
	if in.AWS != nil {
		out.AWS = &AWSGroup{
			Labels:              copyMap(in.AWS.Labels),
			SecurityGroupsIds:   copyValues(in.AWS.SecurityGroupsIds),
			SecurityGroupsNames: copyValues(in.AWS.SecurityGroupsNames),
			Region:              in.AWS.Region,
		}
	}
}

// DeepCopyInto copies in into out.
func (in *Service) DeepCopyInto(out *Service) {
	*out = *in
	if in.K8sServiceSelector != nil {
		out.K8sServiceSelector = &K8sServiceSelectorNamespace{Namespace: in.K8sServiceSelector.Namespace}
		in.K8sServiceSelector.Selector.DeepCopyInto(&out.K8sServiceSelector.Selector)
	}
	out.K8sService = copyPtr(in.K8sService)
}

// DeepCopyInto copies in into out.
func (in *ICMPRule) DeepCopyInto(out *ICMPRule) {
	*out = *in
	out.Fields = copySlice(in.Fields, func(in, out *ICMPField) {
		*out = *in
		out.Type = copyPtr(in.Type)
	})
}

// DeepCopyInto copies in into out.
func (in *PortRule) DeepCopyInto(out *PortRule) {
	*out = *in
	out.Ports = copyValues(in.Ports)
	out.TerminatingTLS = in.TerminatingTLS.DeepCopy()
	out.OriginatingTLS = in.OriginatingTLS.DeepCopy()
	out.ServerNames = copyValues(in.ServerNames)
	if in.Listener != nil {
		out.Listener = &Listener{Name: in.Listener.Name, Priority: in.Listener.Priority, EnvoyConfig: copyPtr(in.Listener.EnvoyConfig)}
	}
	out.Rules = in.Rules.DeepCopy()
}

// DeepCopyInto copies in into out.
func (in *PortDenyRule) DeepCopyInto(out *PortDenyRule) {
	*out = *in
	out.Ports = copyValues(in.Ports)
}

// DeepCopy returns a copy of in.
func (in *TLSContext) DeepCopy() *TLSContext {
	if in == nil {
		return nil
	}
	out := *in
	out.Secret = copyPtr(in.Secret)
	return &out
}

// DeepCopy returns a copy of in.
func (in *L7Rules) DeepCopy() *L7Rules {
	if in == nil {
		return nil
	}
	out := *in
	out.HTTP = copySlice(in.HTTP, (*PortRuleHTTP).DeepCopyInto)
	out.Kafka = copyValues(in.Kafka)
	out.DNS = copyValues(in.DNS)
	out.L7 = copySlice(in.L7, func(in, out *PortRuleL7) { *out = copyMap(*in) })
	return &out
}

// DeepCopyInto copies in into out.
func (in *PortRuleHTTP) DeepCopyInto(out *PortRuleHTTP) {
	*out = *in
	out.Headers = copyValues(in.Headers)
	if in.HeaderMatches != nil {
		out.HeaderMatches = make([]*HeaderMatch, len(in.HeaderMatches))
		for i, h := range in.HeaderMatches {
			if h != nil {
				c := *h
				c.Secret = copyPtr(h.Secret)
				out.HeaderMatches[i] = &c
			}
		}
	}
}

// copySlice copies a slice element by element with f; nil stays nil.
func copySlice[T any](in []T, f func(in, out *T)) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		f(&in[i], &out[i])
	}
	return out
}

// copyValues copies a slice of values without pointers.
func copyValues[T any](in []T) []T {
	if in == nil {
		return nil
	}
	return append(make([]T, 0, len(in)), in...)
}

// copyPtr copies the value behind a pointer to a type without pointers.
func copyPtr[T any](in *T) *T {
	if in == nil {
		return nil
	}
	c := *in
	return &c
}

func copyMap(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
