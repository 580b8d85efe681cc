package accesslog

import (
	"reflect"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// compareReference fails unless the decoder (w) read m's identifier and
// entries as the protobuf-based conversion does.
func compareReference(t *testing.T, m *accesslogv3.StreamAccessLogsMessage, w *wireMessage) {
	t.Helper()
	if id := m.GetIdentifier(); (id != nil) != w.hasID {
		t.Fatalf("identifier present %v, decoder %v", id != nil, w.hasID)
	} else if id != nil {
		node, _ := capField(id.GetNode().GetId())
		name, _ := capField(id.GetLogName())
		if node != w.node || name != w.logName {
			t.Fatalf("identifier %.40q %.40q, decoder %.40q %.40q", node, name, w.node, w.logName)
		}
	}
	var want []converted
	for _, e := range m.GetHttpLogs().GetLogEntry() {
		f, truncated, ok := refHTTP(e)
		want = append(want, converted{f, truncated, ok})
	}
	for _, e := range m.GetTcpLogs().GetLogEntry() {
		f, truncated, ok := refTCP(e)
		want = append(want, converted{f, truncated, ok})
	}
	if len(want) != len(w.entries) {
		t.Fatalf("%d entries, decoder %d", len(want), len(w.entries))
	}
	for i := range want {
		g, r := w.entries[i], want[i]
		if g.ok != r.ok || !r.ok {
			if g.ok != r.ok {
				t.Fatalf("entry %d: converted %v, decoder %v", i, r.ok, g.ok)
			}
			continue
		}
		if g.truncated != r.truncated || !reflect.DeepEqual(g.f, r.f) || !reflect.DeepEqual(g.f.HTTP, r.f.HTTP) ||
			!reflect.DeepEqual(g.f.GRPC, r.f.GRPC) || !reflect.DeepEqual(g.f.Kafka, r.f.Kafka) {
			t.Fatalf("entry %d:\nreference %v %+v %+v %+v %+v\ndecoder   %v %+v %+v %+v %+v", i,
				r.truncated, r.f, r.f.HTTP, r.f.GRPC, r.f.Kafka, g.truncated, g.f, g.f.HTTP, g.f.GRPC, g.f.Kafka)
		}
	}
}

// hopEntry is an HTTP entry as the builtin proxy logs a request on the
// policy hop (proxylib/hcm): addresses, times, the upstream, the route,
// the request's head fields and the l7 metadata of an allowed request.
func hopEntry(i int) *datav3.HTTPAccessLogEntry {
	start := time.Date(2026, 12, 5, 10, 0, 0, i*1000, time.UTC)
	remote, local := sock("10.244.0.17", uint32(40000+i%20000)), sock("10.244.0.23", 8080)
	dur := durationpb.New(180 * time.Microsecond)
	return &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			StartTime: timestamppb.New(start), Duration: dur, TimeToLastDownstreamTxByte: dur,
			DownstreamRemoteAddress: remote, DownstreamDirectRemoteAddress: remote, DownstreamLocalAddress: local,
			UpstreamRemoteAddress: sock("10.244.0.23", 8080), UpstreamCluster: "original-destination",
			RouteName: "policy-ingress-8080",
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: {Fields: map[string]*structpb.Value{
				l7meta.Protocol:       structpb.NewStringValue("http"),
				l7meta.Verdict:        structpb.NewStringValue(l7meta.VerdictForwarded),
				l7meta.Policy:         structpb.NewStringValue("cnp/default/hop-policy/ingress/0/port/8080/http/0"),
				l7meta.SourceIdentity: structpb.NewNumberValue(257),
			}}}},
		},
		ProtocolVersion: datav3.HTTPAccessLogEntry_HTTP11,
		Request: &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Scheme: "http", Authority: "server:8080",
			Path: "/hop", UserAgent: "hopgen/1"},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseCodeDetails: "via_upstream"},
	}
}

