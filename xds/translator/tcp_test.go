package translator

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TestTCPChainFollowsInvalidBackendName: a TCP chain with an unresolved
// backend points at the invalid-backend cluster, whose name is picked
// apart from the Config's clusters. When a new cluster takes that name,
// the unchanged IR listener must be rebuilt to point at the new one, not
// reused from the previous translation (where it would now send
// connections to a real cluster).
func TestTCPChainFollowsInvalidBackendName(t *testing.T) {
	listener := &ir.Listener{Name: "gateway/default/eg/5432", Address: "127.0.0.1", Port: 5432,
		TCPChains: []*ir.TCPChain{{Name: "tcp", Backends: []*ir.WeightedBackend{{Weight: 1}}}}}
	before := &ir.Config{Listeners: []*ir.Listener{listener}}
	squatter := &ir.Cluster{Name: invalidBackendCluster, Protocol: ir.ProtocolTCP, LBPolicy: ir.LBRoundRobin}
	after := &ir.Config{Listeners: []*ir.Listener{listener}, Clusters: []*ir.Cluster{squatter}}

	tr := New()
	for i, cfg := range []*ir.Config{before, after} {
		out, err := tr.Translate(cfg)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(out.Listeners) != 1 {
			t.Fatalf("step %d: %d listeners", i, len(out.Listeners))
		}
		got := tcpCluster(t, out.Listeners[0])
		if got == "" || got == invalidBackendCluster && i == 1 {
			t.Fatalf("step %d: the unresolved backend points at %q, a defined cluster or none", i, got)
		}
		for _, c := range out.Clusters {
			if c.Name == got {
				t.Fatalf("step %d: the unresolved backend points at the defined cluster %q", i, got)
			}
		}
	}
}

func tcpCluster(t *testing.T, l *listenerv3.Listener) string {
	t.Helper()
	var tp tcpproxyv3.TcpProxy
	if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
		t.Fatal(err)
	}
	return tp.GetCluster()
}
