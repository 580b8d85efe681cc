package v2

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// CiliumNetworkPolicy is a namespaced policy: its endpointSelector (and
// every peer selector that names no namespace) only sees endpoints of the
// policy's own namespace. It holds one rule (Spec), a list of rules
// (Specs), or both.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,path=ciliumnetworkpolicies,singular=ciliumnetworkpolicy,shortName={cnp,ciliumnp},categories={cilium,ciliumpolicy}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Valid,type=string,JSONPath=`.status.conditions[?(@.type=='Valid')].status`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="has(self.spec) || has(self.specs)",message="a policy needs spec or specs"
type CiliumNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec  *Rule `json:"spec,omitempty"`
	Specs Rules `json:"specs,omitempty"`

	// Status is written by the agents that enforce the policy.
	Status CiliumNetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumNetworkPolicyList is a list of CiliumNetworkPolicy.
//
// +kubebuilder:object:root=true
type CiliumNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumNetworkPolicy `json:"items"`
}

// CiliumClusterwideNetworkPolicy is the cluster-scoped form: selectors
// see endpoints of every namespace, and a rule may select nodes
// (nodeSelector) instead of endpoints.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,path=ciliumclusterwidenetworkpolicies,singular=ciliumclusterwidenetworkpolicy,shortName={ccnp},categories={cilium,ciliumpolicy}
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name=Valid,type=string,JSONPath=`.status.conditions[?(@.type=='Valid')].status`
// +kubebuilder:printcolumn:name=Age,type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="has(self.spec) || has(self.specs)",message="a policy needs spec or specs"
type CiliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec  *Rule `json:"spec,omitempty"`
	Specs Rules `json:"specs,omitempty"`

	// Status is written by the agents that enforce the policy.
	Status CiliumNetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumClusterwideNetworkPolicyList is a list of
// CiliumClusterwideNetworkPolicy.
//
// +kubebuilder:object:root=true
type CiliumClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CiliumClusterwideNetworkPolicy `json:"items"`
}

// Rules is a list of rules.
type Rules []*Rule

// Rule selects the endpoints (or, cluster-wide, the nodes) it applies to
// and lists what they may receive and send.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Rule struct {
	// EndpointSelector selects the endpoints the rule applies to. Exactly
	// one of EndpointSelector and NodeSelector is set.
	EndpointSelector *EndpointSelector `json:"endpointSelector,omitempty"`
	// NodeSelector selects nodes (host policy); cluster-wide only.
	NodeSelector *EndpointSelector `json:"nodeSelector,omitempty"`

	Ingress     []IngressRule     `json:"ingress,omitempty"`
	IngressDeny []IngressDenyRule `json:"ingressDeny,omitempty"`
	Egress      []EgressRule      `json:"egress,omitempty"`
	EgressDeny  []EgressDenyRule  `json:"egressDeny,omitempty"`

	// Labels identify the rule (Cilium shows them in policy verdicts).
	Labels []Label `json:"labels,omitempty"`
	// EnableDefaultDeny says whether selecting an endpoint puts it into
	// default deny in each direction (default: yes for every direction
	// the rule has rules for).
	EnableDefaultDeny *DefaultDenyConfig `json:"enableDefaultDeny,omitempty"`
	Description       string             `json:"description,omitempty"`
	Log               *LogConfig         `json:"log,omitempty"`
}

// Label is a source-qualified label, as in a rule's labels.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Label struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
}

// DefaultDenyConfig overrides whether a rule enables default deny.
//
// +kubebuilder:pruning:PreserveUnknownFields
type DefaultDenyConfig struct {
	Ingress *bool `json:"ingress,omitempty"`
	Egress  *bool `json:"egress,omitempty"`
}

// LogConfig adds a value to the policy verdicts of a rule.
//
// +kubebuilder:pruning:PreserveUnknownFields
type LogConfig struct {
	Value string `json:"value,omitempty"`
}

