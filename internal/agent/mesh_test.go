package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/input"
)

// A Service port GAMMA routes steer goes to its mesh listener once the
// proxies acknowledged it, and refuses connections before (never its own
// backends, which would bypass the routes). On a Service that is also
// annotated lb-l7 the routes win; a Service with only the annotation
// keeps its lb-l7 listener.
func TestMeshRedirectWaitsForTheProxies(t *testing.T) {
	const objs = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app, annotations: {service.cilium.io/lb-l7: enabled}}
spec: {clusterIP: 10.96.0.30, ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: app, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.21], conditions: {ready: true}}]
---
apiVersion: v1
kind: Service
metadata: {name: balanced, namespace: app, annotations: {service.cilium.io/lb-l7: enabled}}
spec: {clusterIP: 10.96.0.31, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: app}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
`
	snap := snapshotOf(t, objs)
	rec := &recorder{}
	svcs := &serviceRecorder{}
	node := netip.MustParseAddr("10.250.0.11")
	a, err := New(Config{Publisher: rec, Services: svcs, EnvoyConfig: &EnvoyConfigOptions{ListenAddress: node}})
	if err != nil {
		t.Fatal(err)
	}
	rec.setProxies([]dataplane.Proxy{{Node: "p", Connected: true, Types: []dataplane.TypeState{{Type: "Listener", Sent: "v1"}}}})
	if err := a.Apply(context.Background(), snap, nil); err != nil {
		t.Fatal(err)
	}
	if bs, ok := svcs.backends("10.96.0.30", 80); !ok || len(bs) != 0 {
		t.Fatalf("before the proxy acknowledged: row %v, backends %v; want the row with no backends", ok, bs)
	}
	rec.mu.Lock()
	cfg := rec.configs[len(rec.configs)-1]
	rec.mu.Unlock()
	var bind netip.AddrPort
	for _, l := range cfg.Listeners {
		if l.Name == "mesh/app/echo/80" {
			bind = netip.AddrPortFrom(netip.MustParseAddr(l.Address), uint16(l.Port))
		}
	}
	if bind.Addr() != node || bind.Port() < 15000 || bind.Port() > 15999 {
		t.Fatalf("mesh listener bound to %v, want %s in 15000-15999", bind, node)
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
	if bs, _ := svcs.backends("10.96.0.30", 80); len(bs) != 1 || bs[0].Addr != node || bs[0].Port != bind.Port() {
		t.Fatalf("after the acknowledgement: %v, want the mesh listener %s", bs, bind)
	}
	if bs, _ := svcs.backends("10.96.0.31", 80); len(bs) != 1 || bs[0].Addr != node || bs[0].Port < 14000 || bs[0].Port > 14999 {
		t.Fatalf("lb-l7 only: %v, want its listener on %s in 14000-14999", bs, node)
	}
	st := a.Status()
	if len(st.Routes) != 1 || len(st.Routes[0].Status.Parents) != 1 || st.Routes[0].Status.Parents[0].Conditions[0].Reason != "Accepted" {
		t.Fatalf("route status %+v, want accepted by its Service parent", st.Routes)
	}
}

// An agent that cannot send a Service's traffic to its proxy (no Service
// table; or one without the socket hooks; or no listen address) refuses
// a route with a Service parent (NotRedirected, naming what is missing)
// and serves no mesh listener for it, rather than report Accepted for
// routes its clients would bypass. The first case is also an agent
// without --policy: the Service table comes only with --datapath, which
// implies the policy compiler and its Pod watch, so a consumer route is
// refused there rather than applied to nobody. The last case is the
// control: the same route is accepted and served where the node can
// steer.
func TestMeshRouteRefusedWhereNothingSteers(t *testing.T) {
	snap := meshEchoSnapshot(t)
	node := &EnvoyConfigOptions{ListenAddress: netip.MustParseAddr("10.250.0.11")}
	for _, tc := range []struct {
		name   string
		cfg    func(*Config)
		reason string
		msg    string
	}{
		{"no service table", func(c *Config) { c.Services = nil }, "NotRedirected", "--datapath-cgroup"},
		{"no socket hooks", func(c *Config) { c.NoServiceHooks = true }, "NotRedirected", "--datapath-cgroup"},
		{"no listen address", func(c *Config) { c.EnvoyConfig = nil }, "NotRedirected", "--envoy-config-address"},
		{"steers", func(*Config) {}, "Accepted", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := Config{Publisher: rec, Services: &serviceRecorder{}, EnvoyConfig: node}
			tc.cfg(&cfg)
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Apply(context.Background(), snap, nil); err != nil {
				t.Fatal(err)
			}
			st := a.Status()
			if len(st.Routes) != 1 || len(st.Routes[0].Status.Parents) != 1 {
				t.Fatalf("route status %+v, want one parent", st.Routes)
			}
			c := st.Routes[0].Status.Parents[0].Conditions[0]
			if c.Type != "Accepted" || c.Reason != tc.reason || !strings.Contains(c.Message, tc.msg) {
				t.Fatalf("Accepted %s/%s %q, want reason %s naming %q", c.Status, c.Reason, c.Message, tc.reason, tc.msg)
			}
			rec.mu.Lock()
			pub := rec.configs[len(rec.configs)-1]
			rec.mu.Unlock()
			served := false
			for _, l := range pub.Listeners {
				served = served || l.Name == "mesh/app/echo/80"
			}
			if served != (tc.reason == "Accepted") {
				t.Fatalf("mesh listener served: %v, want %v", served, tc.reason == "Accepted")
			}
		})
	}
}

// GAMMA listeners keep the client's address upstream (original_src with
// the proxy mark) only where the datapath steers the replies to it back
// to the proxy: an agent told the mark but without a datapath, or with
// the datapath but without the mark (--policy-original-source=false),
// serves the same listener with connections from the node. The route's
// status is the same in every case: it never claims the original source.
func TestMeshOriginalSourceNeedsTheDatapath(t *testing.T) {
	snap := meshEchoSnapshot(t)
	const mark = 0x0a00
	for _, tc := range []struct {
		name     string
		datapath bool
		mark     uint32
		want     uint32
	}{
		{"datapath and mark", true, mark, mark},
		{"mark without datapath", false, mark, 0},
		{"datapath without mark", true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			cfg := Config{Publisher: rec, Services: &serviceRecorder{},
				EnvoyConfig: &EnvoyConfigOptions{ListenAddress: netip.MustParseAddr("10.250.0.11"), OriginalSourceMark: tc.mark}}
			if tc.datapath {
				cfg.Datapath = &tables{}
			}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Apply(context.Background(), snap, nil); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			pub := rec.configs[len(rec.configs)-1]
			rec.mu.Unlock()
			var got *uint32
			for _, l := range pub.Listeners {
				if l.Name == "mesh/app/echo/80" {
					got = &l.OriginalSourceMark
				}
			}
			if got == nil {
				t.Fatal("the mesh listener was not published")
			}
			if *got != tc.want {
				t.Fatalf("mesh listener's original source mark %#x, want %#x", *got, tc.want)
			}
			st := a.Status()
			if len(st.Routes) != 1 || len(st.Routes[0].Status.Parents) != 1 {
				t.Fatalf("route status %+v, want one parent", st.Routes)
			}
			for _, c := range st.Routes[0].Status.Parents[0].Conditions {
				if strings.Contains(strings.ToLower(c.Message), "original") || strings.Contains(strings.ToLower(c.Message), "source address") {
					t.Fatalf("route condition %s claims something of the original source: %q", c.Type, c.Message)
				}
			}
		})
	}
}

// meshEchoSnapshot is a Service app/echo with an HTTPRoute that has it as
// parent and backend: the smallest GAMMA input.
func meshEchoSnapshot(t *testing.T) *input.Snapshot {
	t.Helper()
	const objs = `
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: app}
spec: {clusterIP: 10.96.0.30, ports: [{name: http, port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo, namespace: app}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo, port: 80}]
`
	return snapshotOf(t, objs)
}
