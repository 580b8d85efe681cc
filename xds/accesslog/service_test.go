package accesslog

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/xds/server"
)

func sock(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func testCommon(start time.Time, l7 map[string]any, upstream bool) *datav3.AccessLogCommon {
	c := &datav3.AccessLogCommon{
		StartTime:                  timestamppb.New(start),
		TimeToLastDownstreamTxByte: durationpb.New(3 * time.Millisecond),
		DownstreamRemoteAddress:    sock("10.0.0.20", 40000),
		DownstreamLocalAddress:     sock("10.0.0.10", 80),
	}
	if upstream {
		c.UpstreamRemoteAddress = sock("10.0.0.10", 80)
	}
	if l7 != nil {
		s, err := structpb.NewStruct(l7)
		if err != nil {
			panic(err)
		}
		c.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: s}}
	}
	return c
}

// TestStreamAccessLogs sends entries the way the proxy does, over the
// xDS server's socket, and checks the flows that come out.
func TestStreamAccessLogs(t *testing.T) {
	store := flow.NewStore()
	store.SetResolver(flow.ResolverFunc(func(a netip.Addr) (uint32, string) {
		if a == netip.MustParseAddr("10.0.0.20") {
			return 257, "default/tiefighter"
		}
		return 256, "default/deathstar"
	}))
	_, conn := serveOverSocket(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	httpStream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(s accesslogv3.AccessLogService_StreamAccessLogsClient, m *accesslogv3.StreamAccessLogsMessage) {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	send(httpStream, &accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/ingress/http"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: testCommon(start, map[string]any{l7meta.Protocol: "http", l7meta.Verdict: "FORWARDED", l7meta.Policy: "cnp/default/rule1/ingress/0/port/80/http/0",
					l7meta.MissingHeaders: []any{"x-ship: tie", "authorization: [redacted]"}, l7meta.RejectedHeaders: []any{"authorization: [redacted]"}}, true),
				ProtocolVersion: datav3.HTTPAccessLogEntry_HTTP11,
				Request:         &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Authority: "deathstar", Path: "/v1/request-landing"},
				Response:        &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
			}},
		}},
	})
	// A later message inherits the identifier.
	send(httpStream, &accesslogv3.StreamAccessLogsMessage{
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{
				{
					CommonProperties: testCommon(start.Add(time.Second), map[string]any{l7meta.Protocol: "grpc", l7meta.Verdict: "DROPPED", l7meta.Reason: "rbac_access_denied",
						l7meta.GRPCService: "grpc.testing.TestService", l7meta.GRPCMethod: "EmptyCall", l7meta.GRPCStatus: 7}, false),
					ProtocolVersion: datav3.HTTPAccessLogEntry_HTTP2,
					Request:         &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Path: "/grpc.testing.TestService/EmptyCall"},
					Response:        &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
				},
				{ // stock Envoy: no metadata, a local 403
					CommonProperties: testCommon(start.Add(2*time.Second), nil, false),
					Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_PUT, Path: "/v1/exhaust-port"},
					Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403)},
				},
				{CommonProperties: &datav3.AccessLogCommon{}}, // no addresses: skipped
			},
		}},
	})
	if _, err := httpStream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	tcpStream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send(tcpStream, &accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/egress/kafka"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{
			LogEntry: []*datav3.TCPAccessLogEntry{{CommonProperties: testCommon(start.Add(3*time.Second), map[string]any{
				l7meta.Protocol: "kafka", l7meta.Verdict: "DROPPED", l7meta.KafkaAPIKey: 0, l7meta.KafkaAPIKeyName: "Produce",
				l7meta.KafkaAPIVersion: 9, l7meta.KafkaCorrelationID: 42, l7meta.KafkaClientID: "c1",
				l7meta.KafkaTopics: []any{"deathstar-plans"}, l7meta.KafkaErrorCode: 29, l7meta.KafkaErrorName: "TOPIC_AUTHORIZATION_FAILED",
			}, true)}},
		}},
	})
	if _, err := tcpStream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	flows := store.Query(flow.Filter{}, 0)
	if len(flows) != 4 {
		t.Fatalf("%d flows, want 4: %+v", len(flows), flows)
	}
	f := flows[0]
	if f.Node != "proxy-a" || f.Direction != "ingress" || f.Verdict != flow.Forwarded || f.Protocol != flow.ProtocolHTTP ||
		f.HTTP.Method != "POST" || f.HTTP.Status != 200 || f.HTTP.Version != "HTTP/1.1" || f.Latency != 3*time.Millisecond ||
		f.Source.Identity != 257 || f.Destination.Workload != "default/deathstar" || f.Destination.Address.Port() != 80 ||
		!f.Time.Equal(start) || f.Policy == "" {
		t.Errorf("HTTP flow: %+v %+v", f, f.HTTP)
	}
	if h := f.HTTP; strings.Join(h.MissingHeaders, "|") != "x-ship: tie|authorization: [redacted]" || strings.Join(h.RejectedHeaders, "|") != "authorization: [redacted]" {
		t.Errorf("HTTP flow header match records: missing %q, rejected %q", h.MissingHeaders, h.RejectedHeaders)
	}
	if g := flows[1]; g.Protocol != flow.ProtocolGRPC || g.Verdict != flow.Dropped || g.GRPC.Status != 7 || g.GRPC.Method != "EmptyCall" || g.Listener != "policy/ingress/http" {
		t.Errorf("gRPC flow: %+v %+v", g, g.GRPC)
	}
	if d := flows[2]; d.Verdict != flow.Dropped || d.Protocol != flow.ProtocolHTTP || d.HTTP.Status != 403 {
		t.Errorf("stock Envoy 403 flow: %+v", d)
	}
	k := flows[3]
	if k.Protocol != flow.ProtocolKafka || k.Direction != "egress" || k.Kafka.ErrorCode != 29 || k.Kafka.Topics[0] != "deathstar-plans" ||
		k.Kafka.CorrelationID != 42 || k.Kafka.APIVersion != 9 || k.Kafka.ClientID != "c1" {
		t.Errorf("Kafka flow: %+v %+v", k, k.Kafka)
	}
}

