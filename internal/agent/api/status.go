package api

import (
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/policy"
)

// Status is the agent's answer to "what is the state of my
// configuration", served on its local API and shown by `nodemesh status`.
type Status struct {
	// Generation counts Apply calls.
	Generation uint64 `json:"generation"`
	// Versions are the published per-type versions proxies must ACK.
	Versions map[string]string `json:"versions,omitempty"`
	// ConfigErrors are problems with the input itself (a file that does
	// not decode or is not read, or a config directory that cannot be
	// read); the last good version of that input is in use.
	ConfigErrors []string `json:"configErrors,omitempty"`
	// PublishError is set when the latest translation could not be
	// published; the configuration before it keeps serving.
	PublishError string `json:"publishError,omitempty"`
	// Warnings name parts of the configuration the data plane could not
	// express exactly, and what it did instead.
	Warnings []string `json:"warnings,omitempty"`

	GatewayClasses []gateway.GatewayClassStatus `json:"gatewayClasses,omitempty"`
	Gateways       []gateway.GatewayStatus      `json:"gateways,omitempty"`
	Routes         []gateway.RouteStatus        `json:"routes,omitempty"`
	Proxies        []dataplane.Proxy            `json:"proxies,omitempty"`
	// Ingresses are the translation's outcome for every Ingress of our
	// class.
	Ingresses []gateway.IngressStatus `json:"ingresses,omitempty"`
	// IngressRejections are the proxies' rejections of Ingresses'
	// resources, each laid on the Ingress it was made for.
	IngressRejections []IngressRejection `json:"ingressRejections,omitempty"`

	// Policy reports network policy: per-policy verdicts, identities,
	// endpoints and the datapath's state (nil without a policy compiler).
	Policy *PolicyStatus `json:"policy,omitempty"`

	// EnvoyConfigs has the verdict on every CiliumClusterwideEnvoyConfig
	// and CiliumEnvoyConfig (mesh/envoyconfig), with the proxies'
	// rejections of their resources overlaid.
	EnvoyConfigs []EnvoyConfigStatus `json:"envoyConfigs,omitempty"`
}

// EnvoyConfigStatus is the state of one Envoy config object.
type EnvoyConfigStatus struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	Generation int64  `json:"generation,omitempty"`
	// Valid is false when the config was refused (by translation, or by
	// a proxy: Reason ProxyRejected); none of its resources then serve
	// and the Services it redirects refuse connections.
	Valid   bool   `json:"valid"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// Pending is set while the proxies have not acknowledged the
	// listeners its Services are redirected to; until they do,
	// connections to those Services are refused.
	Pending bool `json:"pending,omitempty"`
}

// PolicyStatus is the policy part of Status.
type PolicyStatus struct {
	Policies []policy.PolicyStatus `json:"policies,omitempty"`
	// Identities counts identities in use, reserved ones excluded;
	// Endpoints the local endpoints.
	Identities int `json:"identities"`
	Endpoints  int `json:"endpoints"`
	// Rows is the number of datapath policy rows desired.
	Rows int `json:"rows"`
	// DatapathPending is set while new rows wait for the proxies to
	// acknowledge the listeners they redirect to.
	DatapathPending bool `json:"datapathPending,omitempty"`
	// DatapathError is the last datapath sync failure (the previous
	// tables stay in force).
	DatapathError string `json:"datapathError,omitempty"`
	// ProxyError is a proxy's rejection of the published policy
	// configuration (the proxy keeps its previous one).
	ProxyError string   `json:"proxyError,omitempty"`
	Problems   []string `json:"problems,omitempty"`
	// IngressEndpoint is the node's ingress endpoint (reserved:ingress),
	// whose policy the proxy's Gateway and Ingress listeners enforce; nil
	// when the node runs none (policy.Options.IngressEndpoint).
	IngressEndpoint *IngressEndpointStatus `json:"ingressEndpoint,omitempty"`
	// GatewayFromNode, when set, says that Gateway and Ingress
	// connections leave from the node's own address (no ingress address
	// of a family) and that the datapath refuses those the backends'
	// L7 rules on this node would have to judge, because the proxy's
	// policy listener judges peers by address only (it would see the
	// host, not ingress), naming the ports. Never set when the proxy
	// reads the datapath's identities.
	GatewayFromNode string `json:"gatewayFromNode,omitempty"`
}

// IngressEndpointStatus is the state of the node's ingress endpoint.
type IngressEndpointStatus struct {
	// Identity is the reserved identity ingress (8), Labels its labels.
	Identity uint32   `json:"identity"`
	Labels   []string `json:"labels"`
	// Selected: some policy applies to it, in either direction.
	Selected bool `json:"selected"`
	// Ingress is world → ingress (the clients of the Gateway and Ingress
	// listeners), Egress ingress → backend (their backends).
	Ingress IngressDirectionStatus `json:"ingress"`
	Egress  IngressDirectionStatus `json:"egress"`
	// Policies are the policies that apply to it, as "<kind>/<name>" or
	// "<kind>/<namespace>/<name>", in the order of Policies.
	Policies []string `json:"policies,omitempty"`
}

// IngressDirectionStatus is one direction of the ingress endpoint.
type IngressDirectionStatus struct {
	State IngressDirectionState `json:"state"`
	// Reason says why a FailClosed direction denies everything, or what
	// a Pending or Rejected one waits for.
	Reason string `json:"reason,omitempty"`
	// AllowRules and DenyRules count the compiled rules (deny wins).
	AllowRules int `json:"allowRules,omitempty"`
	DenyRules  int `json:"denyRules,omitempty"`
}

// IngressDirectionState is the state of a direction of the ingress
// endpoint.
type IngressDirectionState string

const (
	// IngressUnenforced: no policy selects the direction; it allows
	// everything, as in Cilium.
	IngressUnenforced IngressDirectionState = "Unenforced"
	// IngressEnforced: the proxies enforce the direction's rules.
	IngressEnforced IngressDirectionState = "Enforced"
	// IngressFailClosed: a policy asks for what the proxy cannot enforce
	// on the ingress endpoint (or is rejected and held closed), so the
	// direction denies everything (Reason names it).
	IngressFailClosed IngressDirectionState = "FailClosed"
	// IngressPending: the proxies have not acknowledged the listeners
	// that carry the direction's current rules; the previous ones are in
	// force.
	IngressPending IngressDirectionState = "Pending"
	// IngressRejected: a proxy refused those listeners and keeps its
	// previous ones.
	IngressRejected IngressDirectionState = "Rejected"
)

// IngressRejection is a proxy's rejection of (one of) an Ingress's
// resources: its listener or route configuration, or the shared listener
// set that serves it.
type IngressRejection struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Message names the proxy and carries its error text.
	Message string `json:"message"`
}
