package agent

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

func TestVerdictFor(t *testing.T) {
	want := map[string]string{"Listener": "l1", "RouteConfiguration": "r1"}
	acked := []dataplane.TypeState{{Type: "Listener", Sent: "l1", Acked: "l1"}, {Type: "RouteConfiguration", Sent: "r1", Acked: "r1"}}
	nack := func(msg string, objs ...dataplane.Object) []dataplane.TypeState {
		return []dataplane.TypeState{
			{Type: "Listener", Sent: "l1", Acked: "l1"},
			{Type: "RouteConfiguration", Sent: "r1", Acked: "r0", Nack: &dataplane.Nack{Version: "r1", Message: msg, Objects: objs}},
		}
	}
	gateway := func(ns, name string) dataplane.Object {
		return dataplane.Object{Kind: dataplane.ObjectGateway, Namespace: ns, Name: name}
	}
	policy := dataplane.Object{Kind: dataplane.ObjectPolicy}
	service := dataplane.Object{Kind: dataplane.ObjectService, Namespace: "default", Name: "x"}
	cases := []struct {
		name     string
		proxies  []dataplane.Proxy
		status   metav1.ConditionStatus
		reason   string
		contains string
	}{
		{"no proxy", nil, metav1.ConditionFalse, "Pending", "no proxy is connected"},
		{"disconnected only", []dataplane.Proxy{{Node: "a", Types: acked}}, metav1.ConditionFalse, "Pending", "no proxy"},
		{"all acked", []dataplane.Proxy{{Node: "a", Connected: true, Types: acked}}, metav1.ConditionTrue, "Programmed", "1 proxies"},
		{"one behind", []dataplane.Proxy{
			{Node: "a", Connected: true, Types: acked},
			{Node: "b", Connected: true, Types: acked[:1]},
		}, metav1.ConditionFalse, "Pending", "acknowledge the configuration: b"},
		{"nack of this gateway's resource", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`route "gateway/default/eg/80/http": bad regex`, gateway("default", "eg"))}},
			metav1.ConditionFalse, "Invalid", `proxy a rejected RouteConfiguration version r1: route "gateway/default/eg/80/http": bad regex`},
		{"nack of this gateway's and another's", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`boom`, gateway("default", "other"), gateway("default", "eg"))}},
			metav1.ConditionFalse, "Invalid", "boom"},
		{"nack of another gateway's resource", []dataplane.Proxy{{Node: "a", Connected: true, Types: nack(`gateway/default/other/80: boom`, gateway("default", "other"))}},
			metav1.ConditionFalse, "Pending", "because of another resource: gateway/default/other/80: boom"},
		{"nack of a policy resource", []dataplane.Proxy{{Node: "a", Connected: true, Types: nack(`listener "policy/ingress/http": boom`, policy)}},
			metav1.ConditionFalse, "Pending", "because of another resource"},
		{"nack of an ingress's resource", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`listener "ingress/default/web/80": boom`, dataplane.Object{Kind: dataplane.ObjectIngress, Namespace: "default", Name: "web"})}},
			metav1.ConditionFalse, "Pending", "because of another resource"},
		{"nack of the shared ingress listeners", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`listener "ingress/shared/80": boom`, dataplane.Object{Kind: dataplane.ObjectIngress})}},
			metav1.ConditionFalse, "Pending", "because of another resource"},
		{"nack of no gateway's or policy's resource", []dataplane.Proxy{{Node: "a", Connected: true, Types: nack(`cluster "service/default/x/80": boom`, service)}},
			metav1.ConditionFalse, "Invalid", "boom"},
		{"nack of unknown resources", []dataplane.Proxy{{Node: "a", Connected: true, Types: nack(`boom`)}},
			metav1.ConditionFalse, "Invalid", "boom"},
		// The proxy's text is not read: a message that quotes this
		// Gateway's name while another Gateway's resource was rejected
		// does not make this one Invalid, nor does a message naming no
		// resource hide a rejection of this Gateway's.
		{"message quotes this gateway, another's was rejected", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`route "gateway/default/other/80/http": header value "gateway/default/eg/": bad`, gateway("default", "other"))}},
			metav1.ConditionFalse, "Pending", "because of another resource"},
		{"message quotes policy, this gateway's was rejected", []dataplane.Proxy{{Node: "a", Connected: true,
			Types: nack(`regex "policy/.*": bad`, gateway("default", "eg"))}},
			metav1.ConditionFalse, "Invalid", `regex "policy/.*": bad`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := verdictFor(input.Key{Namespace: "default", Name: "eg"}, want, tc.proxies)
			if v.status != tc.status || v.reason != tc.reason || !strings.Contains(v.message, tc.contains) {
				t.Errorf("verdict = %+v, want %s/%s containing %q", v, tc.status, tc.reason, tc.contains)
			}
		})
	}
}

func TestApplyVerdictKeepsTranslationFailures(t *testing.T) {
	st := &gwv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}},
		Listeners: []gwv1.ListenerStatus{
			{Name: "ok", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}}},
			{Name: "bad", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionFalse, Reason: "Invalid", Message: "bad cert"}}},
		},
	}
	applyVerdict(st, 3, dataplaneVerdict{metav1.ConditionFalse, "Pending", "waiting"})
	if c := meta.FindStatusCondition(st.Conditions, "Programmed"); c.Status != metav1.ConditionFalse || c.Reason != "Pending" || c.ObservedGeneration != 3 {
		t.Errorf("gateway Programmed = %+v, want False/Pending at generation 3", c)
	}
	if c := meta.FindStatusCondition(st.Listeners[0].Conditions, "Programmed"); c.Reason != "Pending" {
		t.Errorf("listener ok Programmed = %+v, want Pending", c)
	}
	if c := meta.FindStatusCondition(st.Listeners[1].Conditions, "Programmed"); c.Reason != "Invalid" || c.Message != "bad cert" {
		t.Errorf("listener bad Programmed = %+v, want its translation failure kept", c)
	}
}
