package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	kjson "sigs.k8s.io/json"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// The tests in this file install the generated CRDs (controlplane.ForTest
// applies api.CRDManifests) into a real kube-apiserver and check what it
// stores. They skip unless the Kubernetes binaries are built; `make
// integration` builds them.

// docs decodes a YAML stream into generic objects, numbers as float64.
func docs(t *testing.T, data string) []map[string]any {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(data), 4096)
	var out []map[string]any
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
}

// normal re-encodes v through JSON so values read back from the API server
// (int64 numbers) compare equal to values decoded from YAML (float64).
func normal(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

type server struct {
	dyn dynamic.Interface
	ctx context.Context
}

func (s server) client(t *testing.T, obj map[string]any) dynamic.ResourceInterface {
	t.Helper()
	gv, _ := schema.ParseGroupVersion(obj["apiVersion"].(string))
	kind := obj["kind"].(string)
	res := map[string]schema.GroupVersionResource{
		"CiliumNetworkPolicy":            ciliumv2.CiliumNetworkPolicyResource,
		"CiliumClusterwideNetworkPolicy": ciliumv2.CiliumClusterwideNetworkPolicyResource,
		"CiliumIdentity":                 ciliumv2.CiliumIdentityResource,
		"CiliumEnvoyConfig":              ciliumv2.CiliumEnvoyConfigResource,
		"CiliumClusterwideEnvoyConfig":   ciliumv2.CiliumClusterwideEnvoyConfigResource,
	}[kind]
	if res.Resource == "" || gv != ciliumv2.SchemeGroupVersion {
		t.Fatalf("no resource for %s %s", gv, kind)
	}
	ri := s.dyn.Resource(res)
	if kind != "CiliumNetworkPolicy" && kind != "CiliumEnvoyConfig" {
		return ri // cluster-scoped
	}
	ns, _ := obj["metadata"].(map[string]any)["namespace"].(string)
	s.namespace(t, ns)
	return ri.Namespace(ns)
}

func (s server) namespace(t *testing.T, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}}
	_, err := s.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Create(s.ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// create stores obj and returns what the API server then serves.
func (s server) create(t *testing.T, obj map[string]any) (map[string]any, error) {
	t.Helper()
	ri := s.client(t, obj)
	if _, err := ri.Create(s.ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	got, err := ri.Get(s.ctx, obj["metadata"].(map[string]any)["name"].(string), metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return got.Object, nil
}

// sameFields fails unless got holds every listed top-level field of want,
// unchanged.
func sameFields(t *testing.T, want, got map[string]any, fields ...string) {
	t.Helper()
	for _, f := range fields {
		if d := cmp.Diff(normal(t, want[f]), normal(t, got[f])); d != "" {
			t.Errorf("%s changed on the way through the API server (-sent +stored):\n%s", f, d)
		}
	}
}

func TestCiliumCRDsOnAPIServer(t *testing.T) {
	c := controlplane.ForTest(t, "standard")
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := server{dyn: dyn, ctx: ctx}

	// A field the types do not know, at every depth, must be stored as
	// written and then make nodemesh's strict decoder reject the policy.
	t.Run("policies keep unknown fields", func(t *testing.T) {
		const unknown = `
spec:
  endpointSelector:
    matchLabels: {app: web}
    futureSelectorField: x
  futureRuleField: deny-all
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    futureIngressField: {nested: [1, 2]}
    toPorts:
    - ports: [{port: "80", protocol: TCP, futurePortField: true}]
      rules:
        http:
        - method: GET
          futureHTTPField: {header: x-admin}
specs:
- endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: example.com, futureFQDNField: 1}]
    icmps: [{fields: [{type: 8, futureICMPField: v4}]}]
`
		for _, head := range []string{
			"apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: future, namespace: app}",
			"apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: future}",
		} {
			sent := docs(t, head+unknown)[0]
			got, err := s.create(t, sent)
			if err != nil {
				t.Fatalf("%s: %v", sent["kind"], err)
			}
			sameFields(t, sent, got, "spec", "specs")
			js, _ := json.Marshal(got)
			_, err = input.Decode("apiserver", js)
			if err == nil {
				t.Fatalf("%s: the strict decoder accepted unknown fields", sent["kind"])
			}
			for _, f := range []string{"futureSelectorField", "futureRuleField", "futureIngressField", "futurePortField", "futureHTTPField", "futureFQDNField", "futureICMPField"} {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("%s: decode error does not name %s: %v", sent["kind"], f, err)
				}
			}
		}
	})

	t.Run("known fields are type-checked", func(t *testing.T) {
		for _, tc := range []struct{ name, spec, want string }{
			{"no rules", "", "a policy needs spec or specs"},
			{"endPort string", "spec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', endPort: x}]}]}]}", "endPort"},
			{"selector not an object", "spec: {endpointSelector: web}", "endpointSelector"},
		} {
			obj := docs(t, "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad, namespace: app}\n"+tc.spec)[0]
			_, err := s.create(t, obj)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want Invalid naming %q", tc.name, err, tc.want)
			}
		}
	})

	t.Run("policy status is a subresource", func(t *testing.T) {
		obj := docs(t, `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: status, namespace: app}
spec: {endpointSelector: {}}
status: {conditions: [{type: Valid, status: "True"}]}
`)[0]
		ri := s.client(t, obj)
		got, err := s.create(t, obj)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := got["status"].(map[string]any); st["conditions"] != nil {
			t.Fatal("create wrote the status; it must go through the status subresource")
		}
		cond := map[string]any{
			"type": "Valid", "status": "False", "reason": "Unsupported", "message": "toFQDNs is not supported",
			"observedGeneration": int64(1), "lastTransitionTime": "2026-01-01T00:00:00Z",
		}
		u := &unstructured.Unstructured{Object: got}
		u.Object["status"] = map[string]any{"conditions": []any{cond}}
		if _, err := ri.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		back, err := ri.Get(ctx, "status", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sameFields(t, u.Object, back.Object, "status")
		back.Object["status"].(map[string]any)["conditions"].([]any)[0].(map[string]any)["status"] = "Maybe"
		if _, err := ri.UpdateStatus(ctx, back, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Fatalf("condition status Maybe: got %v, want Invalid", err)
		}
	})

	t.Run("identity", func(t *testing.T) {
		obj := docs(t, `apiVersion: cilium.io/v2
kind: CiliumIdentity
metadata: {name: "12345", labels: {app: web}}
security-labels: {"k8s:app": web, "k8s:io.kubernetes.pod.namespace": app}
`)[0]
		got, err := s.create(t, obj)
		if err != nil {
			t.Fatal(err)
		}
		sameFields(t, obj, got, "security-labels")
		delete(obj, "security-labels")
		obj["metadata"].(map[string]any)["name"] = "12346"
		if _, err := s.create(t, obj); !apierrors.IsInvalid(err) {
			t.Fatalf("identity without security-labels: got %v, want Invalid", err)
		}
	})

	t.Run("envoy configs keep resources whole", func(t *testing.T) {
		const spec = `
spec:
  services: [{name: web, namespace: app, ports: [80, 8080], listener: web-listener}]
  backendServices: [{name: db, namespace: app, number: ["5432", sql]}]
  nodeSelector: {matchLabels: {role: edge}}
  futureSpecField: {x: 1}
  resources:
  - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
    name: web-listener
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          rds: {route_config_name: web}
  - "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
    name: app/db
    connect_timeout: 5s
`
		for _, head := range []string{
			"apiVersion: cilium.io/v2\nkind: CiliumEnvoyConfig\nmetadata: {name: web, namespace: app}",
			"apiVersion: cilium.io/v2\nkind: CiliumClusterwideEnvoyConfig\nmetadata: {name: web}",
		} {
			sent := docs(t, head+spec)[0]
			got, err := s.create(t, sent)
			if err != nil {
				t.Fatalf("%s: %v", sent["kind"], err)
			}
			sameFields(t, sent, got, "spec")
		}
	})

	// Every policy manifest of the repository that the Go types decode
	// must be accepted as written: the schema is never stricter than the
	// decoder.
	t.Run("repository policies", func(t *testing.T) {
		var files []string
		for _, g := range []string{"../examples/*/*.yaml", "../mesh/policy/testdata/*.yaml", "../mesh/input/testdata/*.yaml"} {
			m, err := filepath.Glob(g)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, m...)
		}
		stored := 0
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte("cilium.io/v2")) {
				continue
			}
			for i, obj := range docs(t, string(data)) {
				kind, _ := obj["kind"].(string)
				if obj["apiVersion"] != "cilium.io/v2" || (kind != "CiliumNetworkPolicy" && kind != "CiliumClusterwideNetworkPolicy") {
					continue
				}
				js, _ := json.Marshal(obj)
				if strict, err := kjson.UnmarshalStrict(js, &ciliumv2.CiliumNetworkPolicy{}); err != nil || len(strict) > 0 {
					continue // the decoder rejects it; nothing to compare
				}
				meta := obj["metadata"].(map[string]any)
				meta["name"] = fmt.Sprintf("repo-%d-%d", stored, i)
				switch {
				case kind == "CiliumClusterwideNetworkPolicy":
					// kubectl ignores a namespace on a cluster-scoped object.
					delete(meta, "namespace")
				case meta["namespace"] == nil:
					meta["namespace"] = "default"
				}
				got, err := s.create(t, obj)
				if err != nil {
					t.Errorf("%s document %d: the API server rejects a policy the types decode: %v", f, i+1, err)
					continue
				}
				sameFields(t, obj, got, "spec", "specs")
				stored++
			}
		}
		t.Logf("%d repository policies stored unchanged", stored)
		if stored < 10 {
			t.Fatalf("stored %d repository policies; the globs no longer find the manifests", stored)
		}
	})
}