// EndpointSelector is a Kubernetes label selector whose keys may carry a
// Cilium label source: "k8s:app", "reserved:host", "any:app"; a key
// without a source means any source.
//
// +kubebuilder:pruning:PreserveUnknownFields
type EndpointSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one matchExpressions entry.
//
// +kubebuilder:pruning:PreserveUnknownFields
type LabelSelectorRequirement struct {
	Key string `json:"key"`
	// Operator is In, NotIn, Exists or DoesNotExist.
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// IngressCommonRule lists the peers an ingress rule is about. With no peer
// field set the rule applies to every peer.
//
// +kubebuilder:pruning:PreserveUnknownFields
type IngressCommonRule struct {
	FromEndpoints []EndpointSelector `json:"fromEndpoints,omitempty"`
	FromRequires  []EndpointSelector `json:"fromRequires,omitempty"`
	FromCIDR      []string           `json:"fromCIDR,omitempty"`
	FromCIDRSet   []CIDRRule         `json:"fromCIDRSet,omitempty"`
	FromEntities  []string           `json:"fromEntities,omitempty"`
	FromGroups    []Groups           `json:"fromGroups,omitempty"`
	FromNodes     []EndpointSelector `json:"fromNodes,omitempty"`
}

// IngressRule allows traffic from its peers to its ports.
//
// +kubebuilder:pruning:PreserveUnknownFields
type IngressRule struct {
	IngressCommonRule `json:",inline"`

	ToPorts        []PortRule      `json:"toPorts,omitempty"`
	ICMPs          []ICMPRule      `json:"icmps,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
}

// IngressDenyRule denies traffic from its peers to its ports; a deny
// always wins over an allow.
//
// +kubebuilder:pruning:PreserveUnknownFields
type IngressDenyRule struct {
	IngressCommonRule `json:",inline"`

	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	ICMPs   []ICMPRule     `json:"icmps,omitempty"`
}

// EgressCommonRule lists the peers an egress rule is about.
//
// +kubebuilder:pruning:PreserveUnknownFields
type EgressCommonRule struct {
	ToEndpoints []EndpointSelector `json:"toEndpoints,omitempty"`
	ToRequires  []EndpointSelector `json:"toRequires,omitempty"`
	ToCIDR      []string           `json:"toCIDR,omitempty"`
	ToCIDRSet   []CIDRRule         `json:"toCIDRSet,omitempty"`
	ToEntities  []string           `json:"toEntities,omitempty"`
	ToServices  []Service          `json:"toServices,omitempty"`
	ToGroups    []Groups           `json:"toGroups,omitempty"`
	ToNodes     []EndpointSelector `json:"toNodes,omitempty"`
}

// EgressRule allows traffic to its peers' ports.
//
// +kubebuilder:pruning:PreserveUnknownFields
type EgressRule struct {
	EgressCommonRule `json:",inline"`

	ToPorts        []PortRule      `json:"toPorts,omitempty"`
	ToFQDNs        []FQDNSelector  `json:"toFQDNs,omitempty"`
	ICMPs          []ICMPRule      `json:"icmps,omitempty"`
	Authentication *Authentication `json:"authentication,omitempty"`
}

// EgressDenyRule denies traffic to its peers' ports.
//
// +kubebuilder:pruning:PreserveUnknownFields
type EgressDenyRule struct {
	EgressCommonRule `json:",inline"`

	ToPorts []PortDenyRule `json:"toPorts,omitempty"`
	ICMPs   []ICMPRule     `json:"icmps,omitempty"`
}

// CIDRRule is a prefix with optional exceptions, or a reference to a
// CiliumCIDRGroup.
//
// +kubebuilder:pruning:PreserveUnknownFields
type CIDRRule struct {
	Cidr              string            `json:"cidr,omitempty"`
	CIDRGroupRef      string            `json:"cidrGroupRef,omitempty"`
	CIDRGroupSelector *EndpointSelector `json:"cidrGroupSelector,omitempty"`
	ExceptCIDRs       []string          `json:"except,omitempty"`
}

// Groups selects peers from a cloud provider's grouping.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Groups struct {
	AWS *AWSGroup `json:"aws,omitempty"`
}

// AWSGroup selects AWS security groups.
//
// +kubebuilder:pruning:PreserveUnknownFields
type AWSGroup struct {
	Labels              map[string]string `json:"labels,omitempty"`
	SecurityGroupsIds   []string          `json:"securityGroupsIds,omitempty"`
	SecurityGroupsNames []string          `json:"securityGroupsNames,omitempty"`
	Region              string            `json:"region,omitempty"`
}

// Service selects Kubernetes Services as egress peers.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Service struct {
	K8sServiceSelector *K8sServiceSelectorNamespace `json:"k8sServiceSelector,omitempty"`
	K8sService         *K8sServiceNamespace         `json:"k8sService,omitempty"`
}

// K8sServiceSelectorNamespace selects Services by label.
//
// +kubebuilder:pruning:PreserveUnknownFields
type K8sServiceSelectorNamespace struct {
	Selector  EndpointSelector `json:"selector"`
	Namespace string           `json:"namespace,omitempty"`
}

// K8sServiceNamespace names a Service.
//
// +kubebuilder:pruning:PreserveUnknownFields
type K8sServiceNamespace struct {
	ServiceName string `json:"serviceName,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
}

// FQDNSelector matches DNS names.
//
// +kubebuilder:pruning:PreserveUnknownFields
type FQDNSelector struct {
	MatchName    string `json:"matchName,omitempty"`
	MatchPattern string `json:"matchPattern,omitempty"`
}

// ICMPRule allows ICMP messages by type.
//
// +kubebuilder:pruning:PreserveUnknownFields
type ICMPRule struct {
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is one ICMP family and message type (a number or a name such
// as "EchoRequest").
//
// +kubebuilder:pruning:PreserveUnknownFields
type ICMPField struct {
	Family string `json:"family,omitempty"`
	// Type is the message type, a number or a name.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:XIntOrString
	Type *IntOrString `json:"type"`
}

// Authentication says whether a rule's traffic needs mutual
// authentication between the nodes' agents.
//
// +kubebuilder:pruning:PreserveUnknownFields
type Authentication struct {
	// Mode is "disabled", "required" or "test-always-fail".
	Mode string `json:"mode"`
}
