package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// CiliumEnvoyConfig hands Envoy resources (listeners, routes, clusters,
// endpoints, secrets) to the node proxies and says which Services' traffic
// goes to its listeners.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,path=ciliumenvoyconfigs,singular=ciliumenvoyconfig,shortName={cec},categories={cilium}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Valid,type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumEnvoyConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumEnvoyConfigSpec `json:"spec,omitempty"`
	// Status is written by the agents of the nodes the config selects.
	Status CiliumEnvoyConfigStatus `json:"status,omitempty"`
}

// CiliumEnvoyConfigList is a list of CiliumEnvoyConfig.
//
// +kubebuilder:object:root=true
type CiliumEnvoyConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumEnvoyConfig `json:"items"`
}

// CiliumClusterwideEnvoyConfig is the cluster-scoped form of
// CiliumEnvoyConfig: its Services may live in any namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,path=ciliumclusterwideenvoyconfigs,singular=ciliumclusterwideenvoyconfig,shortName={ccec},categories={cilium}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Valid,type=string,JSONPath=`.status.conditions[?(@.type=="Valid")].status`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumClusterwideEnvoyConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumEnvoyConfigSpec `json:"spec,omitempty"`
	// Status is written by the agents of the nodes the config selects.
	Status CiliumEnvoyConfigStatus `json:"status,omitempty"`
}

// CiliumClusterwideEnvoyConfigList is a list of
// CiliumClusterwideEnvoyConfig.
//
// +kubebuilder:object:root=true
type CiliumClusterwideEnvoyConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumClusterwideEnvoyConfig `json:"items"`
}

// CiliumEnvoyConfigStatus is what the agents report about an Envoy
// config. Cilium's kinds have no status (an agent only logs what Envoy
// rejected); nodemesh adds one so that a refused config says why on the
// object itself. An API server running Cilium's own CRDs has no status
// subresource for them, and then nothing is written.
type CiliumEnvoyConfigStatus struct {
	// Conditions hold one entry per type; the type nodemesh writes is
	// Valid: False, with the exact error, when a node refused the config
	// (translation or a proxy's rejection of one of its resources).
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []NetworkPolicyCondition `json:"conditions,omitempty"`
}

// CiliumEnvoyConfigSpec is the body of both Envoy config kinds.
//
// +kubebuilder:pruning:PreserveUnknownFields
type CiliumEnvoyConfigSpec struct {
	// Services are redirected to a listener of Resources.
	Services []ServiceListener `json:"services,omitempty"`
	// BackendServices have their endpoints published to the proxies (for
	// the clusters in Resources) without redirecting their traffic.
	BackendServices []BackendService `json:"backendServices,omitempty"`
	// Resources are Envoy resources, each a google.protobuf.Any in its
	// JSON form: "@type" names the message and the other keys are its
	// fields. They are kept as raw JSON here; decoding and validating them
	// is the consumer's job.
	Resources []runtime.RawExtension `json:"resources,omitempty"`
	// NodeSelector limits the config to the nodes whose labels match (a
	// Kubernetes label selector over node labels); unset means every node.
	NodeSelector *EndpointSelector `json:"nodeSelector,omitempty"`
}

// ServiceListener redirects a Service's traffic to a listener.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ServiceListener struct {
	Name string `json:"name"`
	// Namespace defaults to the config's own (CiliumEnvoyConfig, where it
	// cannot name another) or "default" (CiliumClusterwideEnvoyConfig).
	Namespace string `json:"namespace,omitempty"`
	// Ports limits the redirect to these Service ports; unset means all.
	Ports []uint16 `json:"ports,omitempty"`
	// Listener names a listener of Resources; unset means the first.
	Listener string `json:"listener,omitempty"`
}

// BackendService names a Service whose endpoints the proxies need.
//
// +kubebuilder:pruning:PreserveUnknownFields
type BackendService struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Ports limits the endpoints to these Service ports (numbers or
	// names); unset means all.
	Ports []string `json:"number,omitempty"`
}
