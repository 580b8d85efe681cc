package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and Version of nodemesh's own API.
const (
	Group   = "nodemesh.io"
	Version = "v1alpha1"
)

// NodeProxyStatusResource is the resource NodeProxyStatus objects are
// served under.
var NodeProxyStatusResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "nodeproxystatuses"}

// NodeProxyStatus is one node's report of what its proxies serve. It is
// cluster-scoped and named after the node; only that node's agent writes
// it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,path=nodeproxystatuses,singular=nodeproxystatus
// +kubebuilder:printcolumn:name=Heartbeat,type=date,JSONPath=.status.heartbeatTime
type NodeProxyStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status NodeProxyStatusStatus `json:"status,omitempty"`
}

// NodeProxyStatusStatus is the body of a NodeProxyStatus.
type NodeProxyStatusStatus struct {
	// HeartbeatTime is when the agent last wrote the object. The agent
	// rewrites it periodically even when nothing changed, so a reader can
	// tell a live node from one whose agent is gone.
	HeartbeatTime metav1.Time `json:"heartbeatTime"`
	// ControllerName is the GatewayClass controllerName the agent programs.
	// +kubebuilder:validation:MaxLength=253
	ControllerName string `json:"controllerName,omitempty"`
	// Gateways lists every Gateway the agent translated, sorted by
	// namespace then name.
	// +kubebuilder:validation:MaxItems=10000
	Gateways []GatewayProgramming `json:"gateways,omitempty"`
	// Proxies are the node's proxies as the agent's xDS server sees them.
	// +kubebuilder:validation:MaxItems=1000
	Proxies []ProxyState `json:"proxies,omitempty"`
	// PublishError is set while the agent cannot publish its latest
	// translation (the previous one keeps serving).
	// +kubebuilder:validation:MaxLength=32768
	PublishError string `json:"publishError,omitempty"`
	// Policy is the node's network policy state; absent when the agent
	// compiles no policy.
	Policy *NodePolicyState `json:"policy,omitempty"`
	// CannotRedirect says why this node cannot send a Service's traffic
	// to its proxy (no datapath Service table or socket hooks, no mesh
	// listen address); empty when it can. nodemesh-controller then
	// refuses routes with Service parents (GAMMA), which nothing on that
	// node would steer.
	// +kubebuilder:validation:MaxLength=1024
	CannotRedirect string `json:"cannotRedirect,omitempty"`
}

// NodePolicyState is what one node enforces: every policy's state there,
// so a reader can tell which nodes have not enforced a policy yet.
type NodePolicyState struct {
	// Policies lists every policy the node compiled, in the order the
	// compiler applies them; at most MaxItems (Truncated says more exist).
	// +kubebuilder:validation:MaxItems=5000
	Policies []PolicyEnforcement `json:"policies,omitempty"`
	// Truncated is set when the node has more policies than Policies holds.
	Truncated bool `json:"truncated,omitempty"`
	// Endpoints counts the node's local endpoints.
	Endpoints int32 `json:"endpoints"`
	// DatapathError is the last datapath sync failure (the previous tables
	// stay in force).
	// +kubebuilder:validation:MaxLength=32768
	DatapathError string `json:"datapathError,omitempty"`
	// GatewayFromNode, when set, names the Gateway and Ingress traffic the
	// node's datapath refuses: connections from the node's own address
	// (no ingress address of a family) that a backend's L7 rules would
	// have to judge, where the proxy judges peers by address only.
	// +kubebuilder:validation:MaxLength=4096
	GatewayFromNode string `json:"gatewayFromNode,omitempty"`
}

// PolicyEnforcement is one node's state of one policy.
type PolicyEnforcement struct {
	// Kind is CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or
	// NetworkPolicy.
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind"`
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// State is Enforced, EnforcedPrevious, Pending or Rejected.
	// +kubebuilder:validation:MaxLength=32
	State string `json:"state"`
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
}

// GatewayProgramming is one node's verdict on one Gateway.
type GatewayProgramming struct {
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// ObservedGeneration is the Gateway generation the verdict is about.
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration"`
	// Status is True once the node's proxies acknowledged the Gateway's
	// configuration, False otherwise.
	// +kubebuilder:validation:Enum=True;False;Unknown
	Status metav1.ConditionStatus `json:"status"`
	// Reason uses the Gateway API Programmed reasons: Programmed, Pending,
	// Invalid, AddressNotAssigned, ...
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
	// Message explains the verdict; for a rejection it carries the proxy's
	// error text.
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`
}

// ProxyState summarises one proxy connected to the node's agent.
type ProxyState struct {
	// +kubebuilder:validation:MaxLength=1024
	Node      string `json:"node"`
	Connected bool   `json:"connected"`
	// Rejected is the proxy's latest rejection message, if any is newer
	// than its last acknowledgement.
	// +kubebuilder:validation:MaxLength=32768
	Rejected string `json:"rejected,omitempty"`
}

// NodeProxyStatusList is a list of NodeProxyStatus.
//
// +kubebuilder:object:root=true
type NodeProxyStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeProxyStatus `json:"items"`
}
