package e2e

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/mesh/dataplane"
	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// taintingPublisher publishes like the real one, but once armed it adds a
// field the builtin proxy does not implement (HCM tracing) to every
// listener: the stand-in for a control plane newer than its proxy.
type taintingPublisher struct {
	srv   *server.Server
	armed atomic.Bool
}

func (p *taintingPublisher) Publish(ctx context.Context, cfg *ir.Config) (dataplane.Publication, error) {
	res, err := translator.Translate(cfg)
	if err != nil {
		return dataplane.Publication{}, err
	}
	if p.armed.Load() {
		for _, l := range res.Listeners {
			for _, fc := range l.FilterChains {
				for _, f := range fc.Filters {
					hcm := &hcmv3.HttpConnectionManager{}
					if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
						return dataplane.Publication{}, err
					}
					hcm.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin"}}
					a, _ := anypb.New(hcm)
					f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
				}
			}
		}
	}
	up, err := p.srv.Update(ctx, res)
	if err != nil {
		return dataplane.Publication{}, err
	}
	return publish.Publication(res, up), nil
}

func (p *taintingPublisher) Proxies() []dataplane.Proxy { return publish.New(p.srv).Proxies() }

// TestNackReachesGatewayStatus: a proxy that rejects an update keeps
// serving the previous configuration, and the rejection, with the proxy's
// own message, shows up on the Gateway's Programmed condition.
func TestNackReachesGatewayStatus(t *testing.T) {
	var pub *taintingPublisher
	m := startMesh(t, false, []string{"v1", "v2"}, withPublisher(func(s *server.Server) dataplane.Publisher {
		pub = &taintingPublisher{srv: s}
		return pub
	}))
	base := `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: nodemesh
  addresses: [{type: IPAddress, value: 127.0.101.1}]
  listeners: [{name: http, protocol: HTTP, port: ` + strconv.Itoa(m.port) + `}]
---
` + m.service("default", "v1", "v1") + m.service("default", "v2", "v2")
	route := func(backend string) string {
		return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules: [{backendRefs: [{name: ` + backend + `, port: 80}]}]
`
	}
	m.apply(base + route("v1"))
	gw := m.gateway(1)
	if r := get(t, gw, "GET", "a.test", "/"); r.backend != "v1" {
		t.Fatalf("before: backend %q, want v1", r.backend)
	}

	pub.armed.Store(true)
	m.applyNoWait(base + route("v2"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.agent.Status()
		c := meta.FindStatusCondition(st.Gateways[0].Status.Conditions, "Programmed")
		if c != nil && c.Reason == "Invalid" {
			if c.Status != "False" || !strings.Contains(c.Message, "tracing") || !strings.Contains(c.Message, "gateway/default/web/") {
				t.Errorf("Programmed = %s: %s; want False with the proxy's message naming the listener and the tracing field", c.Status, c.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NACK never reached the Gateway status; Programmed = %+v", c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Only the Listener update was rejected: the listener keeps serving
	// with its last good configuration, and the route change (carried by
	// RDS, accepted on its own as Envoy does) is live.
	if r := get(t, gw, "GET", "a.test", "/"); r.status != 200 || r.backend != "v2" {
		t.Errorf("after NACK: %d from %q, want 200 from v2 through the previous listener", r.status, r.backend)
	}

	// Fixing the control plane converges again.
	pub.armed.Store(false)
	m.apply(base + route("v1"))
	if r := get(t, gw, "GET", "a.test", "/"); r.backend != "v1" {
		t.Errorf("after recovery: backend %q, want v1", r.backend)
	}
	c := meta.FindStatusCondition(m.agent.Status().Gateways[0].Status.Conditions, "Programmed")
	if c == nil || c.Status != "True" {
		t.Errorf("after recovery Programmed = %+v, want True", c)
	}
}
