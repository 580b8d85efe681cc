package accesslog

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
)

// entryStrings lists every string a flow took from its entry (not the
// stream's node and log name), lists item by item.
func entryStrings(f flow.Flow) []string {
	out := []string{f.Protocol, f.Verdict, f.Policy, f.Reason}
	if h := f.HTTP; h != nil {
		out = append(out, h.Authority, h.Path)
		out = append(out, h.MissingHeaders...)
		out = append(out, h.RejectedHeaders...)
	}
	if g := f.GRPC; g != nil {
		out = append(out, g.Service, g.Method)
	}
	if k := f.Kafka; k != nil {
		out = append(out, k.APIKeyName, k.ClientID, k.ErrorName)
		out = append(out, k.Topics...)
	}
	return out
}

// checkBounds fails when a flow breaks a bound of bounds.go.
func checkBounds(t *testing.T, f flow.Flow) {
	t.Helper()
	total := 0
	for _, s := range entryStrings(f) {
		if len(s) > MaxFieldBytes || !utf8.ValidString(s) {
			t.Fatalf("a field of %d bytes (valid UTF-8 %v), bound %d", len(s), utf8.ValidString(s), MaxFieldBytes)
		}
		total += len(s)
	}
	if total > MaxEntryBytes {
		t.Fatalf("an entry of %d bytes of strings, bound %d", total, MaxEntryBytes)
	}
	var lists [][]string
	if f.HTTP != nil {
		lists = append(lists, f.HTTP.MissingHeaders, f.HTTP.RejectedHeaders)
	}
	if f.Kafka != nil {
		lists = append(lists, f.Kafka.Topics)
	}
	for _, l := range lists {
		if len(l) > MaxListItems {
			t.Fatalf("a list of %d items, bound %d", len(l), MaxListItems)
		}
	}
	for _, s := range []string{f.Node, f.Listener} {
		if len(s) > MaxFieldBytes {
			t.Fatalf("node or log name of %d bytes", len(s))
		}
	}
}

// TestOversizedEntries sends entries with fields far beyond the bounds
// over the xDS socket: every flow that comes out keeps within them, says
// where it was cut, and the service counts the cut entries.
func TestOversizedEntries(t *testing.T) {
	store := flow.NewStore()
	svc, conn := serveOverSocket(t, store)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	big := strings.Repeat("a", 3*MaxFieldBytes) + "€" // a rune across the cut, somewhere
	uni := strings.Repeat("é", MaxFieldBytes)         // two bytes a rune
	var headers, topics []any
	for range 200 {
		headers = append(headers, "x-h: "+uni)
		topics = append(topics, "t-"+big)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stream, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-" + big}, LogName: "policy/ingress/" + big},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{
			LogEntry: []*datav3.HTTPAccessLogEntry{{
				CommonProperties: testCommon(start, map[string]any{l7meta.Protocol: "http", l7meta.Verdict: "DROPPED", l7meta.Policy: big, l7meta.Reason: "rbac_access_denied",
					l7meta.MissingHeaders: headers, l7meta.RejectedHeaders: headers}, false),
				Request:  &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Authority: big, Path: "/" + uni},
				Response: &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(403)},
			}, {
				CommonProperties: testCommon(start, nil, false),
				Request:          &datav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Authority: "deathstar", Path: "/v1"},
				Response:         &datav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	stream, err = accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&accesslogv3.StreamAccessLogsMessage{
		Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: &corev3.Node{Id: "proxy-a"}, LogName: "policy/egress/kafka"},
		LogEntries: &accesslogv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &accesslogv3.StreamAccessLogsMessage_TCPAccessLogEntries{
			LogEntry: []*datav3.TCPAccessLogEntry{{CommonProperties: testCommon(start, map[string]any{
				l7meta.Protocol: "kafka", l7meta.KafkaAPIKey: 0, l7meta.KafkaAPIKeyName: big, l7meta.KafkaClientID: big,
				l7meta.KafkaTopics: topics, l7meta.KafkaErrorName: big,
			}, true)}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	flows := store.Query(flow.Filter{}, 0)
	if len(flows) != 3 {
		t.Fatalf("%d flows, want 3", len(flows))
	}
	for _, f := range flows {
		checkBounds(t, f)
	}
	h := flows[0]
	if !strings.HasPrefix(h.Node, "proxy-aaa") || !strings.HasSuffix(h.Node, TruncatedMark) || !strings.HasSuffix(h.Listener, TruncatedMark) {
		t.Errorf("node %.20q…, listener %.20q… not cut and marked", h.Node, h.Listener)
	}
	if h.Direction != "ingress" || h.Verdict != flow.Dropped || h.HTTP.Status != 403 {
		t.Errorf("flow %+v", h)
	}
	if !strings.HasSuffix(h.Policy, TruncatedMark) || !strings.HasPrefix(h.Policy, "aaaa") || len(h.Policy) != MaxFieldBytes {
		t.Errorf("policy of %d bytes, not cut to %d and marked", len(h.Policy), MaxFieldBytes)
	}
	if n := len(h.HTTP.MissingHeaders); n != MaxListItems || h.HTTP.MissingHeaders[n-1] != TruncatedMark {
		t.Errorf("%d header records, the last %.30q", n, h.HTTP.MissingHeaders[n-1])
	}
	if u := flows[1]; u.HTTP.Path != "/v1" || u.HTTP.Authority != "deathstar" || u.Node != h.Node {
		t.Errorf("a small entry after a large one: %+v %+v", u, u.HTTP)
	}
	k := flows[2]
	if k.Kafka == nil || !strings.HasSuffix(k.Kafka.ClientID, TruncatedMark) || len(k.Kafka.Topics) != MaxListItems || k.Node != "proxy-a" {
		t.Errorf("Kafka flow %+v", k.Kafka)
	}
	if st := svc.Stats(); st != (Stats{Flows: 3, Truncated: 2}) {
		t.Errorf("stats %+v, want 3 flows, 2 truncated", st)
	}
}
