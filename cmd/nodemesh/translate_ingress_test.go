package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestTranslateIngress: `nodemesh translate` serves Ingresses as the agent
// would. Every Ingress golden input translates into Envoy resources (the
// xDS translator runs ValidateAll on each); Cilium's basic Ingress gets an
// address from the pool the Gateway in the same input uses, not the Gateway's, and its
// status says so; Ingress problems are printed.
func TestTranslateIngress(t *testing.T) {
	ins, err := filepath.Glob("../../gateway/testdata/ingress/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no Ingress golden inputs: %v", err)
	}
	for _, in := range ins {
		var out, errs bytes.Buffer
		if err := translateCmd([]string{"-f", in}, &out, &errs); err != nil {
			t.Errorf("%s: %v", filepath.Base(in), err)
		}
		if strings.Contains(errs.String(), "warning:") {
			t.Errorf("%s: %s", filepath.Base(in), errs.String())
		}
	}

	var out, errs bytes.Buffer
	args := []string{"-f", "../../gateway/testdata/ingress/basic.in.yaml", "-f", "../../examples/quickstart/00-gatewayclass.yaml", "-f", "../../examples/quickstart/10-gateway.yaml", "-type", "status"}
	if err := translateCmd(args, &out, &errs); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Gateways []struct {
			Status struct {
				Addresses []struct{ Value string }
			}
		}
		Ingresses []struct {
			Key     struct{ Namespace, Name string }
			Address string
			Served  bool
		}
	}
	if err := yaml.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Ingresses) != 1 || !st.Ingresses[0].Served || st.Ingresses[0].Address != "127.0.100.2" {
		t.Fatalf("Ingress status %+v, want basic-ingress served on 127.0.100.2\n%s", st.Ingresses, out.String())
	}
	if len(st.Gateways) == 0 || len(st.Gateways[0].Status.Addresses) == 0 || st.Gateways[0].Status.Addresses[0].Value != "127.0.100.1" {
		t.Fatalf("Gateway status %+v, want the 127.0.100.1 it asks for", st.Gateways)
	}

	out.Reset()
	errs.Reset()
	if err := translateCmd([]string{"-f", "../../gateway/testdata/ingress/annotations.in.yaml", "-type", "status"}, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs.String(), "Ingress default/bad-mode: metadata.annotations[ingress.cilium.io/loadbalancer-mode]") {
		t.Errorf("problems not printed:\n%s", errs.String())
	}
}
