package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nodemesh/nodemesh/internal/agent"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/mesh/policy"
	"github.com/nodemesh/nodemesh/mesh/provider/file"
)

// proxiesPublisher publishes nothing and reports the proxies it is given.
type proxiesPublisher struct {
	mu      sync.Mutex
	proxies []dataplane.Proxy
}

func (p *proxiesPublisher) Publish(context.Context, *ir.Config) (dataplane.Publication, error) {
	return dataplane.Publication{Versions: map[string]string{"listeners": "v1"}}, nil
}

func (p *proxiesPublisher) Proxies() []dataplane.Proxy {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]dataplane.Proxy(nil), p.proxies...)
}

func (p *proxiesPublisher) Changed() <-chan struct{} { return nil }

// TestStatusShowsIngressEndpoint runs the agent with the policy compiler
// and its ingress endpoint and reads `nodemesh status` (table and JSON)
// through its local API: first with no policy (unselected), then with one
// clusterwide policy that admits one client CIDR (world → ingress
// enforced) and another whose egress L7 rule the check points cannot
// enforce (ingress → backend fail-closed), and finally with a connected
// proxy that has not acknowledged the publication (both Pending).
func TestStatusShowsIngressEndpoint(t *testing.T) {
	compiler, err := policy.New(policy.Options{
		Listeners:       policy.Listeners{Address: "127.0.0.1", IngressHTTP: 15001, EgressHTTP: 15002, IngressKafka: 15003, EgressKafka: 15004},
		IngressEndpoint: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := &proxiesPublisher{}
	a, err := agent.New(agent.Config{Publisher: pub, Policy: compiler})
	if err != nil {
		t.Fatal(err)
	}
	conf := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := serveAPI(ctx, t, a)
	apply := func(files map[string]string) {
		t.Helper()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(conf, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := file.New(conf).Load()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Errors) > 0 {
			t.Fatalf("loading the configuration: %v", r.Errors)
		}
		if err := a.Apply(ctx, r.Snapshot, r.Errors); err != nil {
			t.Fatal(err)
		}
	}
	status := func() (string, *api.IngressEndpointStatus) {
		t.Helper()
		var table, js bytes.Buffer
		if err := statusCmd([]string{"--socket", sock}, &table); err != nil {
			t.Fatal(err)
		}
		if err := statusCmd([]string{"--socket", sock, "-o", "json"}, &js); err != nil {
			t.Fatal(err)
		}
		var st api.Status
		if err := json.Unmarshal(js.Bytes(), &st); err != nil {
			t.Fatalf("json output %q: %v", js.String(), err)
		}
		if st.Policy == nil || st.Policy.IngressEndpoint == nil {
			t.Fatalf("json output has no ingress endpoint:\n%s", js.String())
		}
		return table.String(), st.Policy.IngressEndpoint
	}
	contains := func(out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("status output lacks %q:\n%s", w, out)
			}
		}
	}

	apply(map[string]string{"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n"})
	out, ie := status()
	if ie.Identity != 8 || !slices.Equal(ie.Labels, []string{"reserved:ingress"}) || ie.Selected ||
		ie.Ingress.State != api.IngressUnenforced || ie.Egress.State != api.IngressUnenforced || len(ie.Policies) != 0 {
		t.Errorf("no policy: ingress endpoint %+v", ie)
	}
	contains(out, "Ingress endpoint (identity 8, reserved:ingress): no policy selects it; both directions allow everything")

	apply(map[string]string{"policy.yaml": `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: allow-cidr}
spec:
  endpointSelector:
    matchExpressions: [{key: "reserved:ingress", operator: Exists}]
  ingress:
  - fromCIDRSet: [{cidr: 172.18.0.1/32}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: egress-l7}
spec:
  endpointSelector:
    matchExpressions: [{key: "reserved:ingress", operator: Exists}]
  egress:
  - toCIDRSet: [{cidr: 10.0.0.0/8}]
    toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]
`})
	out, ie = status()
	if !ie.Selected || ie.Ingress.State != api.IngressEnforced || ie.Ingress.AllowRules != 1 ||
		ie.Egress.State != api.IngressFailClosed || ie.Egress.Reason == "" ||
		!slices.Equal(ie.Policies, []string{"CiliumClusterwideNetworkPolicy/allow-cidr", "CiliumClusterwideNetworkPolicy/egress-l7"}) {
		t.Errorf("two policies, no proxy: ingress endpoint %+v", ie)
	}
	contains(out, "Ingress endpoint (identity 8, reserved:ingress): selected by CiliumClusterwideNetworkPolicy/allow-cidr, CiliumClusterwideNetworkPolicy/egress-l7",
		"world → ingress    Enforced (1 allow, 0 deny rules)",
		"ingress → backend  FailClosed (", ie.Egress.Reason)

	pub.mu.Lock()
	pub.proxies = []dataplane.Proxy{{Node: "proxy-1", Connected: true}}
	pub.mu.Unlock()
	out, ie = status()
	if ie.Ingress.State != api.IngressPending || ie.Egress.State != api.IngressPending {
		t.Errorf("with a proxy that has not acknowledged: ingress endpoint %+v", ie)
	}
	contains(out, "world → ingress    Pending: the node's proxies have not acknowledged", "ingress → backend  Pending:", "(once accepted: FailClosed: ")
}
