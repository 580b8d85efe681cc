package accesslog

import (
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// TestSenderEncodesEntriesOnItsWakeUps logs entries in wake-up sized
// groups under a flush interval that never fires and a buffer the last
// group fills, and checks the sender encoded each group on its wake-up,
// before anything was flushed (so a flush has nothing left to marshal,
// and no wake-up more than wakeEvery entries), and that the flush then
// delivers exactly the entries logged.
func TestSenderEncodesEntriesOnItsWakeUps(t *testing.T) {
	c, sock := startCollector(t)
	var addr atomic.Value
	addr.Store(sock)
	const groups = 4
	// Every entry has a two-letter path: the same size, framed in a tag
	// and a one-byte length.
	one := proto.Size(entry("/aa")) + 2
	_, s := newSender(t, &addr, time.Hour, uint32(groups*wakeEvery*one))
	var logged []*datav3.HTTPAccessLogEntry
	for g := range groups {
		if n := c.received(); n != 0 {
			t.Fatalf("%d entries arrived before the buffer filled; want none", n)
		}
		for i := range wakeEvery {
			e := entry("/" + string(rune('a'+g)) + string(rune('a'+i)))
			logged = append(logged, e)
			s.Log(e)
		}
		eventually(t, "the sender to encode the group", func() bool { return s.Stats().Encoded == uint64((g+1)*wakeEvery) })
	}
	eventually(t, "the batch", func() bool { return c.received() == len(logged) })
	c.mu.Lock()
	defer c.mu.Unlock()
	var got []*datav3.HTTPAccessLogEntry
	for _, msg := range c.messages {
		got = append(got, msg.GetHttpLogs().GetLogEntry()...)
	}
	if diff := cmp.Diff(logged, got, protocmp.Transform()); diff != "" {
		t.Fatalf("entries received (-logged +received):\n%s", diff)
	}
	if c.ids != 1 || c.messages[0].GetIdentifier().GetNode().GetId() != "node-1" || c.messages[0].GetIdentifier().GetLogName() != "policy/ingress/x" {
		t.Fatalf("identifier of the first message = %v (%d messages carry one); want node-1, policy/ingress/x, once", c.messages[0].GetIdentifier(), c.ids)
	}
}

// TestEncodedMessageMatchesProtobuf checks the sender's framing against
// the same message built and marshalled as protobuf, for both kinds, with
// and without the identifier.
func TestEncodedMessageMatchesProtobuf(t *testing.T) {
	node := &corev3.Node{Id: "n", Cluster: "nodemesh-proxy"}
	httpEntries := []*datav3.HTTPAccessLogEntry{entry("/a"), {CommonProperties: &datav3.AccessLogCommon{SampleRate: 1}, Request: &datav3.HTTPRequestProperties{Authority: "web"}}, {}}
	tcpEntries := []*datav3.TCPAccessLogEntry{{CommonProperties: &datav3.AccessLogCommon{UpstreamCluster: "c"}}, {}}
	for _, first := range []bool{true, false} {
		for _, kind := range []resource.AccessLogKind{resource.AccessLogHTTP, resource.AccessLogTCP} {
			var enc batchEncoder
			want := &alsv3.StreamAccessLogsMessage{}
			if first {
				want.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: "l"}
			}
			if kind == resource.AccessLogHTTP {
				for _, e := range httpEntries {
					enc.add(kind, e)
				}
				want.LogEntries = &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: httpEntries}}
			} else {
				for _, e := range tcpEntries {
					enc.add(kind, e)
				}
				want.LogEntries = &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: tcpEntries}}
			}
			b, _, _ := enc.take()
			raw, err := message([]byte("scratch")[:0], kind, first, node, "l", b)
			if err != nil {
				t.Fatal(err)
			}
			var got alsv3.StreamAccessLogsMessage
			if err := proto.Unmarshal(raw, &got); err != nil {
				t.Fatalf("kind %v, first %v: unmarshalling: %v", kind, first, err)
			}
			if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
				t.Fatalf("kind %v, first %v (-want +got):\n%s", kind, first, diff)
			}
		}
	}
}

// TestSenderDropsOnlyAnUnencodableEntry logs an entry protobuf cannot
// encode (a string field that is not UTF-8) among good ones: it alone is
// dropped, and the stream and the rest of its batch survive.
func TestSenderDropsOnlyAnUnencodableEntry(t *testing.T) {
	c, sock := startCollector(t)
	var addr atomic.Value
	addr.Store(sock)
	_, s := newSender(t, &addr, 20*time.Millisecond, 16<<10)
	waitConnected(t, c, s)
	s.Log(entry("/before"))
	s.Log(entry("/\xff"))
	s.Log(entry("/after"))
	eventually(t, "the good entries", func() bool { return c.received() == 3 })
	s.Log(entry("/later"))
	eventually(t, "an entry after the bad one's batch", func() bool { return c.received() == 4 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if want := []string{"/warm-up", "/before", "/after", "/later"}; !cmp.Equal(c.paths, want) {
		t.Fatalf("paths received %q; want %q", c.paths, want)
	}
	if st := s.Stats(); st.Dropped != 1 || st.Sent != 4 {
		t.Fatalf("stats %+v; want 4 sent, 1 dropped", st)
	}
}
