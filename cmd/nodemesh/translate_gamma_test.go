package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestTranslateGAMMAStatus: `nodemesh translate -type status` reports a
// route's Service parents with the spec's reasons, and the problems
// printed to stderr name the Service parent.
func TestTranslateGAMMAStatus(t *testing.T) {
	const objs = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec: {clusterIP: 10.96.0.30, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs:
  - {group: "", kind: Service, name: echo, namespace: app}
  - {group: "", kind: Service, name: echo, namespace: app, port: 8080}
  rules:
  - backendRefs: [{name: echo, namespace: app, port: 80}]
`
	f := filepath.Join(t.TempDir(), "gamma.yaml")
	if err := os.WriteFile(f, []byte(objs), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if err := translateCmd([]string{"-f", f, "-type", "status", "-o", "json"}, &out, &errs); err != nil {
		t.Fatalf("translate: %v\n%s", err, errs.String())
	}
	var st struct {
		Routes []struct {
			Kind   string `json:"kind"`
			Status struct {
				Parents []struct {
					ParentRef struct {
						Kind *string `json:"kind"`
						Port *int    `json:"port"`
					} `json:"parentRef"`
					ControllerName string `json:"controllerName"`
					Conditions     []struct {
						Type, Status, Reason string
					} `json:"conditions"`
				} `json:"parents"`
			} `json:"status"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(st.Routes) != 1 || len(st.Routes[0].Status.Parents) != 2 {
		t.Fatalf("status %s, want one route with two Service parents", out.String())
	}
	want := []string{"Accepted", "NoMatchingParent"}
	for i, p := range st.Routes[0].Status.Parents {
		if p.ParentRef.Kind == nil || *p.ParentRef.Kind != "Service" || p.ControllerName != "nodemesh.io/gateway-controller" ||
			p.Conditions[0].Type != "Accepted" || p.Conditions[0].Reason != want[i] || p.Conditions[1].Reason != "ResolvedRefs" {
			t.Errorf("parent %d: %+v, want Service parent with Accepted reason %s", i, p, want[i])
		}
	}
	if !bytes.Contains(errs.Bytes(), []byte("HTTPRoute shop/r parent echo: Accepted=False (NoMatchingParent): Service app/echo has no port 8080")) {
		t.Errorf("stderr does not report the unmatched parent:\n%s", errs.String())
	}
}
