package agent

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/gateway"
	"github.com/nodemesh/nodemesh/internal/agent/api"
)

// Status returns the current status with the proxies' view applied: a
// Gateway is Programmed only when every connected proxy acknowledged the
// published configuration. The result is a copy the caller owns.
func (a *Agent) Status() *api.Status {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	proxies := a.cfg.Publisher.Proxies()
	out := st
	out.Policy = a.policyStatus(proxies)
	out.EnvoyConfigs = a.envoyConfigStatus(proxies)
	out.Proxies = proxies
	out.IngressRejections = ingressRejections(st.Ingresses, st.Versions, proxies)
	out.Gateways = make([]gateway.GatewayStatus, len(st.Gateways))
	for i, g := range st.Gateways {
		out.Gateways[i] = gateway.GatewayStatus{Key: g.Key, Status: *g.Status.DeepCopy()}
		v := dataplaneVerdict{metav1.ConditionFalse, string(gwv1.GatewayReasonPending), "the configuration has not been published yet"}
		if st.Versions != nil {
			v = verdictFor(g.Key, st.Versions, proxies)
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
