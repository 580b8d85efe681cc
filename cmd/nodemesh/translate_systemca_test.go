package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodemesh/nodemesh/gateway"
)

const systemCAManifest = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nm}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: nm
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: api, port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  ports: [{name: https, port: 443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: api-tls}
spec:
  targetRefs: [{group: "", kind: Service, name: api}]
  validation:
    hostname: api.example.com
    wellKnownCACertificates: System
`

// TestTranslateTrustsSystemCAsAsTheAgentDoes: offline translation reads
// the host's CA bundle as the agent does (internal/systemca, which honours
// SSL_CERT_FILE), so a BackendTLSPolicy trusting the system CAs gets the
// status and upstream TLS the agent would give it; without a bundle it is
// refused, as on an agent without one.
func TestTranslateTrustsSystemCAsAsTheAgentDoes(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(manifest, []byte(systemCAManifest), 0o600); err != nil {
		t.Fatal(err)
	}
	crt, _ := exampleKeyPair(t)
	pemCA, err := base64.StdEncoding.DecodeString(crt)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, pemCA, 0o600); err != nil {
		t.Fatal(err)
	}

	policyAccepted := func(t *testing.T) (bool, string) {
		t.Helper()
		var out, errs bytes.Buffer
		if err := translateCmd([]string{"-f", manifest, "-type", "status", "-o", "json"}, &out, &errs); err != nil {
			t.Fatalf("translate: %v\n%s", err, errs.String())
		}
		var st struct {
			Policies []gateway.PolicyStatus `json:"policies"`
		}
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Policies) != 1 || len(st.Policies[0].Status.Ancestors) != 1 {
			t.Fatalf("policy status: %+v", st.Policies)
		}
		for _, c := range st.Policies[0].Status.Ancestors[0].Conditions {
			if c.Type == "Accepted" {
				return c.Status == "True", c.Message + "\n" + errs.String()
			}
		}
		t.Fatal("no Accepted condition")
		return false, ""
	}

	t.Run("bundle", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", bundle)
		if ok, msg := policyAccepted(t); !ok {
			t.Fatalf("the policy trusting the system CAs is refused although the host has a bundle: %s", msg)
		}
		var out, errs bytes.Buffer
		if err := translateCmd([]string{"-f", manifest, "-type", "clusters", "-o", "json"}, &out, &errs); err != nil {
			t.Fatalf("translate: %v\n%s", err, errs.String())
		}
		// The bundle is the upstream validation context's trusted CA
		// (bytes print as base64).
		if !strings.Contains(out.String(), `"inline_bytes": "`+crt+`"`) && !strings.Contains(out.String(), `"inline_bytes":"`+crt+`"`) {
			t.Fatalf("the cluster does not trust the system bundle:\n%s", out.String())
		}
	})
	t.Run("no bundle", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "missing.pem"))
		if ok, _ := policyAccepted(t); ok {
			t.Fatal("the policy is accepted without any system CA bundle")
		}
	})
}
