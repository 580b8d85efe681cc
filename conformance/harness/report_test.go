package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// suiteOutput is the shape of the report the suite writes for a run of
// gateway and mesh profiles (abridged).
const suiteOutput = `apiVersion: gateway.networking.k8s.io/v1
date: "2026-12-06T12:09:53Z"
gatewayAPIChannel: experimental
gatewayAPIVersion: v1.6.3
implementation:
  organization: nodemesh
  project: nodemesh
  version: abc123
kind: ConformanceReport
mode: default
profiles:
- core:
    result: success
  name: GATEWAY-HTTP
- core:
    result: success
  name: MESH-HTTP
- core:
    result: failure
    failedTests: [MeshGRPCRouteWeight]
  name: MESH-GRPC
- core:
    result: success
  name: GATEWAY-TLS
`

func TestSplitReport(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "suite.yaml")
	if err := os.WriteFile(src, []byte(suiteOutput), 0o644); err != nil {
		t.Fatal(err)
	}
	gw, mesh := filepath.Join(dir, "reports", "gw.yaml"), filepath.Join(dir, "reports", "mesh.yaml")
	written, err := splitReport(src, gw, mesh)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(written, []string{gw, mesh}) {
		t.Errorf("written %v, want both reports", written)
	}
	for path, want := range map[string][]string{gw: {"GATEWAY-HTTP", "GATEWAY-TLS"}, mesh: {"MESH-HTTP", "MESH-GRPC"}} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Kind           string `json:"kind"`
			Channel        string `json:"gatewayAPIChannel"`
			Implementation struct {
				Version string `json:"version"`
			} `json:"implementation"`
			Profiles []struct {
				Name string `json:"name"`
				Core struct {
					Result      string   `json:"result"`
					FailedTests []string `json:"failedTests"`
				} `json:"core"`
			} `json:"profiles"`
		}
		if err := yaml.UnmarshalStrict(b, &r); err == nil || !strings.Contains(err.Error(), "unknown field") {
			// Strict decoding must trip over the fields this struct
			// leaves out (date, mode, ...): the split keeps them.
			t.Errorf("%s: the report lost its other fields (%v):\n%s", path, err, b)
		}
		if err := yaml.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range r.Profiles {
			names = append(names, p.Name)
		}
		if !slices.Equal(names, want) || r.Kind != "ConformanceReport" || r.Channel != "experimental" || r.Implementation.Version != "abc123" {
			t.Errorf("%s: profiles %v, kind %q, channel %q, version %q; want %v of the suite's report", path, names, r.Kind, r.Channel, r.Implementation.Version, want)
		}
		if path == mesh && (r.Profiles[1].Core.Result != "failure" || !slices.Equal(r.Profiles[1].Core.FailedTests, []string{"MeshGRPCRouteWeight"})) {
			t.Errorf("MESH-GRPC's result changed on the way: %+v", r.Profiles[1])
		}
	}

	// A run of the mesh profiles alone leaves the gateway report alone.
	if err := os.WriteFile(gw, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	meshOnly := strings.Replace(strings.Replace(suiteOutput, "name: GATEWAY-HTTP", "name: MESH-X", 1), "name: GATEWAY-TLS", "name: MESH-Y", 1)
	if err := os.WriteFile(src, []byte(meshOnly), 0o644); err != nil {
		t.Fatal(err)
	}
	if written, err := splitReport(src, gw, mesh); err != nil || !slices.Equal(written, []string{mesh}) {
		t.Errorf("mesh-only run wrote %v (%v), want the mesh report only", written, err)
	}
	if b, _ := os.ReadFile(gw); string(b) != "previous" {
		t.Errorf("mesh-only run rewrote the gateway report: %s", b)
	}

	// A profile of neither kind is an error, not a silent drop.
	if err := os.WriteFile(src, []byte(strings.Replace(suiteOutput, "GATEWAY-TLS", "OTHER", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := splitReport(src, gw, mesh); err == nil || !strings.Contains(err.Error(), `unknown profile "OTHER"`) {
		t.Errorf("unknown profile: err %v", err)
	}
}

func TestSkipped(t *testing.T) {
	for _, tc := range []struct {
		profiles, skip, want string
	}{
		{gatewayProfiles, "", ""},
		{gatewayProfiles, "A,B", "A,B"},
		{gatewayProfiles + "," + ciMeshProfiles, "", ""},
		{"MESH-HTTP", "A", "A,MeshGRPCRouteWeight"},
		{meshProfiles, "", ""},
		{"MESH-GRPC", "", ""},
	} {
		if got := skipped(options{profiles: tc.profiles, skipTests: tc.skip}); got != tc.want {
			t.Errorf("profiles %s, -skip-tests %q: skipped %q, want %q", tc.profiles, tc.skip, got, tc.want)
		}
	}
}