// hopMessage is a batch of n hop entries (376 bytes each; the proxy
// sends about 16 KiB a message).
func hopMessage(n int) *accesslogv3.StreamAccessLogsMessage {
	var entries []*datav3.HTTPAccessLogEntry
	for i := range n {
		entries = append(entries, hopEntry(i))
	}
	return &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
		HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// logEntryField frames entry bytes as one log_entry of an entries
// message, and that as the message's http_logs (http) or tcp_logs.
func entriesMessage(http bool, entries ...[]byte) []byte {
	var inner []byte
	for _, e := range entries {
		inner = protowire.AppendTag(inner, fEntriesLogEntry, protowire.BytesType)
		inner = protowire.AppendBytes(inner, e)
	}
	field := protowire.Number(fMsgTCPLogs)
	if http {
		field = fMsgHTTPLogs
	}
	out := protowire.AppendTag(nil, field, protowire.BytesType)
	return protowire.AppendBytes(out, inner)
}

// mergedSeeds are messages whose fields repeat, which protobuf merges
// (concatenated messages merge: the last scalar wins, messages merge, a
// oneof's other member replaces, a map entry replaces the one of its
// key), fields of the wrong wire type (unknown to protobuf), keys after
// values, and the hop's entries.
func mergedSeeds(start time.Time) [][]byte {
	e1 := &datav3.HTTPAccessLogEntry{
		CommonProperties: testCommon(start, map[string]any{l7meta.Protocol: "grpc", l7meta.Verdict: "DROPPED",
			l7meta.GRPCService: "a.B", l7meta.MissingHeaders: []any{"x: 1", 2, "y: 3"}, l7meta.SourceIdentity: 1 << 33}, false),
		Request:  &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Authority: "one", Path: "/a.B/C"},
		Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
	}
	e2 := &datav3.HTTPAccessLogEntry{
		CommonProperties: &datav3.AccessLogCommon{
			DownstreamLocalAddress: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/p"}}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{l7meta.Namespace: {Fields: map[string]*structpb.Value{
				l7meta.Verdict:        structpb.NewNumberValue(3),
				l7meta.SourceIdentity: structpb.NewNumberValue(4.5),
				l7meta.MissingHeaders: structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("z: 9")}}),
			}}}},
		},
		Request:  &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod(42), Path: "/second"},
		Response: &datav3.HTTPResponseProperties{ResponseCode: &wrapperspb.UInt32Value{}},
	}
	e3 := &datav3.HTTPAccessLogEntry{CommonProperties: &datav3.AccessLogCommon{
		DownstreamLocalAddress: sock("fd00::2", 8443),
		StartTime:              &timestamppb.Timestamp{Nanos: 7},
		Duration:               &durationpb.Duration{Seconds: -1 << 62},
	}}
	b1, b2, b3 := mustMarshal(e1), mustMarshal(e2), mustMarshal(e3)
	// A map entry with its value before its key, and a key that repeats.
	kv := protowire.AppendTag(nil, fMapValue, protowire.BytesType)
	kv = protowire.AppendBytes(kv, mustMarshal(&structpb.Struct{Fields: map[string]*structpb.Value{l7meta.Policy: structpb.NewStringValue("late key")}}))
	kv = protowire.AppendTag(kv, fMapKey, protowire.BytesType)
	kv = protowire.AppendString(kv, "other")
	kv = protowire.AppendTag(kv, fMapKey, protowire.BytesType)
	kv = protowire.AppendString(kv, l7meta.Namespace)
	md := protowire.AppendTag(nil, fMetaFilter, protowire.BytesType)
	md = protowire.AppendBytes(md, kv)
	common := protowire.AppendTag(nil, fCommonMetadata, protowire.BytesType)
	common = protowire.AppendBytes(common, md)
	// Known field numbers with another wire type: unknown fields.
	common = protowire.AppendTag(common, fCommonRemote, protowire.VarintType)
	common = protowire.AppendVarint(common, 1)
	common = protowire.AppendTag(common, fCommonStart, protowire.Fixed32Type)
	common = protowire.AppendFixed32(common, 1)
	e4 := protowire.AppendTag(nil, fEntryCommon, protowire.BytesType)
	e4 = protowire.AppendBytes(e4, common)
	e4 = protowire.AppendTag(e4, fEntryRequest, protowire.VarintType)
	e4 = protowire.AppendVarint(e4, 5)
	e4 = protowire.AppendTag(e4, 99, protowire.StartGroupType)
	e4 = protowire.AppendTag(e4, 99, protowire.EndGroupType)

	tcp := mustMarshal(&datav3.TCPAccessLogEntry{CommonProperties: testCommon(start, map[string]any{l7meta.KafkaAPIKey: nil}, false)})
	id := mustMarshal(&accesslogv3.StreamAccessLogsMessage{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "n1"}}})
	id2 := mustMarshal(&accesslogv3.StreamAccessLogsMessage{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{LogName: "policy/egress/http"}})
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	return [][]byte{
		mustMarshal(hopMessage(4)),
		// Entries merged with themselves and with each other.
		cat(id, entriesMessage(true, cat(b1, b2), cat(b2, b1), cat(b1, b3), cat(b3, b1, b2), e4, cat(b1, e4)), id2),
		// http_logs, then tcp_logs: the oneof keeps the TCP entries.
		cat(entriesMessage(true, b1), entriesMessage(false, tcp, cat(tcp, b2))),
		// tcp_logs, then http_logs twice: the HTTP entries of both.
		cat(entriesMessage(false, tcp), entriesMessage(true, b1), id, entriesMessage(true, b3, b2)),
	}
}

