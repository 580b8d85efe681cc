package tcpproxy

import (
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kerr"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/proxylib/kafka"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// collector is a real AccessLogService that keeps the TCP entries.
type collector struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu      sync.Mutex
	entries []*datav3.TCPAccessLogEntry
}

func (c *collector) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		c.mu.Lock()
		c.entries = append(c.entries, m.GetTcpLogs().GetLogEntry()...)
		c.mu.Unlock()
	}
}

// loggingHandler returns a handler whose one TCP logger streams to a
// collector (or, with no collector, to a cluster that never resolves).
func loggingHandler(t *testing.T, c *collector) *Handler {
	addr := ""
	if c != nil {
		sock := filepath.Join(t.TempDir(), "als.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		alsv3.RegisterAccessLogServiceServer(srv, c)
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
		addr = "unix:" + sock
	}
	m := accesslog.NewManager("node-1", func(string) (string, bool) { return addr, addr != "" }, nil)
	t.Cleanup(func() { m.Close(t.Context()) })
	logs := m.Senders([]*resource.AccessLog{{Kind: resource.AccessLogTCP, Cluster: "als", LogName: "policy/egress/kafka",
		FlushInterval: 10 * time.Millisecond, BufferBytes: 16 << 10}})
	return New(&resource.TCPProxy{Cluster: "policy/original-dst"}, nil, logs, nil)
}

var (
	testInfo = listener.ConnInfo{Remote: netip.MustParseAddrPort("10.0.1.5:41234"),
		Local: netip.MustParseAddrPort("10.0.2.7:9092"), Identity: 1234}
	testStart = time.Unix(1765000000, 5)
)

func kafkaEvents() []kafka.Event {
	req := &kafka.Request{Key: 0, Version: 9, CorrelationID: 7, ClientID: "rdkafka", Topics: []string{"empire-announce"}}
	return []kafka.Event{
		{Request: req, Verdict: kafka.Verdict{Allowed: true, Policy: "default/kafka"}, Start: testStart, Duration: time.Millisecond},
		{Request: &kafka.Request{Key: 3, Version: 12, CorrelationID: 8}, Verdict: kafka.Verdict{Allowed: true}, Start: testStart},
		{Request: req, Verdict: kafka.Verdict{Reason: "no rule matched"}, Start: testStart,
			ErrorCode: kerr.TopicAuthorizationFailed},
		{Request: req, Verdict: kafka.Verdict{Reason: "closed"}, Start: testStart},
	}
}

// oldKafkaEntry is a Kafka request's entry as it was built through
// accesslog.Common with a map of L7 values: the agent must receive
// exactly this.
func oldKafkaEntry(info listener.ConnInfo, ev kafka.Event, cluster string) *datav3.TCPAccessLogEntry {
	r := ev.Request
	l7 := map[string]any{
		l7meta.Protocol: "kafka", l7meta.KafkaAPIKey: r.Key, l7meta.KafkaAPIKeyName: kafka.APIKeyName(r.Key),
		l7meta.KafkaAPIVersion: r.Version, l7meta.KafkaCorrelationID: r.CorrelationID, l7meta.KafkaClientID: r.ClientID,
		l7meta.KafkaTopics: r.Topics, l7meta.KafkaErrorCode: 0,
	}
	if info.Identity != 0 {
		l7[l7meta.SourceIdentity] = info.Identity
	}
	if ev.Verdict.Allowed {
		l7[l7meta.Verdict] = l7meta.VerdictForwarded
		if ev.Verdict.Policy != "" {
			l7[l7meta.Policy] = ev.Verdict.Policy
		}
	} else {
		l7[l7meta.Verdict] = l7meta.VerdictDropped
		l7[l7meta.Reason] = ev.Verdict.Reason
		if ev.ErrorCode != nil {
			l7[l7meta.KafkaErrorCode] = ev.ErrorCode.Code
			l7[l7meta.KafkaErrorName] = ev.ErrorCode.Message
		}
	}
	return &datav3.TCPAccessLogEntry{CommonProperties: accesslog.Common(ev.Start, ev.Duration, info.Remote, info.Local, info.Local, cluster, l7)}
}

// TestEntriesAsBuiltMessageByMessage: the encoded Kafka and connection
// entries reach the service equal to the ones built as messages.
func TestEntriesAsBuiltMessageByMessage(t *testing.T) {
	c := &collector{}
	h := loggingHandler(t, c)
	var want []*datav3.TCPAccessLogEntry
	for _, ev := range kafkaEvents() {
		h.logKafka(testInfo, ev)
		want = append(want, oldKafkaEntry(testInfo, ev, h.cfg.Cluster))
	}
	// A connection, refused and ended.
	h.logConn(testInfo, testStart, "policy/original-dst", &upstream.Host{Addr: "10.0.2.7:9092"}, "rbac_access_denied_matched_policy[none]")
	h.logConn(testInfo, testStart, "", nil, "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.entries)
		c.mu.Unlock()
		if n == len(want)+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries arrived, want %d", n, len(want)+2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ignoreDuration := protocmp.IgnoreFields(&datav3.AccessLogCommon{}, "duration", "time_to_last_downstream_tx_byte")
	if d := cmp.Diff(want, c.entries[:len(want)], protocmp.Transform()); d != "" {
		t.Fatalf("Kafka entries (-built as messages +received):\n%s", d)
	}
	refused := &datav3.TCPAccessLogEntry{CommonProperties: accesslog.Common(testStart, 0, testInfo.Remote, testInfo.Local,
		netip.MustParseAddrPort("10.0.2.7:9092"), "policy/original-dst",
		map[string]any{l7meta.Protocol: "tcp", l7meta.Reason: "rbac_access_denied_matched_policy[none]"})}
	refused.CommonProperties.ConnectionTerminationDetails = "rbac_access_denied_matched_policy[none]"
	ended := &datav3.TCPAccessLogEntry{CommonProperties: accesslog.Common(testStart, 0, testInfo.Remote, testInfo.Local,
		netip.AddrPort{}, "", map[string]any{l7meta.Protocol: "tcp"})}
	if d := cmp.Diff([]*datav3.TCPAccessLogEntry{refused, ended}, c.entries[len(want):], protocmp.Transform(), ignoreDuration); d != "" {
		t.Fatalf("connection entries (-built as messages +received):\n%s", d)
	}
}

// TestLogKafkaAllocs: logging a Kafka request allocates nothing once the
// scratch pool and the sender's buffer are warm; as a map of values
// turned into messages it took dozens of allocations.
func TestLogKafkaAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop pooled scratch on purpose")
	}
	h := loggingHandler(t, nil)
	ev := kafkaEvents()[2]
	h.logKafka(testInfo, ev)
	got := testing.AllocsPerRun(500, func() { h.logKafka(testInfo, ev) })
	if got > 0 {
		t.Fatalf("logging a Kafka request allocates %.1f times, want none", got)
	}
}
