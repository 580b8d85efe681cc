package gateway

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// TestMeshCannotRedirect: where nothing sends a Service's traffic to the
// proxy, a route whose Service parent would be accepted is refused on
// that parent (NotRedirected, with the reason given), no listener or
// redirect is produced, and a parent that is wrong anyway keeps its own
// reason. The same input translates as accepted and steered without the
// option, so the test cannot pass by refusing everything.
func TestMeshCannotRedirect(t *testing.T) {
	snap := loadCase(t, "testdata/gamma/grpc.in.yaml")
	const why = "this node cannot send a Service's traffic to the proxy"
	for _, tc := range []struct {
		name           string
		cannotRedirect string
		wantReason     string
		wantMesh       int
	}{
		{"can redirect", "", string(gwv1.RouteReasonAccepted), 2},
		{"cannot redirect", why, RouteReasonNotRedirected, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Mesh: testMesh}
			opts.Mesh.CannotRedirect = tc.cannotRedirect
			res := Translate(snap, opts)
			if len(res.Mesh) != tc.wantMesh {
				t.Errorf("Mesh = %+v, want %d redirects", res.Mesh, tc.wantMesh)
			}
			if tc.wantMesh == 0 {
				for _, l := range res.Config.Listeners {
					if strings.HasPrefix(l.Name, "mesh/") {
						t.Errorf("listener %s served where nothing redirects to it", l.Name)
					}
				}
			}
			seen := 0
			for _, rs := range res.Routes {
				for _, p := range rs.Status.Parents {
					c := meta.FindStatusCondition(p.Conditions, string(gwv1.RouteConditionAccepted))
					if c == nil {
						t.Fatalf("%s %s: no Accepted condition", rs.Kind, rs.Key)
					}
					if rs.Key.Name == "on-http1" {
						// Refused for its ports whatever the node can do.
						if c.Reason != string(gwv1.RouteReasonNoMatchingParent) {
							t.Errorf("%s: reason %s, want NoMatchingParent", rs.Key, c.Reason)
						}
						continue
					}
					seen++
					if c.Reason != tc.wantReason {
						t.Errorf("%s %s parent %s: reason %s (%s), want %s", rs.Kind, rs.Key, p.ParentRef.Name, c.Reason, c.Message, tc.wantReason)
					}
					if tc.cannotRedirect != "" && (c.Status != "False" || !strings.Contains(c.Message, why)) {
						t.Errorf("%s %s: Accepted %s %q, want False naming why", rs.Kind, rs.Key, c.Status, c.Message)
					}
				}
			}
			if seen != 4 {
				t.Errorf("checked %d Service parents, want 4", seen)
			}
		})
	}
}
