package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	ciliumv2 "github.com/nodemesh/nodemesh/api/cilium/v2"
	"github.com/nodemesh/nodemesh/datapath"
	"github.com/nodemesh/nodemesh/datapath/model"
)

// TestLabIdentitiesEqualOnBothNodes: Pods with the same labels on two
// nodes get one numeric identity, and every node's datapath gives each
// Pod address that number, whether the Pod is a local endpoint there or a
// remote one in its ipcache; it is the number of the CiliumIdentity
// object holding those labels. A Pod with other labels gets another.
func TestLabIdentitiesEqualOnBothNodes(t *testing.T) {
	l := ForTest(t, Options{Nodes: 2})
	ctx := context.Background()
	if err := ApplyPaths(ctx, l.Config, []string{"testdata/identity-twins.yaml"}); err != nil {
		t.Fatal(err)
	}
	if pods, err := WaitSettled(ctx, l.Client, 2*time.Minute); err != nil {
		t.Fatalf("%v\n%v", err, pods)
	}
	addr := map[string]netip.Addr{}
	for _, name := range []string{"twin-1", "twin-2", "loner"} {
		p, err := l.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"twin-1": "node-1", "twin-2": "node-2", "loner": "node-2"}[name]; p.Spec.NodeName != want {
			t.Fatalf("%s runs on %q, want %s", name, p.Spec.NodeName, want)
		}
		a, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			t.Fatalf("%s: Pod IP %q: %v", name, p.Status.PodIP, err)
		}
		addr[name] = a
	}
	addrs := []netip.Addr{addr["twin-1"], addr["twin-2"], addr["loner"]}

	// The allocated number, from the API server.
	dyn, err := dynamic.NewForConfig(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	allocated := func(app string) (model.Identity, error) {
		list, err := dyn.Resource(ciliumv2.CiliumIdentityResource).List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		var found []model.Identity
		for _, u := range list.Items {
			labels, _, _ := unstructured.NestedStringMap(u.Object, "security-labels")
			if labels["k8s:app"] != app {
				continue
			}
			n, err := strconv.ParseUint(u.GetName(), 10, 32)
			if err != nil {
				return 0, fmt.Errorf("CiliumIdentity %q: the name is not a number", u.GetName())
			}
			found = append(found, model.Identity(n))
		}
		if len(found) != 1 {
			return 0, fmt.Errorf("CiliumIdentities with k8s:app=%s: %v, want exactly one", app, found)
		}
		return found[0], nil
	}
	var twin, loner model.Identity
	eventually(t, "one CiliumIdentity per label set", time.Minute, func() (err error) {
		if twin, err = allocated("twin"); err != nil {
			return err
		}
		loner, err = allocated("loner")
		return err
	})
	if twin == loner || twin < 256 || loner < 256 {
		t.Fatalf("identities twin %d and loner %d: want two different numbers of the cluster-local range", twin, loner)
	}

	// Every node's datapath: local endpoints and remote ipcache rows.
	want := map[netip.Addr]model.Identity{addr["twin-1"]: twin, addr["twin-2"]: twin, addr["loner"]: loner}
	for _, n := range l.Nodes {
		eventually(t, n.Name+"'s datapath gives every Pod its identity", time.Minute, func() error {
			got, err := datapath.LookupIdentities(n.PinDir, addrs)
			if err != nil {
				return err
			}
			for a, id := range want {
				if got[a] != id {
					return fmt.Errorf("%s: %s has identity %d, want %d (all: %v)", n.Name, a, got[a], id, got)
				}
			}
			return nil
		})
	}
}
