package accesslog

import (
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

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
