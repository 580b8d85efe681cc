package gateway

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// classState is one GatewayClass whose controllerName is ours.
type classState struct {
	obj      *gwv1.GatewayClass
	accepted verdict
}

// processClasses picks the GatewayClasses this controller owns. Classes of
// other controllers are invisible from here on: their Gateways get no
// status and no configuration.
func (t *translator) processClasses() {
	t.classes = map[string]*classState{}
	for _, c := range t.in.GatewayClasses {
		if c.Spec.ControllerName != t.opts.ControllerName {
			continue
		}
		cs := &classState{obj: c, accepted: yes(string(gwv1.GatewayClassReasonAccepted), "GatewayClass is accepted")}
		// Silently ignoring parameters would run Gateways with settings
		// other than the ones asked for.
		if _, problem := ClassParameters(t.in, c, t.opts.HostNetwork); problem != "" {
			cs.accepted = no(string(gwv1.GatewayClassReasonInvalidParameters), "%s", problem)
		}
		t.classes[c.Name] = cs
	}
}

func (cs *classState) status() gwv1.GatewayClassStatus {
	return gwv1.GatewayClassStatus{Conditions: []metav1.Condition{
		cs.accepted.condition(string(gwv1.GatewayClassConditionStatusAccepted), cs.obj.Generation),
	}}
}
