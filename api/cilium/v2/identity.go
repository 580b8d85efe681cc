package v2

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CiliumIdentity is one security identity: its name is the numeric
// identity and SecurityLabels the source-qualified labels ("k8s:app=web")
// that define it. Cilium's operator or agents allocate them; the labels on
// the object's metadata are only a copy for label-selector queries.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,path=ciliumidentities,singular=ciliumidentity,shortName={ciliumid},categories={cilium}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Namespace,type=string,JSONPath=`.metadata.labels.io\.kubernetes\.pod\.namespace`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
type CiliumIdentity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// SecurityLabels is the full label set of the identity, every key
	// prefixed with its source.
	SecurityLabels map[string]string `json:"security-labels"`
}

// CiliumIdentityList is a list of CiliumIdentity.
//
// +kubebuilder:object:root=true
type CiliumIdentityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumIdentity `json:"items"`
}