// rawBytes is a message already in wire form, sent as it is by rawCodec
// (which decodes the server's response with protobuf).
type rawBytes []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(rawBytes); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (rawCodec) Name() string                    { return "proto" }

// TestMalformedEntryDroppedAlone sends, over the xDS socket, a message
// whose entries include one with a path that is not UTF-8 and one whose
// bytes end inside a field: those two are dropped and counted, the good
// entries around them become flows, and the stream goes on. A message
// whose own framing is broken still fails its stream.
func TestMalformedEntryDroppedAlone(t *testing.T) {
	store := flow.NewStore()
	svc, conn := serveOverSocket(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(p string) []byte {
		return mustMarshal(&datav3.HTTPAccessLogEntry{
			CommonProperties: testCommon(start, map[string]any{l7meta.Verdict: "FORWARDED"}, true),
			Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: p},
		})
	}
	notUTF8 := mustMarshal(&datav3.HTTPAccessLogEntry{CommonProperties: testCommon(start, nil, true)})
	notUTF8 = protowire.AppendTag(notUTF8, fEntryRequest, protowire.BytesType)
	notUTF8 = protowire.AppendBytes(notUTF8, protowire.AppendString(protowire.AppendTag(nil, fReqPath, protowire.BytesType), "/\xff"))
	cutShort := append(entry("/cut"), byte(fEntryResponse<<3|protowire.BytesType), 5, 8)
	id := mustMarshal(&accesslogv3.StreamAccessLogsMessage{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{
		Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/ingress/http"}})
	msg := append(id, entriesMessage(true, entry("/before"), notUTF8, cutShort, entry("/after"))...)
	if proto.Unmarshal(msg, &accesslogv3.StreamAccessLogsMessage{}) == nil {
		t.Fatal("the test message is not malformed")
	}

	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(rawBytes(msg)); err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(rawBytes(entriesMessage(true, entry("/next")))); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("the stream failed: %v", err)
	}
	var paths []string
	for _, f := range store.Query(flow.Filter{}, 0) {
		paths = append(paths, f.HTTP.Path)
		if f.Node != "proxy-a" || f.Direction != "ingress" {
			t.Errorf("flow %+v", f)
		}
	}
	if strings.Join(paths, " ") != "/before /after /next" {
		t.Errorf("flows of %q, want /before /after /next", paths)
	}
	if st := svc.Stats(); st != (Stats{Flows: 3, Skipped: 2}) {
		t.Errorf("stats %+v, want 3 flows, 2 skipped", st)
	}

	// The entries list itself cut short: the message, and its stream,
	// fail.
	stream, err = accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	broken := entriesMessage(true, entry("/lost"))
	if err := stream.SendMsg(rawBytes(broken[:len(broken)-1])); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err == nil {
		t.Error("a message with broken framing did not fail its stream")
	}
	if n := len(store.Query(flow.Filter{}, 0)); n != 3 {
		t.Errorf("%d flows after the broken message, want 3", n)
	}
}

// batches is a Sink that records how the service hands over flows,
// keeping them in a real store.
type batches struct {
	*flow.Store
	mu    sync.Mutex
	sizes []int
}

func (b *batches) AddAll(fs []flow.Flow) {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(fs))
	b.mu.Unlock()
	b.Store.AddAll(fs)
}

// TestMessageDeliveredWhole: the flows of one message go to the sink in
// one call, in order, without the entries that were skipped; so the
// store is locked, and its followers are woken, once per message.
func TestMessageDeliveredWhole(t *testing.T) {
	sink := &batches{Store: flow.NewStore()}
	svc, conn := serveOverSocket(t, sink)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := hopMessage(64)
	first.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/ingress/http"}
	first.GetHttpLogs().LogEntry[7].CommonProperties.DownstreamRemoteAddress = nil // skipped
	for _, m := range []*accesslogv3.StreamAccessLogsMessage{first, hopMessage(64), hopMessage(3)} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	sizes := fmt.Sprint(sink.sizes)
	sink.mu.Unlock()
	if sizes != "[63 64 3]" {
		t.Errorf("the sink got batches of %s flows, want one per message: [63 64 3]", sizes)
	}
	flows := sink.Query(flow.Filter{}, 0)
	if len(flows) != 130 {
		t.Fatalf("%d flows", len(flows))
	}
	for i, f := range flows {
		want := i
		switch {
		case i >= 127:
			want = i - 127
		case i >= 63:
			want = i - 63
		case i >= 7:
			want = i + 1
		}
		if port := int(f.Source.Address.Port()) - 40000; port != want || f.Node != "proxy-a" || f.Direction != "ingress" {
			t.Fatalf("flow %d: entry %d of its message from %q (%s), want entry %d", i, port, f.Node, f.Direction, want)
		}
	}
	if st := svc.Stats(); st != (Stats{Flows: 130, Skipped: 1}) {
		t.Errorf("stats %+v", st)
	}
}

// TestMessageAllocations bounds the allocations of the agent's path for
// one message of 64 policy-hop entries, from its bytes to the flow store
// (decoding, conversion, delivery, resolution, the ring): the flows'
// memory comes in blocks shared by many entries, and the store
// allocates nothing per flow, so the whole message costs a few
// allocations, not some per entry.
func TestMessageAllocations(t *testing.T) {
	const n = 64
	store := flow.NewStore()
	store.SetResolver(flow.ResolverFunc(func(a netip.Addr) (uint32, string) { return 258, "default/server" }))
	svc := New(store, nil)
	msg := mustMarshal(hopMessage(n))
	w := &wireMessage{}
	var batch []flow.Flow
	run := func() {
		if err := w.Unmarshal(msg); err != nil || len(w.entries) != n {
			t.Fatalf("decoding: %v, %d entries", err, len(w.entries))
		}
		batch = svc.deliver(batch[:0], w.entries, "proxy", "policy/ingress/http", "ingress")
	}
	run()
	// An HTTP part per entry, blocks of strings (4 KiB; the hop's entries
	// take about 80 bytes), and some slack: an eighth of an allocation
	// per entry.
	const bound = n + n/8
	if allocs := testing.AllocsPerRun(50, run); allocs > bound {
		t.Errorf("%.1f allocations for a message of %d entries, want at most %d", allocs, n, bound)
	}
	if got := store.Query(flow.Filter{}, 1)[0]; got.HTTP.Path != "/hop" || got.Destination.Workload != "default/server" || got.Node != "proxy" {
		t.Errorf("flow %+v %+v", got, got.HTTP)
	}
}

// TestLargeMessageNotKept: the room a stream took for a rare large
// message (the decoded entries, the batch for the sink) is not kept for
// the messages after it.
func TestLargeMessageNotKept(t *testing.T) {
	svc := New(flow.NewStore(), nil)
	w := &wireMessage{}
	var batch []flow.Flow
	for _, n := range []int{1000, 3} {
		if err := w.Unmarshal(mustMarshal(hopMessage(n))); err != nil || len(w.entries) != n {
			t.Fatalf("decoding: %v, %d entries", err, len(w.entries))
		}
		batch = svc.deliver(batch[:0], w.entries, "proxy", "policy/ingress/http", "ingress")
	}
	if cap(w.entries) > keptEntries || cap(batch) > keptEntries {
		t.Errorf("after a message of 1000 entries and one of 3: room for %d entries and %d flows kept, want at most %d",
			cap(w.entries), cap(batch), keptEntries)
	}
}

// serveOverSocket serves a Service over sink on an xDS server's Unix
// socket, as the agent does, and returns it with a client connection.
func serveOverSocket(t *testing.T, sink Sink) (*Service, *grpc.ClientConn) {
	t.Helper()
	srv := server.New()
	svc := New(sink, nil)
	svc.Register(srv)
	path := filepath.Join(t.TempDir(), "xds.sock")
	l, err := server.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(time.Second) })
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return svc, conn
}
