package v2alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumGatewayClassConfig parameterises the Gateways of a GatewayClass
// that names it in spec.parametersRef: chiefly the Service each Gateway
// gets.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,path=ciliumgatewayclassconfigs,singular=ciliumgatewayclassconfig,shortName={cgcc},categories={cilium}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Accepted,type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name=Description,type=string,JSONPath=`.spec.description`,priority=1
type CiliumGatewayClassConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CiliumGatewayClassConfigSpec `json:"spec,omitempty"`
	// Status is written by the Gateway controller.
	Status CiliumGatewayClassConfigStatus `json:"status,omitempty"`
}

// CiliumGatewayClassConfigList is a list of CiliumGatewayClassConfig.
//
// +kubebuilder:object:root=true
type CiliumGatewayClassConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumGatewayClassConfig `json:"items"`
}

// CiliumGatewayClassConfigSpec is the configuration.
type CiliumGatewayClassConfigSpec struct {
	// Description says what the configuration is for.
	//
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Description string `json:"description,omitempty"`
	// Service shapes the Service generated for each Gateway.
	//
	// +optional
	Service *ServiceConfig `json:"service,omitempty"`
}

// ServiceConfig holds the Service fields a configuration may set; each
// has the meaning of the Service field of the same name.
type ServiceConfig struct {
	// Type of the Service: LoadBalancer (the default) or NodePort.
	//
	// +kubebuilder:validation:Enum=LoadBalancer;NodePort
	// +kubebuilder:default=LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// ExternalTrafficPolicy: Cluster (the default) or Local.
	//
	// +kubebuilder:validation:Enum=Cluster;Local
	// +kubebuilder:default=Cluster
	// +optional
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
	// LoadBalancerClass selects the load-balancer implementation.
	//
	// +optional
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`
	// IPFamilies of the Service.
	//
	// +kubebuilder:validation:MaxItems=2
	// +listType=atomic
	// +optional
	IPFamilies []corev1.IPFamily `json:"ipFamilies,omitempty"`
	// IPFamilyPolicy of the Service.
	//
	// +optional
	IPFamilyPolicy *corev1.IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`
	// AllocateLoadBalancerNodePorts of the Service.
	//
	// +optional
	AllocateLoadBalancerNodePorts *bool `json:"allocateLoadBalancerNodePorts,omitempty"`
	// LoadBalancerSourceRanges restricts (Allow) or excludes (Deny) the
	// clients of the load balancer by CIDR.
	//
	// +listType=atomic
	// +optional
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`
	// LoadBalancerSourceRangesPolicy: Allow (the default) or Deny.
	//
	// +kubebuilder:validation:Enum=Allow;Deny
	// +kubebuilder:default=Allow
	// +optional
	LoadBalancerSourceRangesPolicy string `json:"loadBalancerSourceRangesPolicy,omitempty"`
	// TrafficDistribution of the Service.
	//
	// +optional
	TrafficDistribution *string `json:"trafficDistribution,omitempty"`
}

// CiliumGatewayClassConfigStatus reports whether the configuration is
// accepted.
type CiliumGatewayClassConfigStatus struct {
	// Conditions: Accepted.
	//
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}
