package server

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nodemesh/nodemesh/mesh/ir"
	"github.com/nodemesh/nodemesh/xds/translator"
)

// policyResources translates a one-listener L7 policy whose only HTTP rule
// allows method.
func policyResources(t testing.TB, method string) *translator.Resources {
	t.Helper()
	res, err := translator.Translate(&ir.Config{Policy: &ir.Policy{
		UpstreamMark: 0xA00,
		Listeners:    []*ir.PolicyListener{{Name: "policy/ingress/http", Direction: ir.PolicyIngress, Protocol: ir.L7HTTP, Address: "127.0.0.1", Port: 15101}},
		HTTP: []*ir.HTTPPolicy{{Name: "p", Direction: ir.PolicyIngress, Port: 80, Endpoints: []string{"10.0.0.1/32"},
			Peers: ir.PeerSet{Any: true}, Request: &ir.HTTPRequestRule{Method: method}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// rawStream is a bare state-of-the-world ADS stream, for checking exactly
// what the server sends.
type rawStream struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	last   map[string]*discoveryv3.DiscoveryResponse
}

func openRaw(t *testing.T, path, node string) *rawStream {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &rawStream{t: t, stream: st, node: &corev3.Node{Id: node, Cluster: "nodemesh-proxy"}, last: map[string]*discoveryv3.DiscoveryResponse{}}
}

// request subscribes (or ACKs the last response of the type).
func (r *rawStream) request(typeURL string, names ...string) {
	r.t.Helper()
	req := &discoveryv3.DiscoveryRequest{Node: r.node, TypeUrl: typeURL, ResourceNames: names}
	if last := r.last[typeURL]; last != nil {
		req.VersionInfo, req.ResponseNonce = last.VersionInfo, last.Nonce
	}
	if err := r.stream.Send(req); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next response.
func (r *rawStream) recv() *discoveryv3.DiscoveryResponse {
	r.t.Helper()
	type result struct {
		resp *discoveryv3.DiscoveryResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := r.stream.Recv()
		ch <- result{resp, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			r.t.Fatal(res.err)
		}
		r.last[res.resp.TypeUrl] = res.resp
		return res.resp
	case <-time.After(10 * time.Second):
		r.t.Fatal("no response within 10s")
	}
	return nil
}

func rbacMethod(t *testing.T, resp *discoveryv3.DiscoveryResponse) string {
	t.Helper()
	if len(resp.Resources) != 1 {
		t.Fatalf("%d extension configs, want 1", len(resp.Resources))
	}
	var tc corev3.TypedExtensionConfig
	if err := resp.Resources[0].UnmarshalTo(&tc); err != nil {
		t.Fatal(err)
	}
	var rb rbacfilterv3.RBAC
	if err := tc.TypedConfig.UnmarshalTo(&rb); err != nil {
		t.Fatal(err)
	}
	for _, perm := range rb.Rules.Policies["p"].Permissions[0].GetAndRules().Rules {
		if h := perm.GetHeader(); h != nil && h.Name == ":method" {
			return h.GetStringMatch().GetSafeRegex().GetRegex()
		}
	}
	return ""
}

// TestExtensionConfigs: filter configurations are served over ECDS to the
// proxy that names them, and a change of one is pushed without touching
// the listener that uses it.
func TestExtensionConfigs(t *testing.T) {
	s, path := startServer(t)
	update(t, s, policyResources(t, "GET"))
	r := openRaw(t, path, "raw")
	r.request(resource.ListenerType)
	lds := r.recv()
	if lds.TypeUrl != resource.ListenerType || len(lds.Resources) != 1 {
		t.Fatalf("first response: %s with %d resources", lds.TypeUrl, len(lds.Resources))
	}
	r.request(resource.ListenerType) // ACK
	r.request(resource.ExtensionConfigType, "policy/ingress/http/rbac")
	ecds := r.recv()
	if ecds.TypeUrl != resource.ExtensionConfigType || rbacMethod(t, ecds) != "GET" {
		t.Fatalf("ECDS response %s", ecds.TypeUrl)
	}
	r.request(resource.ExtensionConfigType, "policy/ingress/http/rbac") // ACK
	waitFor(t, func() bool {
		for _, n := range s.Status() {
			if n.ID == "raw" {
				return true
			}
		}
		return false
	})

	up := update(t, s, policyResources(t, "POST"))
	if up.TypeVersions[resource.ListenerType] != lds.VersionInfo {
		t.Fatalf("a rule change changed the listener version")
	}
	next := r.recv()
	if next.TypeUrl != resource.ExtensionConfigType {
		t.Fatalf("after a rule change the server sent %s, want only the extension config", next.TypeUrl)
	}
	if rbacMethod(t, next) != "POST" || next.VersionInfo == ecds.VersionInfo {
		t.Fatalf("extension config not updated (version %s)", next.VersionInfo)
	}
}

func TestUpdateRejectsMissingExtensionConfig(t *testing.T) {
	s, _ := startServer(t)
	res := policyResources(t, "GET")
	res.ExtensionConfigs = nil
	_, err := s.Update(ctxT(t), res)
	if err == nil || !strings.Contains(err.Error(), `extension config "policy/ingress/http/rbac" is referenced but not defined`) {
		t.Fatalf("got %v", err)
	}
}
