package controller

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/nodemesh/nodemesh/api/v1alpha1"
	"github.com/nodemesh/nodemesh/gateway/nodereport"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// FuzzNodeReports decodes NodeProxyStatus objects as JSON from the API
// server (one per line, written by every node's agent, or by anyone who
// may write the kind) and aggregates them as the controller does for a
// Gateway default/gw at generation 3. Properties: no panic; every message
// that reaches a status condition fits maxMessage and stays valid UTF-8
// when the reports were; Programmed is True only when every live report
// says True at generation 3 or later.
func FuzzNodeReports(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	obj := func(node, beat, status, reason, msg string, gen int) string {
		b, _ := json.Marshal(map[string]any{"apiVersion": "nodemesh.io/v1alpha1", "kind": "NodeProxyStatus",
			"metadata": map[string]any{"name": node},
			"status": map[string]any{"heartbeatTime": beat, "controllerName": "c", "cannotRedirect": msg,
				"gateways": []any{map[string]any{"namespace": "default", "name": "gw", "observedGeneration": gen, "status": status, "reason": reason, "message": msg}}}})
		return string(b)
	}
	beat := now.Format(time.RFC3339)
	f.Add(obj("n1", beat, "True", "Programmed", "", 3) + "\n" + obj("n2", beat, "True", "Programmed", "", 4))
	f.Add(obj("n1", beat, "False", "Invalid", "listener l: "+strings.Repeat("é", 5000), 3) + "\n" + obj("n2", beat, "True", "Programmed", "", 2))
	f.Add(obj("n1", "2020-01-01T00:00:00Z", "False", "Pending", "x", 3) + "\n" + `{"metadata":{"name":"n3"},"status":{"gateways":[{"name":7}]}}`)
	f.Add(`{"metadata":{"name":"n4"},"status":{"controllerName":"other","heartbeatTime":"` + beat + `"}}`)
	f.Fuzz(func(t *testing.T, b string) {
		var all []*v1alpha1.NodeProxyStatus
		validUTF8 := true
		for _, line := range strings.Split(b, "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m == nil {
				continue
			}
			r, err := nodereport.FromUnstructured(&unstructured.Unstructured{Object: m})
			if err != nil {
				continue
			}
			validUTF8 = validUTF8 && utf8.ValidString(r.Name) && utf8.ValidString(r.Status.CannotRedirect)
			for _, g := range r.Status.Gateways {
				validUTF8 = validUTF8 && utf8.ValidString(g.Message)
			}
			all = append(all, r)
		}
		reports := liveReports(all, "c", now, time.Minute)
		key := input.Key{Namespace: "default", Name: "gw"}
		v := verdictFor(key, 3, reports)
		for _, msg := range []string{v.message, cannotRedirect(reports)} {
			if len(msg) > maxMessage {
				t.Fatalf("message of %d bytes", len(msg))
			}
			if validUTF8 && !utf8.ValidString(msg) {
				t.Fatalf("message %q is not valid UTF-8", msg)
			}
		}
		if v.status == metav1.ConditionTrue {
			for _, r := range reports {
				gp := r.gateways[key]
				if gp == nil || gp.ObservedGeneration < 3 || gp.Status != metav1.ConditionTrue {
					t.Fatalf("programmed, but node %q reports %+v", r.node, gp)
				}
			}
			if len(reports) == 0 {
				t.Fatal("programmed without a live report")
			}
		}
	})
}
