package accesslog

import (
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// collector is an AccessLogService on a real Unix socket that records
// what it receives.
type collector struct {
	alsv3.UnimplementedAccessLogServiceServer
	mu       sync.Mutex
	paths    []string
	messages []*alsv3.StreamAccessLogsMessage
	ids      int
}

func (c *collector) StreamAccessLogs(st alsv3.AccessLogService_StreamAccessLogsServer) error {
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		c.mu.Lock()
		if m.GetIdentifier() != nil {
			c.ids++
		}
		c.messages = append(c.messages, m)
		for _, e := range m.GetHttpLogs().GetLogEntry() {
			c.paths = append(c.paths, e.GetRequest().GetPath())
		}
		c.mu.Unlock()
	}
}

func (c *collector) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.paths)
}

// startCollector serves a collector on a socket in a temporary
// directory and returns it with the socket's "unix:" address.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "als.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	alsv3.RegisterAccessLogServiceServer(srv, c)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return c, "unix:" + sock
}

// newSender returns a manager and the sender of one HTTP logger whose
// cluster resolves to whatever *addr holds ("" : unknown).
func newSender(t *testing.T, addr *atomic.Value, flush time.Duration, buffer uint32) (*Manager, *Sender) {
	t.Helper()
	m := NewManager("node-1", func(string) (string, bool) {
		a, _ := addr.Load().(string)
		return a, a != ""
	}, nil)
	t.Cleanup(func() { m.Close(t.Context()) })
	s := m.Sender(&resource.AccessLog{Kind: resource.AccessLogHTTP, Cluster: "als", LogName: "policy/ingress/x",
		FlushInterval: flush, BufferBytes: buffer})
	return m, s
}

