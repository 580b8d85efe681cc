package agent

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/datapath/model"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
	"github.com/nodemesh/nodemesh/mesh/ir"
)

// serviceRecorder is the datapath's Service table as a list of syncs.
type serviceRecorder struct {
	mu    sync.Mutex
	syncs [][]model.Service
	c     chan struct{}
}

func (r *serviceRecorder) SyncServices(rows []model.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs = append(r.syncs, rows)
	if r.c != nil {
		close(r.c)
		r.c = nil
	}
	return nil
}

// backends returns the backends of a frontend in the latest sync, and
// whether it has a row.
// SyncServiceRanges records nothing: these tests look at the table.
func (r *serviceRecorder) SyncServiceRanges([]netip.Prefix) error { return nil }

func (r *serviceRecorder) backends(front string, port uint16) ([]model.Backend, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.syncs) == 0 {
		return nil, false
	}
	for _, row := range r.syncs[len(r.syncs)-1] {
		if row.Frontend == netip.MustParseAddr(front) && row.Port == port {
			return row.Backends, true
		}
	}
	return nil, false
}

func exampleConfig(t *testing.T) []byte {
	t.Helper()
	ex, err := os.ReadFile("../../examples/envoyconfig/traffic-shifting.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// envoyConfigSnapshot is the config cec beside the Services of the
// traffic-shifting example.
func envoyConfigSnapshot(t *testing.T, cec []byte) *input.Snapshot {
	t.Helper()
	const svcs = `
---
apiVersion: v1
kind: Service
metadata: {name: helloworld, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 5000}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: helloworld-1, namespace: default, labels: {kubernetes.io/service-name: helloworld}}
addressType: IPv4
ports: [{name: http, port: 5000, protocol: TCP}]
endpoints: [{addresses: [10.244.1.21], conditions: {ready: true}}]
---
apiVersion: v1
kind: Service
metadata: {name: helloworld-v1, namespace: default}
spec: {clusterIP: 10.96.0.21, ports: [{name: http, port: 5000}]}
---
apiVersion: v1
kind: Service
metadata: {name: helloworld-v2, namespace: default}
spec: {clusterIP: 10.96.0.22, ports: [{name: http, port: 5000}]}
`
	objs, err := input.Decode("cec.yaml", append(append([]byte(nil), cec...), svcs...))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := input.Build(objs)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// A Service a CiliumEnvoyConfig takes over refuses connections (no
// backends) until every connected proxy acknowledged the listener, then
// goes to the listener; it never goes to its own backends, which would
// bypass the proxy. When the config is refused, connections stay refused.
func TestEnvoyConfigRedirectWaitsForTheProxies(t *testing.T) {
	rec := &recorder{}
	svcs := &serviceRecorder{}
	node := netip.MustParseAddr("10.250.0.11")
	a, err := New(Config{Publisher: rec, Services: svcs, EnvoyConfig: &EnvoyConfigOptions{ListenAddress: node}})
	if err != nil {
		t.Fatal(err)
	}
	rec.setProxies([]dataplane.Proxy{{Node: "p", Connected: true, Types: []dataplane.TypeState{{Type: "Listener", Sent: "v1"}}}})
	if err := a.Apply(context.Background(), envoyConfigSnapshot(t, exampleConfig(t)), nil); err != nil {
		t.Fatal(err)
	}
	bs, ok := svcs.backends("10.96.0.20", 5000)
	if !ok || len(bs) != 0 {
		t.Fatalf("before the proxy acknowledged: row %v, backends %v; want the row with no backends", ok, bs)
	}
	if bs, _ := svcs.backends("10.96.0.21", 5000); len(bs) != 0 {
		t.Fatalf("a backend Service (not redirected) changed: %v", bs)
	}
	st := a.Status()
	if len(st.EnvoyConfigs) != 1 || !st.EnvoyConfigs[0].Valid || !st.EnvoyConfigs[0].Pending {
		t.Fatalf("status %+v, want valid and pending", st.EnvoyConfigs)
	}
	svcs.mu.Lock()
	synced := make(chan struct{})
	svcs.c = synced
	svcs.mu.Unlock()
	rec.setProxies([]dataplane.Proxy{{Node: "p", Connected: true, Types: []dataplane.TypeState{{Type: "Listener", Sent: "v1", Acked: "v1"}}}})
	select {
	case <-synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the Service table was not rewritten after the acknowledgement")
	}
	bs, _ = svcs.backends("10.96.0.20", 5000)
	if len(bs) != 1 || bs[0].Addr != node || bs[0].Port < 14000 || bs[0].Port > 14999 {
		t.Fatalf("after the acknowledgement: %v, want the proxy listener on %s", bs, node)
	}
	if _, err := a.WaitStatus(context.Background(), func(s *api.Status) bool {
		return len(s.EnvoyConfigs) == 1 && !s.EnvoyConfigs[0].Pending
	}); err != nil {
		t.Fatal(err)
	}

	// The same config with a resource the proxy cannot run: refused,
	// and the Service refuses connections again.
	bad := `apiVersion: cilium.io/v2
kind: CiliumEnvoyConfig
metadata: {name: envoy-lb-listener, namespace: default}
spec:
  services: [{name: helloworld}]
  resources:
  - {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c, type: STRICT_DNS}
`
	snap2 := envoyConfigSnapshot(t, []byte(bad))
	if err := a.Apply(context.Background(), snap2, nil); err != nil {
		t.Fatal(err)
	}
	if bs, ok := svcs.backends("10.96.0.20", 5000); !ok || len(bs) != 0 {
		t.Fatalf("refused config: row %v, backends %v; want the row with no backends", ok, bs)
	}
	st = a.Status()
	if len(st.EnvoyConfigs) != 1 || st.EnvoyConfigs[0].Valid || st.EnvoyConfigs[0].Reason != "Unsupported" {
		t.Fatalf("status %+v, want refused as Unsupported", st.EnvoyConfigs)
	}
}

// Without a Service table nothing can send a Service's traffic to the
// proxy: a config that redirects Services is refused, says why, and none
// of its resources is published (no listener serving beside traffic that
// bypasses it).
func TestEnvoyConfigWithoutServiceTableIsRefused(t *testing.T) {
	rec := &recorder{}
	a, err := New(Config{Publisher: rec, EnvoyConfig: &EnvoyConfigOptions{ListenAddress: netip.MustParseAddr("10.250.0.11")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), envoyConfigSnapshot(t, exampleConfig(t)), nil); err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if len(st.EnvoyConfigs) != 1 || st.EnvoyConfigs[0].Valid || st.EnvoyConfigs[0].Reason != "NotRedirected" ||
		!strings.Contains(st.EnvoyConfigs[0].Message, "--datapath-cgroup") {
		t.Fatalf("status %+v, want refused as NotRedirected, naming --datapath-cgroup", st.EnvoyConfigs)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if cfg := rec.configs[len(rec.configs)-1]; len(cfg.Resources) != 0 {
		var names []string
		for _, r := range cfg.Resources {
			names = append(names, r.Name)
		}
		t.Fatalf("published %v for a refused config", names)
	}
}

// An agent without the datapath cannot steer replies to the proxy's
// original-source connections: even told the mark, it adds no
// original_src to a config's listeners, and the config's status says the
// client's address is not kept.
func TestEnvoyConfigOriginalSourceNeedsTheDatapath(t *testing.T) {
	rec := &recorder{}
	a, err := New(Config{Publisher: rec, Services: &serviceRecorder{},
		EnvoyConfig: &EnvoyConfigOptions{ListenAddress: netip.MustParseAddr("10.250.0.11"), OriginalSourceMark: 0x0a00}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), envoyConfigSnapshot(t, exampleConfig(t)), nil); err != nil {
		t.Fatal(err)
	}
	st := a.Status()
	if len(st.EnvoyConfigs) != 1 || !st.EnvoyConfigs[0].Valid || !strings.Contains(st.EnvoyConfigs[0].Message, "original source not in effect") {
		t.Fatalf("status %+v, want accepted, saying the original source is not in effect", st.EnvoyConfigs)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.configs) == 0 {
		t.Fatal("nothing published")
	}
	cfg := rec.configs[len(rec.configs)-1]
	listeners := 0
	for _, r := range cfg.Resources {
		if r.TypeURL == ir.TypeListener {
			listeners++
		}
		if bytes.Contains(r.Value, []byte("original_src")) {
			t.Fatalf("resource %s has original_src", r.Name)
		}
	}
	if listeners == 0 {
		t.Fatal("the config's listener was not published")
	}
}
