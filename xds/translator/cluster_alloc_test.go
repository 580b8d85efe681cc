package translator

import (
	"testing"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestBuildClusterAllocations bounds what building one HTTP cluster
// allocates: clusters come by the thousand. The cluster comes in one
// allocation with its EDS settings, the messages all clusters hold alike
// are made once per translation, and go-control-plane's ValidateAll adds
// its own. The bound counts allocations, not time.
func TestBuildClusterAllocations(t *testing.T) {
	cfg := benchConfig(2)
	cl := cfg.Clusters[0]
	cl.ConnectTimeout = 0 // Envoy's default, a message made once
	if cl.Protocol != ir.ProtocolHTTP1 || cl.UpstreamTLS != nil || cl.UpstreamMark != 0 {
		t.Fatalf("benchConfig's cluster is not a plain HTTP cluster: %+v", cl)
	}
	b := newBuilder(cfg, &ir.Hashes{}, nil)
	name := clusterName(cl.Name)
	if _, err := b.buildCluster(cl, name); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(100, func() {
		if _, err := b.buildCluster(cl, name); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations", n)
	if n > 3 {
		t.Errorf("building a cluster allocates %.0f times, want at most 3", n)
	}
}