func entry(path string) *datav3.HTTPAccessLogEntry {
	return &datav3.HTTPAccessLogEntry{Request: &datav3.HTTPRequestProperties{Path: path}}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConnected logs one entry and waits until it arrives, so the stream
// is up before a test measures anything.
func waitConnected(t *testing.T, c *collector, s *Sender) {
	t.Helper()
	s.Log(entry("/warm-up"))
	eventually(t, "the warm-up entry", func() bool { return c.received() == 1 })
}

// TestSenderWakesPerBatchNotPerEntry logs a burst and checks the sender
// goroutine was woken for a small fraction of the entries, while every
// entry still arrives, in order.
func TestSenderWakesPerBatchNotPerEntry(t *testing.T) {
	c, sock := startCollector(t)
	var addr atomic.Value
	addr.Store(sock)
	_, s := newSender(t, &addr, 50*time.Millisecond, 16<<10)
	waitConnected(t, c, s)
	before := s.Stats().Wakeups

	const n = 1000
	for i := range n {
		s.Log(entry("/" + string(rune('a'+i%26))))
	}
	eventually(t, "every entry of the burst", func() bool { return c.received() == n+1 })
	st := s.Stats()
	if wakes := st.Wakeups - before; wakes > n/10 {
		t.Fatalf("the sender was woken %d times for %d entries; want <= %d", wakes, n, n/10)
	}
	if st.Sent != n+1 || st.Dropped != 0 {
		t.Fatalf("stats = %+v; want %d sent, none dropped", st, n+1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.paths[1:] {
		if want := "/" + string(rune('a'+i%26)); p != want {
			t.Fatalf("entry %d has path %q; want %q (order lost)", i, p, want)
		}
	}
	if c.ids != 1 {
		t.Fatalf("%d messages carried the identifier; want only the first", c.ids)
	}
}

// TestSenderDeliversIdleEntries checks that a few entries logged on an
// otherwise idle logger reach the service without more traffic pushing
// them out: none stays in a buffer for good.
func TestSenderDeliversIdleEntries(t *testing.T) {
	c, sock := startCollector(t)
	var addr atomic.Value
	addr.Store(sock)
	_, s := newSender(t, &addr, 100*time.Millisecond, 16<<10)
	waitConnected(t, c, s)
	// Fewer than wakeEvery entries, far below buffer_size_bytes: only the
	// flush interval can send them.
	for range 3 {
		s.Log(entry("/idle"))
	}
	eventually(t, "the idle entries", func() bool { return c.received() == 4 })
	if q := s.queued(); q != 0 {
		t.Fatalf("%d entries still queued after delivery", q)
	}
}

// TestSenderBoundsQueueWithoutService checks the bound while the service
// is unknown (memory stays bounded, the excess is counted as dropped),
// and that the backlog is delivered in messages of about
// buffer_size_bytes once the service appears.
func TestSenderBoundsQueueWithoutService(t *testing.T) {
	var addr atomic.Value
	addr.Store("")
	const buffer = 4 << 10
	_, s := newSender(t, &addr, 50*time.Millisecond, buffer)
	const extra = 100
	for range queueLen + extra {
		s.Log(entry("/queued"))
	}
	if st, q := s.Stats(), s.queued(); st.Dropped != extra || q != queueLen {
		t.Fatalf("dropped %d, queued %d; want %d dropped, %d queued", st.Dropped, q, extra, queueLen)
	}

	c, sock := startCollector(t)
	addr.Store(sock)
	eventually(t, "the backlog", func() bool { return c.received() == queueLen })
	one := proto.Size(entry("/queued"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.messages) < queueLen*one/buffer {
		t.Fatalf("the backlog came in %d messages; want about one per %d bytes", len(c.messages), buffer)
	}
	for i, m := range c.messages {
		size := 0
		for _, e := range m.GetHttpLogs().GetLogEntry() {
			size += proto.Size(e)
		}
		if size > buffer+one {
			t.Fatalf("message %d holds %d bytes of entries; want at most %d", i, size, buffer+one)
		}
	}
}

// TestSenderLogsEncodedEntries interleaves entries logged in wire form
// (LogEncoded, from one reused buffer) with messages (Log) over several
// wake-ups and flushes, and checks the service receives every entry,
// equal and in order, as a protobuf stream.
func TestSenderLogsEncodedEntries(t *testing.T) {
	c, sock := startCollector(t)
	var addr atomic.Value
	addr.Store(sock)
	_, s := newSender(t, &addr, 20*time.Millisecond, 2<<10)
	waitConnected(t, c, s)
	var logged []*datav3.HTTPAccessLogEntry
	var buf []byte
	e := policyHopEntry()
	const n = 300
	for i := range n {
		if i%3 == 0 {
			m := entry("/message/" + strconv.Itoa(i))
			logged = append(logged, m)
			s.Log(m)
			continue
		}
		e.Path = strconv.AppendInt(append(e.Path[:0], "/encoded/"...), int64(i), 10)
		logged = append(logged, messageOf(e))
		var err error
		if buf, err = e.AppendProto(buf[:0]); err != nil {
			t.Fatal(err)
		}
		s.LogEncoded(buf)
		clear(buf) // the sender holds a copy
	}
	eventually(t, "every entry", func() bool { return c.received() == n+1 })
	c.mu.Lock()
	defer c.mu.Unlock()
	var got []*datav3.HTTPAccessLogEntry
	for _, msg := range c.messages {
		got = append(got, msg.GetHttpLogs().GetLogEntry()...)
	}
	if diff := cmp.Diff(logged, got[1:], protocmp.Transform()); diff != "" {
		t.Fatalf("entries received (-logged +received):\n%s", diff)
	}
	if st := s.Stats(); st.Dropped != 0 || st.Sent != n+1 {
		t.Fatalf("stats = %+v; want %d sent, none dropped", st, n+1)
	}
}

// TestSenderBoundsEncodedBytes: while the service is unknown, encoded
// entries queue up to maxPendingBytes in all (however few they are), and
// the excess is dropped and counted.
func TestSenderBoundsEncodedBytes(t *testing.T) {
	var addr atomic.Value
	addr.Store("")
	_, s := newSender(t, &addr, time.Hour, 16<<10)
	big := make([]byte, 1<<20)
	const n = maxPendingBytes>>20 + 4
	for range n {
		s.LogEncoded(big)
	}
	st, q := s.Stats(), s.queued()
	if q >= maxPendingBytes>>20 || st.Dropped != uint64(n-q) {
		t.Fatalf("%d of %d entries of 1 MiB queued, %d dropped; want fewer than %d queued, the rest dropped", q, n, st.Dropped, maxPendingBytes>>20)
	}
	// The message path keeps its own bound (entries).
	s.Log(entry("/still"))
	if s.queued() != q+1 {
		t.Fatal("a message was refused by the byte bound of encoded entries")
	}
}
