package translator

import (
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestEndpointAddressesAsNetipWritesThem: an endpoint address is emitted
// as netip writes it, whether the IR wrote it that way already (its own
// string is then used) or not.
func TestEndpointAddressesAsNetipWritesThem(t *testing.T) {
	cfg := benchConfig(2)
	cl := cfg.Clusters[0]
	cl.Endpoints = []ir.Endpoint{
		{Address: "10.0.0.1", Port: 8080, Ready: true},
		{Address: "2001:DB8:0:0::1", Port: 8080, Ready: true},
		{Address: "::ffff:10.0.0.2", Port: 8080, Ready: true},
	}
	res, err := Translate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cla := range res.ClusterLoadAssignments {
		if cla.ClusterName != clusterName(cl.Name) {
			continue
		}
		for _, lb := range cla.Endpoints[0].LbEndpoints {
			got = append(got, lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
		}
	}
	want := []string{"10.0.0.1", "::ffff:10.0.0.2", "2001:db8::1"}
	if len(got) != len(want) {
		t.Fatalf("addresses %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("addresses %q, want %q", got, want)
		}
	}
}

// TestLoadAssignmentAllocations bounds what one cluster's load assignment
// allocates: clusters come by the thousand. The endpoints are sorted on
// the stack, and the assignment comes in one allocation with its
// locality, one with the list of endpoints and one with all the
// endpoints' messages; go-control-plane's ValidateAll adds its own. The
// bound counts allocations, not time, so it holds on any machine.
func TestLoadAssignmentAllocations(t *testing.T) {
	cfg := benchConfig(2)
	cl := cfg.Clusters[0]
	cl.Endpoints = []ir.Endpoint{
		{Address: "10.0.0.3", Port: 8080, Ready: true},
		{Address: "10.0.0.1", Port: 8080, Ready: true},
		{Address: "10.0.0.2", Port: 8080, Ready: true},
	}
	b := newBuilder(cfg, &ir.Hashes{}, nil)
	name := clusterName(cl.Name)
	cla, err := b.loadAssignment(cl, name, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cla.Endpoints[0].LbEndpoints); n != 3 {
		t.Fatalf("%d endpoints, want 3", n)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := b.loadAssignment(cl, name, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations", n)
	if n > 5 {
		t.Errorf("a load assignment of 3 endpoints allocates %.0f times, want at most 5", n)
	}
}
