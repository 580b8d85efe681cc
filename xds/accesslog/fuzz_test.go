package accesslog

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// FuzzEntries decodes StreamAccessLogsMessage wire bytes, as a client of
// the xDS socket sends them, with the decoder (wireMessage). Properties:
// no panic; every flow has a protocol and a verdict and keeps within the
// bounds of bounds.go (each string, each list and the entry's strings
// together, valid UTF-8), and a flow showing the mark where the input had
// none was reported as cut; the identifier keeps within its bounds. On
// inputs protobuf decodes, the decoder accepts them too and its flows are
// those of the conversion from the generated types (reference_test.go):
// same entries, same flows, same cut reports; an entry becomes a flow
// only when both downstream addresses are socket addresses with an IP and
// a port that fits 16 bits.
func FuzzEntries(f *testing.F) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, m := range []*accesslogv3.StreamAccessLogsMessage{
		{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/ingress/http"},
			LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
				LogEntry: []*datav3.HTTPAccessLogEntry{{
					CommonProperties: testCommon(start, map[string]any{l7meta.Protocol: "grpc", l7meta.Verdict: "DROPPED", l7meta.Reason: "rbac_access_denied",
						l7meta.GRPCService: "grpc.testing.TestService", l7meta.GRPCMethod: "EmptyCall", l7meta.GRPCStatus: 7,
						l7meta.MissingHeaders: []any{"x-ship: tie"}}, false),
					ProtocolVersion: datav3.HTTPAccessLogEntry_HTTP2,
					Request:         &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Authority: "deathstar", Path: "/grpc.testing.TestService/EmptyCall"},
					Response:        &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
				}, {
					CommonProperties: testCommon(start, nil, false),
					Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_PUT, Path: "/v1/exhaust-port"},
					Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403)},
				}, {CommonProperties: &datav3.AccessLogCommon{DownstreamRemoteAddress: sock("::ffff:10.0.0.1", 70000), DownstreamLocalAddress: sock("fd00::1", 80)}}},
			}}},
		{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{LogName: "policy/egress/kafka"},
			LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{
				LogEntry: []*datav3.TCPAccessLogEntry{{CommonProperties: testCommon(start, map[string]any{
					l7meta.Protocol: "kafka", l7meta.KafkaAPIKey: 0, l7meta.KafkaAPIKeyName: "Produce", l7meta.KafkaAPIVersion: 9,
					l7meta.KafkaCorrelationID: 42, l7meta.KafkaClientID: "c1", l7meta.KafkaTopics: []any{"deathstar-plans", 3},
					l7meta.KafkaErrorCode: 1e300, l7meta.KafkaErrorName: "TOPIC_AUTHORIZATION_FAILED",
				}, true)}, {CommonProperties: testCommon(start, nil, false)}},
			}}},
		{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: testCommon(start, map[string]any{l7meta.Policy: strings.Repeat("p", MaxFieldBytes-1) + "ü",
					l7meta.MissingHeaders: manyHeaders(MaxListItems + 1)}, false),
				Request: &datav3.HTTPRequestProperties{Authority: strings.Repeat("ä", MaxFieldBytes), Path: strings.Repeat("/x", MaxFieldBytes)},
			}}}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range mergedSeeds(start) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var w wireMessage
		werr := w.Unmarshal(b)
		for _, c := range w.entries {
			if !c.ok {
				continue
			}
			fl := c.f
			if fl.Protocol == "" || fl.Verdict == "" {
				t.Fatalf("flow without protocol or verdict: %+v", fl)
			}
			checkBounds(t, fl)
			if !c.truncated && strings.Contains(strings.Join(entryStrings(fl), "\x00"), TruncatedMark) && !strings.Contains(string(b), TruncatedMark) {
				t.Fatalf("a marked field in an entry not reported as cut: %+v", fl)
			}
		}
		if werr == nil && w.hasID && (len(w.node) > MaxFieldBytes || len(w.logName) > MaxFieldBytes ||
			!utf8.ValidString(w.node) || !utf8.ValidString(w.logName)) {
			t.Fatalf("identifier %.20q %.20q beyond its bounds", w.node, w.logName)
		}
		m := &accesslogv3.StreamAccessLogsMessage{}
		if proto.Unmarshal(b, m) != nil {
			return
		}
		if werr != nil {
			t.Fatalf("the decoder refused a message protobuf reads: %v", werr)
		}
		// The reference also checks that an entry becomes a flow only
		// when both addresses are usable (validAddr).
		for i, e := range m.GetHttpLogs().GetLogEntry() {
			c := e.GetCommonProperties()
			if ok := validAddr(c.GetDownstreamRemoteAddress()) && validAddr(c.GetDownstreamLocalAddress()); ok != w.entries[i].ok {
				t.Fatalf("entry %d converted %v, addresses %v and %v", i, w.entries[i].ok, c.GetDownstreamRemoteAddress(), c.GetDownstreamLocalAddress())
			}
		}
		compareReference(t, m, &w)
	})
}

// manyHeaders is n header records of 1 KiB.
func manyHeaders(n int) []any {
	var out []any
	for range n {
		out = append(out, "x-h: "+strings.Repeat("v", 1<<10))
	}
	return out
}

// validAddr is the reference for an address an entry may carry: a
// socket address, an IP, a port value within 16 bits.
func validAddr(a *corev3.Address) bool {
	sa := a.GetSocketAddress()
	if sa == nil || sa.GetPortValue() > 0xffff {
		return false
	}
	_, err := netip.ParseAddr(sa.GetAddress())
	return err == nil
}
