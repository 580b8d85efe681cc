package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/mesh/identity"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/xds/accesslog"
	"github.com/nodemesh/nodemesh/xds/server"
)

// hopPods is a cluster of n Pods (n >= 2) in 10.244.0.0/16, spread over
// a few label sets; the policy hop's client is the first, its server the
// second.
func hopPods(n int) []*corev1.Pod {
	pods := make([]*corev1.Pod, 0, n)
	for i := range n {
		app := fmt.Sprintf("app-%d", i%16)
		switch i {
		case 0:
			app = "client"
		case 1:
			app = "server"
		}
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("pod-%d", i), Labels: map[string]string{"app": app}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning,
				PodIP: netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(17 + i%250)}).String()},
		})
	}
	return pods
}

// hopBatch is one access-log message as the proxy sends it on the policy
// hop at 1k req/s: n HTTP entries of allowed requests from client to
// server (addresses, times, the upstream, the request's head, the l7
// metadata with the source identity the datapath gave the proxy), with
// the stream's identifier when first.
func hopBatch(n int, client, server netip.Addr, clientID uint32, first bool) []byte {
	sock := func(a netip.Addr, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: a.String(), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	var entries []*datav3.HTTPAccessLogEntry
	for i := range n {
		remote, local := sock(client, uint32(40000+i)), sock(server, 8080)
		dur := durationpb.New(180 * time.Microsecond)
		entries = append(entries, &datav3.HTTPAccessLogEntry{
			CommonProperties: &datav3.AccessLogCommon{
				StartTime: timestamppb.New(time.Date(2026, 12, 5, 10, 0, 0, i*1000, time.UTC)), Duration: dur, TimeToLastDownstreamTxByte: dur,
				DownstreamRemoteAddress: remote, DownstreamDirectRemoteAddress: remote, DownstreamLocalAddress: local,
				UpstreamRemoteAddress: sock(server, 8080), UpstreamCluster: "original-destination", RouteName: "policy-ingress-8080",
				Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: {Fields: map[string]*structpb.Value{
					l7meta.Protocol:       structpb.NewStringValue("http"),
					l7meta.Verdict:        structpb.NewStringValue(l7meta.VerdictForwarded),
					l7meta.Policy:         structpb.NewStringValue("cnp/default/hop-policy/ingress/0/port/8080/http/0"),
					l7meta.SourceIdentity: structpb.NewNumberValue(float64(clientID)),
				}}}},
			},
			ProtocolVersion: datav3.HTTPAccessLogEntry_HTTP11,
			Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Scheme: "http", Authority: "server:8080",
				Path: "/hop", UserAgent: "hopgen/1"},
			Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
		})
	}
	m := &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
	if first {
		m.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy"}, LogName: "policy/ingress/http"}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// wireBytes is a message already in wire form, which wireCodec sends as
// it is (the proxy's sender encodes its entries ahead too).
type wireBytes []byte

type wireCodec struct{}

func (wireCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(wireBytes); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (wireCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (wireCodec) Name() string                    { return "proto" }

// BenchmarkAccessLogPath is the agent's whole path for the policy hop's
// access log: a gRPC client stream on the xDS server's Unix socket sends
// messages of 64 hop entries (one per op, as the proxy does every 64 ms
// at 1k req/s), and the access-log service decodes them into the flow
// store with the agent's resolver (ipcache, workloads, labels) over a
// cluster of 2 Pods (the hop's) or 1000. Each op waits until the store
// holds the message's flows, as a follower of the store would.
// ns/entry is wall time per entry; cpu-ns/entry the process's CPU time
// (user + system, client included) per entry; allocs/entry the
// allocations per entry, client and gRPC included.
func BenchmarkAccessLogPath(b *testing.B) {
	for _, pods := range []int{2, 1000} {
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) { benchmarkAccessLogPath(b, pods) })
	}
}

func benchmarkAccessLogPath(b *testing.B, pods int) {
	const entries = 64
	st := identity.NewManager().Resolve(identity.Input{Pods: hopPods(pods)})
	var client, srvAddr netip.Addr
	var clientID uint32
	for _, ep := range st.Endpoints {
		switch ep.Pod.Name {
		case "pod-0":
			client, clientID = ep.IPs[0], uint32(ep.Identity)
		case "pod-1":
			srvAddr = ep.IPs[0]
		}
	}
	store := flow.NewStore()
	store.SetResolver(resolverFor(st))

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New()
	accesslog.New(store, log).Register(srv)
	path := filepath.Join(b.TempDir(), "xds.sock")
	l, err := server.ListenUnix(path)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Stop(time.Second) })
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx, grpc.ForceCodec(wireCodec{}))
	if err != nil {
		b.Fatal(err)
	}
	want := uint64(0)
	send := func(msg []byte) {
		if err := stream.SendMsg(wireBytes(msg)); err != nil {
			b.Fatal(err)
		}
		want += entries
		for {
			changed := store.Changed()
			if store.Last() >= want {
				return
			}
			<-changed
		}
	}
	send(hopBatch(entries, client, srvAddr, clientID, true))
	if f := store.Query(flow.Filter{}, 1)[0]; f.Source.Workload != "default/pod-0" || f.Destination.Identity == 0 || f.Source.Labels == nil {
		b.Fatalf("flow not resolved: %+v", f)
	}
	msg := hopBatch(entries, client, srvAddr, clientID, false)

	var ms0, ms1 runtime.MemStats
	var ru0, ru1 syscall.Rusage
	runtime.ReadMemStats(&ms0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		send(msg)
		n++
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&ms1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	total := float64(n * entries)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/entry")
	b.ReportMetric(float64(cpu.Nanoseconds())/total, "cpu-ns/entry")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/entry")
}