// TestFieldNumbers checks the decoder's field numbers and wire types
// against the generated descriptors, and that the oneofs it relies on
// have the members it knows.
func TestFieldNumbers(t *testing.T) {
	for _, c := range []struct {
		m      proto.Message
		name   protoreflect.Name
		num    protowire.Number
		kind   protoreflect.Kind
		oneofN int // members of the field's oneof, 0: none
	}{
		{&accesslogv3.StreamAccessLogsMessage{}, "identifier", fMsgIdentifier, protoreflect.MessageKind, 0},
		{&accesslogv3.StreamAccessLogsMessage{}, "http_logs", fMsgHTTPLogs, protoreflect.MessageKind, 2},
		{&accesslogv3.StreamAccessLogsMessage{}, "tcp_logs", fMsgTCPLogs, protoreflect.MessageKind, 2},
		{&accesslogv3.StreamAccessLogsMessage_Identifier{}, "node", fIDNode, protoreflect.MessageKind, 0},
		{&accesslogv3.StreamAccessLogsMessage_Identifier{}, "log_name", fIDLogName, protoreflect.StringKind, 0},
		{&corev3.Node{}, "id", fNodeID, protoreflect.StringKind, 0},
		{&accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}, "log_entry", fEntriesLogEntry, protoreflect.MessageKind, 0},
		{&accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{}, "log_entry", fEntriesLogEntry, protoreflect.MessageKind, 0},
		{&datav3.HTTPAccessLogEntry{}, "common_properties", fEntryCommon, protoreflect.MessageKind, 0},
		{&datav3.TCPAccessLogEntry{}, "common_properties", fEntryCommon, protoreflect.MessageKind, 0},
		{&datav3.HTTPAccessLogEntry{}, "protocol_version", fEntryVersion, protoreflect.EnumKind, 0},
		{&datav3.HTTPAccessLogEntry{}, "request", fEntryRequest, protoreflect.MessageKind, 0},
		{&datav3.HTTPAccessLogEntry{}, "response", fEntryResponse, protoreflect.MessageKind, 0},
		{&datav3.HTTPRequestProperties{}, "request_method", fReqMethod, protoreflect.EnumKind, 0},
		{&datav3.HTTPRequestProperties{}, "authority", fReqAuthority, protoreflect.StringKind, 0},
		{&datav3.HTTPRequestProperties{}, "path", fReqPath, protoreflect.StringKind, 0},
		{&datav3.HTTPResponseProperties{}, "response_code", fRespCode, protoreflect.MessageKind, 0},
		{&wrapperspb.UInt32Value{}, "value", fUInt32Value, protoreflect.Uint32Kind, 0},
		{&datav3.AccessLogCommon{}, "downstream_remote_address", fCommonRemote, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "downstream_local_address", fCommonLocal, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "start_time", fCommonStart, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "time_to_last_downstream_tx_byte", fCommonLastTx, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "upstream_remote_address", fCommonUpstream, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "metadata", fCommonMetadata, protoreflect.MessageKind, 0},
		{&datav3.AccessLogCommon{}, "duration", fCommonDuration, protoreflect.MessageKind, 0},
		{&timestamppb.Timestamp{}, "seconds", fSeconds, protoreflect.Int64Kind, 0},
		{&timestamppb.Timestamp{}, "nanos", fNanos, protoreflect.Int32Kind, 0},
		{&durationpb.Duration{}, "seconds", fSeconds, protoreflect.Int64Kind, 0},
		{&durationpb.Duration{}, "nanos", fNanos, protoreflect.Int32Kind, 0},
		{&corev3.Address{}, "socket_address", fAddrSocket, protoreflect.MessageKind, 3},
		{&corev3.Address{}, "pipe", fAddrPipe, protoreflect.MessageKind, 3},
		{&corev3.Address{}, "envoy_internal_address", fAddrInternal, protoreflect.MessageKind, 3},
		{&corev3.SocketAddress{}, "address", fSockAddress, protoreflect.StringKind, 0},
		{&corev3.SocketAddress{}, "port_value", fSockPort, protoreflect.Uint32Kind, 2},
		{&corev3.SocketAddress{}, "named_port", fSockNamed, protoreflect.StringKind, 2},
		{&corev3.Metadata{}, "filter_metadata", fMetaFilter, protoreflect.MessageKind, 0},
		{&structpb.Struct{}, "fields", fStructField, protoreflect.MessageKind, 0},
		{&structpb.ListValue{}, "values", fListValues, protoreflect.MessageKind, 0},
		{&structpb.Value{}, "null_value", fValueNull, protoreflect.EnumKind, 6},
		{&structpb.Value{}, "number_value", fValueNumber, protoreflect.DoubleKind, 6},
		{&structpb.Value{}, "string_value", fValueString, protoreflect.StringKind, 6},
		{&structpb.Value{}, "bool_value", fValueBool, protoreflect.BoolKind, 6},
		{&structpb.Value{}, "struct_value", fValueStruct, protoreflect.MessageKind, 6},
		{&structpb.Value{}, "list_value", fValueList, protoreflect.MessageKind, 6},
	} {
		d := c.m.ProtoReflect().Descriptor().Fields().ByName(c.name)
		if d == nil || d.Number() != c.num || d.Kind() != c.kind || d.Cardinality() == protoreflect.Repeated && c.name != "log_entry" && c.name != "values" && c.name != "fields" && c.name != "filter_metadata" {
			t.Errorf("%s.%s: %v, the decoder reads field %d as %v", c.m.ProtoReflect().Descriptor().FullName(), c.name, d, c.num, c.kind)
			continue
		}
		n := 0
		if o := d.ContainingOneof(); o != nil {
			n = o.Fields().Len()
		}
		if n != c.oneofN {
			t.Errorf("%s.%s: a oneof of %d fields, the decoder knows %d", c.m.ProtoReflect().Descriptor().FullName(), c.name, n, c.oneofN)
		}
	}
	for _, m := range []proto.Message{&corev3.Metadata{}, &structpb.Struct{}} {
		e := m.ProtoReflect().Descriptor().Fields().Get(0).Message()
		if k, v := e.Fields().ByNumber(fMapKey), e.Fields().ByNumber(fMapValue); k == nil || k.Kind() != protoreflect.StringKind || v == nil || v.Kind() != protoreflect.MessageKind {
			t.Errorf("map entry %s: key %v, value %v", e.FullName(), k, v)
		}
	}
}

// BenchmarkDecode turns a 16 KiB message of 64 policy-hop entries into
// flows: "proto" as before (proto.Unmarshal, then the conversion from
// the generated types and the metadata Struct), "wire" with the decoder.
// ns/entry is the time per entry.
func BenchmarkDecode(b *testing.B) {
	const n = 64
	msg := mustMarshal(hopMessage(n))
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			m := &accesslogv3.StreamAccessLogsMessage{}
			if err := proto.Unmarshal(msg, m); err != nil {
				b.Fatal(err)
			}
			for _, e := range m.GetHttpLogs().GetLogEntry() {
				if _, _, ok := refHTTP(e); !ok {
					b.Fatal("entry not converted")
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		w := &wireMessage{}
		for b.Loop() {
			if err := w.Unmarshal(msg); err != nil || len(w.entries) != n || !w.entries[n-1].ok {
				b.Fatal("message not decoded", err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
	})
}
