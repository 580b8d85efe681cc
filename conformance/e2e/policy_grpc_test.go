package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nodemesh/nodemesh/datapath/testbed"
	"github.com/nodemesh/nodemesh/internal/agent/api"
	"github.com/nodemesh/nodemesh/mesh/flow"
)

// TestPolicyGRPC: a gRPC method rule is an HTTP path rule (GRPC-05). With
// grpc-go on both ends through the eBPF redirect and the proxy, the
// allowed method answers and the others fail with status 7,
// PERMISSION_DENIED, not a bare 403.
func TestPolicyGRPC(t *testing.T) {
	n := startPolicyNode(t, 2)
	server, client := n.bed.Workloads[0], n.bed.Workloads[1]
	l, err := server.Listen("tcp", ":50051")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)

	n.apply(pod("grpc-server", server, map[string]string{"app": "grpc-server"}) +
		pod("grpc-client", client, map[string]string{"app": "grpc-client"}) + `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: grpc-health}
spec:
  endpointSelector: {matchLabels: {app: grpc-server}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: grpc-client}}]
    toPorts:
    - ports: [{port: "50051", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /grpc.health.v1.Health/Check}
`)
	hc := healthClient(t, client, fmt.Sprintf("%s:50051", server.IPv4))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("allowed Check: %v, %v", resp, err)
	}
	_, err = hc.List(ctx, &healthpb.HealthListRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied List: got %v, want code 7 PERMISSION_DENIED", err)
	}
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "echo"})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied Watch: got %v, want code 7 PERMISSION_DENIED", err)
	}
	// Check still works on the same connection after the denials.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "echo"}); err != nil {
		t.Fatalf("Check after denials: %v", err)
	}

	drops := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Dropped, Protocol: flow.ProtocolGRPC}}, 2)
	for _, f := range drops {
		if f.GRPC == nil || f.GRPC.Status != int(codes.PermissionDenied) || f.GRPC.Service != "grpc.health.v1.Health" ||
			f.Source.Workload != "default/grpc-client" {
			t.Errorf("dropped gRPC flow %+v %+v", f, f.GRPC)
		}
	}
	ok := n.flowsMatching(api.FlowQuery{Filter: flow.Filter{Verdict: flow.Forwarded, Protocol: flow.ProtocolGRPC}}, 2)
	if f := ok[0]; f.GRPC.Method != "Check" || f.GRPC.Status != 0 {
		t.Errorf("forwarded gRPC flow %+v %+v", f, f.GRPC)
	}
}

func healthClient(t *testing.T, from *testbed.Workload, target string) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return from.DialWith(ctx, &net.Dialer{}, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}
