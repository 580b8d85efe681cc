package agent

import (
	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
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

	// Policy reports network policy: per-policy verdicts, identities,
	// endpoints and the datapath's state (nil without a policy compiler).
	Policy *PolicyStatus `json:"policy,omitempty"`
}

// Status returns the current status with the proxies' view applied: a
// Gateway is Programmed only when every connected proxy acknowledged the
// published configuration. The result is a copy the caller owns.
func (a *Agent) Status() *Status {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	proxies := a.cfg.Publisher.Proxies()
	out := st
	out.Policy = a.policyStatus(proxies)
	out.Proxies = proxies
	out.Gateways = make([]gateway.GatewayStatus, len(st.Gateways))
	for i, g := range st.Gateways {
		out.Gateways[i] = gateway.GatewayStatus{Key: g.Key, Status: *g.Status.DeepCopy()}
		v := dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "the configuration has not been published yet"}
		if st.Versions != nil {
			v = verdictFor(g.Key.String(), st.Versions, proxies)
		}
		applyVerdict(&out.Gateways[i].Status, generationOf(g), v)
	}
	return &out
}

// generationOf is the observed generation the translation recorded.
func generationOf(g gateway.GatewayStatus) int64 {
	for _, c := range g.Status.Conditions {
		return c.ObservedGeneration
	}
	return 0
}
