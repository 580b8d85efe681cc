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
