package lab

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"

	"github.com/nodemesh/nodemesh/internal/lab/controlplane"
)

// deathstarPolicy admits on port 80 of the deathstars what from selects.
const deathstarPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deathstar-from
spec:
  endpointSelector:
    matchLabels: {class: deathstar}
  ingress:
  - %s
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
`

// TestLabRemoteNodeIdentity: on node-2, connections from node-1 itself
// (its address on the lab network, the Node's InternalIP) carry the
// reserved remote-node identity (6), as in Cilium: a deathstar policy
// admitting fromEntities [remote-node] lets them in, one admitting only
// the empire's Pods does not, while the tiefighter still lands.
func TestLabRemoteNodeIdentity(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/starwars-placed.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	s, err := LoadState(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := l.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: labels.Set{"class": "deathstar"}.String()})
	if err != nil || len(ds.Items) == 0 {
		t.Fatalf("deathstars: %v", err)
	}
	target := "http://" + ds.Items[0].Status.PodIP + "/v1/request-landing"
	fromNode1 := func() (string, int) {
		return run(t, []string{"ip", "netns", "exec", l.Nodes[0].Netns, "curl", "-sS", "--max-time", "3", "-XPOST", target}, "")
	}
	fromTiefighter := func() (string, int) {
		argv, err := s.ExecArgv(ctx, "default", "tiefighter", "", []string{"curl", "-sS", "--max-time", "3", "-XPOST", target})
		if err != nil {
			t.Fatal(err)
		}
		return run(t, argv, "")
	}
	lands := func(what string, f func() (string, int)) error {
		if out, code := f(); code != 0 || out != "Ship landed\n" {
			return fmt.Errorf("%s: exit %d: %q", what, code, out)
		}
		return nil
	}
	apply := func(from string) {
		t.Helper()
		if err := controlplane.Apply(ctx, l.Config, []byte(fmt.Sprintf(deathstarPolicy, from))); err != nil {
			t.Fatal(err)
		}
		if err := WaitPolicies(ctx, *s, l.Client, dyn, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "node-1 reaches a deathstar", time.Minute, func() error { return lands("node-1", fromNode1) })

	apply("fromEntities: [remote-node]")
	eventually(t, "the tiefighter is refused", time.Minute, func() error {
		if out, code := fromTiefighter(); code != 28 {
			return fmt.Errorf("tiefighter: exit %d: %q", code, out)
		}
		return nil
	})
	for i := 0; i < 3; i++ {
		if err := lands("node-1 under fromEntities [remote-node]", fromNode1); err != nil {
			t.Fatal(err)
		}
	}

	apply("fromEndpoints: [{matchLabels: {org: empire}}]")
	eventually(t, "the tiefighter lands", time.Minute, func() error { return lands("tiefighter", fromTiefighter) })
	eventually(t, "node-1 is refused", time.Minute, func() error {
		if out, code := fromNode1(); code != 28 {
			return fmt.Errorf("node-1: exit %d: %q", code, out)
		}
		return nil
	})
}
