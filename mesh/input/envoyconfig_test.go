package input

import (
	"os"
	"strings"
	"testing"
)

// Cilium's examples decode unchanged: both Envoy config kinds, the
// clusterwide one without a namespace, the namespaced one in its own, the
// Envoy resources kept as raw JSON for mesh/envoyconfig.
func TestDecodeEnvoyConfigKinds(t *testing.T) {
	var data []byte
	for _, f := range []string{"traffic-shifting.yaml", "circuit-breaker.yaml"} {
		b, err := os.ReadFile("../../examples/envoyconfig/" + f)
		if err != nil {
			t.Fatal(err)
		}
		data = append(append(data, b...), "\n---\n"...)
	}
	objs, err := Decode("cec.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.CiliumEnvoyConfigs) != 1 || len(s.CiliumClusterwideEnvoyConfigs) != 1 {
		t.Fatalf("%d CECs, %d CCECs", len(s.CiliumEnvoyConfigs), len(s.CiliumClusterwideEnvoyConfigs))
	}
	cec, ccec := s.CiliumEnvoyConfigs[0], s.CiliumClusterwideEnvoyConfigs[0]
	if cec.Namespace != "default" || cec.Name != "envoy-lb-listener" || len(cec.Spec.BackendServices) != 2 || len(cec.Spec.Resources) != 4 {
		t.Fatalf("CEC decoded as %+v", cec)
	}
	if ccec.Namespace != "" || ccec.Name != "envoy-circuit-breaker" || !strings.Contains(string(ccec.Spec.Resources[2].Raw), `"serviceName":"default/echo-service:8080"`) {
		t.Fatalf("CCEC decoded as %s %s, resources[2] %s", ccec.Namespace, ccec.Name, ccec.Spec.Resources[2].Raw)
	}
	if _, ok := s.RecordedHash(cec); !ok {
		t.Fatal("no content hash recorded")
	}
}

func TestDecodeEnvoyConfigRejectsUnknownFields(t *testing.T) {
	_, err := Decode("cec.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumEnvoyConfig
metadata: {name: x}
spec:
  services: [{name: svc, listner: l}]
`))
	if err == nil || !strings.Contains(err.Error(), "listner") {
		t.Fatalf("got %v, want an error naming the unknown field", err)
	}
}
