package v2

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CiliumNetworkPolicyStatus is what the agents enforcing a policy report
// about it; CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy share
// it. nodemesh reports through Conditions; DerivativePolicies is Cilium's
// and is described so that an object exported from a Cilium cluster, status
// included, still decodes.
type CiliumNetworkPolicyStatus struct {
	// DerivativePolicies reports, by name, the policies Cilium derived
	// from this one (toGroups expansion).
	DerivativePolicies map[string]CiliumNetworkPolicyNodeStatus `json:"derivativePolicies,omitempty"`

	// Conditions hold one entry per type; the type nodemesh writes is
	// Valid.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []NetworkPolicyCondition `json:"conditions,omitempty"`
}

// CiliumNetworkPolicyNodeStatus is one derived policy's state.
type CiliumNetworkPolicyNodeStatus struct {
	OK          bool              `json:"ok,omitempty"`
	Error       string            `json:"error,omitempty"`
	LastUpdated metav1.Time       `json:"lastUpdated,omitempty"`
	Revision    uint64            `json:"localPolicyRevision,omitempty"`
	Enforcing   bool              `json:"enforcing,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PolicyConditionType names a policy condition.
type PolicyConditionType string

// PolicyConditionValid is True when the policy was accepted and False,
// with the reason in the message, when it was rejected.
const PolicyConditionValid PolicyConditionType = "Valid"

// NetworkPolicyCondition is one condition of a policy's status.
type NetworkPolicyCondition struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	Type PolicyConditionType `json:"type"`
	// +kubebuilder:validation:Enum=True;False;Unknown
	Status             metav1.ConditionStatus `json:"status"`
	LastTransitionTime metav1.Time            `json:"lastTransitionTime,omitempty"`
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the policy generation the condition judged.
	// Cilium's condition has no such field (an API server with Cilium's
	// own CRD prunes it); nodemesh writes it so a reader can tell a stale
	// verdict from a current one.
	// +kubebuilder:validation:Minimum=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}
