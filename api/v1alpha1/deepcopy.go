package v1alpha1

import "k8s.io/apimachinery/pkg/runtime"

// DeepCopyInto copies in into out.
func (in *NodeProxyStatus) DeepCopyInto(out *NodeProxyStatus) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Status.DeepCopyInto(&out.Status)
}

// DeepCopy returns a copy of in.
func (in *NodeProxyStatus) DeepCopy() *NodeProxyStatus {
	if in == nil {
		return nil
	}
	out := new(NodeProxyStatus)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *NodeProxyStatus) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopyInto copies in into out.
func (in *NodeProxyStatusStatus) DeepCopyInto(out *NodeProxyStatusStatus) {
	*out = *in
	in.HeartbeatTime.DeepCopyInto(&out.HeartbeatTime)
	if in.Gateways != nil {
		out.Gateways = make([]GatewayProgramming, len(in.Gateways))
		copy(out.Gateways, in.Gateways)
	}
	if in.Proxies != nil {
		out.Proxies = make([]ProxyState, len(in.Proxies))
		copy(out.Proxies, in.Proxies)
	}
}

// DeepCopyInto copies in into out.
func (in *NodeProxyStatusList) DeepCopyInto(out *NodeProxyStatusList) {
	*out = *in
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]NodeProxyStatus, len(in.Items))
		for i := range in.Items {
			in.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
}

// DeepCopy returns a copy of in.
func (in *NodeProxyStatusList) DeepCopy() *NodeProxyStatusList {
	if in == nil {
		return nil
	}
	out := new(NodeProxyStatusList)
	in.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *NodeProxyStatusList) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}
