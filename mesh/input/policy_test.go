package input

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodePolicyKinds(t *testing.T) {
	objs, err := Decode("policy.yaml", readTestdata(t, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []decoded{
		{"policy.yaml:1 (document 1)", KindPod, "default/deathstar", "v1"},
		{"policy.yaml:18 (document 2)", KindPod, "default/tiefighter", "v1"},
		{"policy.yaml:25 (document 3)", KindCiliumNetworkPolicy, "default/rule1", "cilium.io/v2"},
		{"policy.yaml:52 (document 4)", KindCiliumClusterwideNetworkPolicy, "kafka-consume", "cilium.io/v2"},
		{"policy.yaml:75 (document 5)", KindNetworkPolicy, "prod/allow-frontend-to-backend", "networking.k8s.io/v1"},
	}
	if diff := cmp.Diff(want, summarize(objs)); diff != "" {
		t.Fatalf("decoded objects (-want +got):\n%s", diff)
	}
	s, err := Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pods) != 2 || len(s.CiliumNetworkPolicies) != 1 || len(s.CiliumClusterwideNetworkPolicies) != 1 || len(s.NetworkPolicies) != 1 {
		t.Fatalf("snapshot: %d pods, %d CNPs, %d CCNPs, %d NetworkPolicies", len(s.Pods), len(s.CiliumNetworkPolicies), len(s.CiliumClusterwideNetworkPolicies), len(s.NetworkPolicies))
	}
	cnp := s.CiliumNetworkPolicies[0]
	http := cnp.Spec.Ingress[0].ToPorts[0].Rules.HTTP[0]
	if http.Method != "POST" || http.Path != "/v1/request-landing" || http.Headers[0] != "X-Ship: tie" || http.HeaderMatches[0].Value != "secret" {
		t.Errorf("HTTP rule decoded as %+v", http)
	}
	if sel := cnp.Spec.Ingress[0].FromEndpoints[0].MatchLabels; sel["org"] != "empire" {
		t.Errorf("fromEndpoints decoded as %v", sel)
	}
	ccnp := s.CiliumClusterwideNetworkPolicies[0]
	eg := ccnp.Spec.Egress[0]
	if eg.ToPorts[0].Rules.Kafka[0].Role != "consume" || eg.Authentication.Mode != "required" || eg.ToEndpoints[0].MatchExpressions[0].Operator != "In" {
		t.Errorf("egress rule decoded as %+v", eg)
	}
	if p := ccnp.Spec.EgressDeny[0].ToPorts[0].Ports[0]; p.Port != "25" || p.EndPort != 30 {
		t.Errorf("deny port decoded as %+v", p)
	}
	if pod := s.Pods[0]; pod.Status.PodIPs[1].IP != "fd00::10" || pod.Spec.NodeName != "node-a" {
		t.Errorf("pod decoded as %+v", pod)
	}
}

func TestDecodePolicyRejectsUnknownFields(t *testing.T) {
	_, err := Decode("bad.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoint: [{}]
`))
	if err == nil || !strings.Contains(err.Error(), `unknown field "spec.ingress[0].fromEndpoint"`) || !strings.Contains(err.Error(), "CiliumNetworkPolicy p:") {
		t.Fatalf("want an unknown-field error naming the policy, got %v", err)
	}
	_, err = Decode("bad.yaml", []byte(`apiVersion: cilium.io/v1
kind: CiliumNetworkPolicy
metadata: {name: p}
`))
	if err == nil || !strings.Contains(err.Error(), "supported: cilium.io/v2") {
		t.Fatalf("want an unsupported-version error, got %v", err)
	}
}
