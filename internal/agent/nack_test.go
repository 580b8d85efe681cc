package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/xds/publish"
	"github.com/nodemesh/nodemesh/xds/server"
)

// twoGateways has Gateways web and api; api listens on apiPort.
func twoGateways(apiPort int) string {
	gw := func(name string, port int) string {
		return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: %s, namespace: default}
spec:
  gatewayClassName: nodemesh
  listeners: [{name: http, protocol: HTTP, port: %d}]
`, name, port)
	}
	return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: nodemesh}
spec: {controllerName: nodemesh.io/gateway-controller}
---
` + gw("web", 8080) + "---\n" + gw("api", apiPort)
}

// TestNackIsTracedByResourceNames runs the agent on the real xDS server
// with a bare state-of-the-world client that rejects a Listener update
// with a message naming nothing. The rejection is traced to the Gateway
// whose listener changed, by the names of the resources the server sent
// (not by the proxy's text): api is Invalid, web only held back.
func TestNackIsTracedByResourceNames(t *testing.T) {
	srv := server.New()
	sock := filepath.Join(t.TempDir(), "xds.sock")
	l, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	a, err := New(Config{Publisher: publish.New(srv)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Apply(ctx, snapshotOf(t, twoGateways(8080)), nil); err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "raw"}
	send := func(req *discoveryv3.DiscoveryRequest) {
		t.Helper()
		req.Node, req.TypeUrl = node, resource.ListenerType
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() *discoveryv3.DiscoveryResponse {
		t.Helper()
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	send(&discoveryv3.DiscoveryRequest{})
	first := recv()
	send(&discoveryv3.DiscoveryRequest{VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}) // ACK

	// Only api's listener changes; the client rejects the update.
	if err := a.Apply(ctx, snapshotOf(t, twoGateways(9090)), nil); err != nil {
		t.Fatal(err)
	}
	second := recv()
	send(&discoveryv3.DiscoveryRequest{VersionInfo: first.VersionInfo, ResponseNonce: second.Nonce,
		ErrorDetail: &status.Status{Code: 3, Message: "unsupported field"}})

	programmed := func(st *api.Status, name string) (string, string) {
		for _, g := range st.Gateways {
			if g.Key.Name == name {
				if c := meta.FindStatusCondition(g.Status.Conditions, "Programmed"); c != nil {
					return c.Reason, c.Message
				}
			}
		}
		return "", ""
	}
	st, err := a.WaitStatus(ctx, func(st *api.Status) bool {
		r, _ := programmed(st, "api")
		return r == "Invalid"
	})
	if err != nil {
		t.Fatalf("%v; api is %v", err, st.Gateways)
	}
	if r, m := programmed(st, "api"); !strings.Contains(m, "proxy raw rejected Listener") || !strings.Contains(m, "unsupported field") {
		t.Errorf("api: %s: %s", r, m)
	}
	if r, m := programmed(st, "web"); r != "Pending" || !strings.Contains(m, "because of another resource: unsupported field") {
		t.Errorf("web: %s: %s, want Pending: held back by another resource", r, m)
	}
	var objs []string
	for _, p := range st.Proxies {
		for _, ts := range p.Types {
			if ts.Nack != nil {
				for _, o := range ts.Nack.Objects {
					objs = append(objs, o.Kind+" "+o.Namespace+"/"+o.Name)
				}
			}
		}
	}
	if strings.Join(objs, ",") != "Gateway default/api" {
		t.Errorf("the NACK names objects %v, want only Gateway default/api", objs)
	}
}
