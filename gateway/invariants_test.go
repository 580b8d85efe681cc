package gateway

import (
	"regexp"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// reasonPattern is the API server's validation of condition reasons.
var reasonPattern = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

// checkResult asserts what every Result must satisfy, whatever the input:
// the Config validates and every status is one the API server accepts.
func checkResult(t testing.TB, res *Result) {
	t.Helper()
	if res == nil || res.Config == nil {
		t.Fatal("Translate returned no Config")
	}
	if err := res.Config.Validate(); err != nil {
		t.Fatalf("Config does not validate:\n%v", err)
	}
	for _, c := range res.GatewayClasses {
		checkConditions(t, "GatewayClass "+c.Name, c.Status.Conditions, "Accepted")
	}
	for _, g := range res.Gateways {
		obj := "Gateway " + g.Key.String()
		checkConditions(t, obj, g.Status.Conditions, "Accepted", "Programmed")
		seen := map[gwv1.SectionName]bool{}
		for _, l := range g.Status.Listeners {
			if seen[l.Name] {
				t.Errorf("%s: listener status %q appears twice", obj, l.Name)
			}
			seen[l.Name] = true
			if l.AttachedRoutes < 0 {
				t.Errorf("%s: listener %q: negative attachedRoutes", obj, l.Name)
			}
			checkConditions(t, obj+" listener "+string(l.Name), l.Conditions, "Accepted", "Programmed", "ResolvedRefs", "Conflicted")
		}
	}
	for _, r := range res.Routes {
		obj := string(r.Kind) + " " + r.Key.String()
		if !slices.ContainsFunc(routeKinds, func(k *routeKind) bool { return k.kind == r.Kind }) {
			t.Errorf("%s: not a supported route kind", obj)
		}
		if len(r.Status.Parents) > 32 {
			t.Errorf("%s: %d parents, the API allows 32", obj, len(r.Status.Parents))
		}
		for _, p := range r.Status.Parents {
			if p.ControllerName == "" {
				t.Errorf("%s: parent %s without controllerName", obj, p.ParentRef.Name)
			}
			checkConditions(t, obj+" parent "+string(p.ParentRef.Name), p.Conditions, "Accepted", "ResolvedRefs")
		}
	}
	for _, p := range res.Policies {
		obj := string(p.Kind) + " " + p.Key.String()
		if len(p.Status.Ancestors) > 16 {
			t.Errorf("%s: %d ancestors, the API allows 16", obj, len(p.Status.Ancestors))
		}
		for _, a := range p.Status.Ancestors {
			if a.ControllerName == "" {
				t.Errorf("%s: ancestor %s without controllerName", obj, a.AncestorRef.Name)
			}
			checkConditions(t, obj+" ancestor "+string(a.AncestorRef.Name), a.Conditions, "Accepted", "ResolvedRefs")
		}
	}
}

func checkConditions(t testing.TB, obj string, conds []metav1.Condition, required ...string) {
	t.Helper()
	types := map[string]bool{}
	for _, c := range conds {
		if types[c.Type] {
			t.Errorf("%s: condition %s appears twice", obj, c.Type)
		}
		types[c.Type] = true
		if !reasonPattern.MatchString(c.Reason) {
			t.Errorf("%s: condition %s: invalid reason %q", obj, c.Type, c.Reason)
		}
		if c.Status != metav1.ConditionTrue && c.Status != metav1.ConditionFalse {
			t.Errorf("%s: condition %s: status %q", obj, c.Type, c.Status)
		}
		if len(c.Message) > 32768 {
			t.Errorf("%s: condition %s: message of %d bytes", obj, c.Type, len(c.Message))
		}
		if !c.LastTransitionTime.IsZero() {
			t.Errorf("%s: condition %s: lastTransitionTime set by pure code", obj, c.Type)
		}
	}
	for _, r := range required {
		if !types[r] {
			t.Errorf("%s: missing condition %s", obj, r)
		}
	}
}
