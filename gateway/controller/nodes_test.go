package controller

import (
	"github.com/nodemesh/nodemesh/mesh/input"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
)

func report(node string, beat time.Time, gps ...v1alpha1.GatewayProgramming) *v1alpha1.NodeProxyStatus {
	r := &v1alpha1.NodeProxyStatus{ObjectMeta: metav1.ObjectMeta{Name: node}}
	r.Status.HeartbeatTime = metav1.NewTime(beat)
	r.Status.ControllerName = "c"
	r.Status.Gateways = gps
	return r
}

func gp(gen int64, status metav1.ConditionStatus, reason, msg string) v1alpha1.GatewayProgramming {
	return v1alpha1.GatewayProgramming{Namespace: "ns", Name: "a", ObservedGeneration: gen, Status: status, Reason: reason, Message: msg}
}

func TestVerdictFor(t *testing.T) {
	now := time.Unix(10000, 0)
	fresh := now.Add(-time.Second)
	ok := gp(2, metav1.ConditionTrue, "Programmed", "programmed on 1 proxies")
	cases := []struct {
		name       string
		reports    []*v1alpha1.NodeProxyStatus
		status     metav1.ConditionStatus
		reason     string
		msgContain string
	}{
		{"no nodes", nil, metav1.ConditionFalse, "Pending", "no node agent"},
		{"all programmed", []*v1alpha1.NodeProxyStatus{report("n1", fresh, ok), report("n2", fresh, ok)}, metav1.ConditionTrue, "Programmed", "2 node"},
		{"old generation", []*v1alpha1.NodeProxyStatus{report("n1", fresh, ok), report("n2", fresh, gp(1, metav1.ConditionTrue, "Programmed", ""))}, metav1.ConditionFalse, "Pending", "n2"},
		{"missing on a node", []*v1alpha1.NodeProxyStatus{report("n1", fresh, ok), report("n2", fresh)}, metav1.ConditionFalse, "Pending", "n2"},
		{"nack wins", []*v1alpha1.NodeProxyStatus{report("n1", fresh, gp(2, metav1.ConditionFalse, "Pending", "waiting")), report("n2", fresh, gp(2, metav1.ConditionFalse, "Invalid", "proxy p rejected Listener: bad field"))}, metav1.ConditionFalse, "Invalid", "node n2: proxy p rejected Listener: bad field"},
		{"stale node ignored", []*v1alpha1.NodeProxyStatus{report("n1", fresh, ok), report("dead", now.Add(-time.Hour))}, metav1.ConditionTrue, "Programmed", "1 node"},
		{"other controller ignored", []*v1alpha1.NodeProxyStatus{report("n1", fresh, ok), func() *v1alpha1.NodeProxyStatus {
			r := report("n2", fresh)
			r.Status.ControllerName = "other"
			return r
		}()}, metav1.ConditionTrue, "Programmed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := verdictFor(key("a"), 2, liveReports(tc.reports, "c", now, time.Minute))
			if v.status != tc.status || v.reason != tc.reason || !strings.Contains(v.message, tc.msgContain) {
				t.Fatalf("got %+v", v)
			}
		})
	}
}

func TestApplyVerdictOnlyLowersTrue(t *testing.T) {
	st := gwv1.GatewayStatus{
		Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}},
		Listeners: []gwv1.ListenerStatus{
			{Name: "ok", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}}},
			{Name: "bad", Conditions: []metav1.Condition{{Type: "Programmed", Status: metav1.ConditionFalse, Reason: "Invalid", Message: "own reason"}}},
		},
	}
	applyVerdict(&st, 3, nodeVerdict{metav1.ConditionFalse, "Invalid", "node n: rejected"})
	if c := st.Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != "Invalid" || c.Message != "node n: rejected" || c.ObservedGeneration != 3 {
		t.Fatalf("gateway: %+v", c)
	}
	if c := st.Listeners[0].Conditions[0]; c.Status != metav1.ConditionFalse || c.Reason != "Invalid" {
		t.Fatalf("listener ok: %+v", c)
	}
	if c := st.Listeners[1].Conditions[0]; c.Message != "own reason" {
		t.Fatalf("listener bad lost its own reason: %+v", c)
	}
}

func TestHeartbeatOnly(t *testing.T) {
	mk := func(beat string, gen int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"name": "n"},
			"status": map[string]any{"heartbeatTime": beat, "gateways": []any{
				map[string]any{"namespace": "a", "name": "b", "observedGeneration": gen, "status": "True", "reason": "Programmed"},
			}},
		}}
	}
	if !heartbeatOnly(mk("2026-01-01T00:00:00Z", 1), mk("2026-01-01T00:00:30Z", 1)) {
		t.Error("a heartbeat-only update was seen as a change")
	}
	if heartbeatOnly(mk("2026-01-01T00:00:00Z", 1), mk("2026-01-01T00:00:30Z", 2)) {
		t.Error("a changed report was seen as a heartbeat")
	}
}

func key(name string) input.Key { return input.Key{Namespace: "ns", Name: name} }
