package accesslog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// queueLen bounds the entries waiting per sender.
const queueLen = 4096

// wakeEvery is how many entries Log appends between wake-ups of the
// sender once a batch has started: the sender then checks the batch
// against buffer_size_bytes. A batch can overshoot that size by at most
// wakeEvery-1 entries, and the sender runs about once per wakeEvery
// requests instead of once per request.
const wakeEvery = 16

// Resolver returns the address ("ip:port" or "unix:<path>") of a cluster's
// first endpoint, or false when the cluster is unknown.
type Resolver func(cluster string) (string, bool)

// Manager owns the senders of every configured access logger.
type Manager struct {
	node    *corev3.Node
	resolve Resolver
	logger  *slog.Logger

	mu      sync.Mutex
	senders map[senderKey]*Sender
	closed  bool
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc
}

type senderKey struct {
	kind    resource.AccessLogKind
	cluster string
	logName string
	flush   time.Duration
	buffer  uint32
}

// NewManager returns a manager identifying itself as nodeID.
func NewManager(nodeID string, resolve Resolver, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{node: &corev3.Node{Id: nodeID, Cluster: "nodemesh-proxy"}, resolve: resolve, logger: logger,
		senders: map[senderKey]*Sender{}, ctx: ctx, cancel: cancel}
}

// Sender returns the (shared) sender for a logger configuration.
func (m *Manager) Sender(cfg *resource.AccessLog) *Sender {
	k := senderKey{cfg.Kind, cfg.Cluster, cfg.LogName, cfg.FlushInterval, cfg.BufferBytes}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.senders[k]; s != nil {
		return s
	}
	s := &Sender{m: m, key: k, wake: make(chan struct{}, 1)}
	m.senders[k] = s
	if !m.closed {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			s.run(m.ctx)
		}()
	}
	return s
}

// Senders returns the senders for a list of logger configurations.
func (m *Manager) Senders(cfgs []*resource.AccessLog) []*Sender {
	if m == nil || len(cfgs) == 0 {
		return nil
	}
	out := make([]*Sender, len(cfgs))
	for i, c := range cfgs {
		out[i] = m.Sender(c)
	}
	return out
}

// Close flushes what is queued (bounded by ctx) and stops every sender.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	senders := make([]*Sender, 0, len(m.senders))
	for _, s := range m.senders {
		senders = append(senders, s)
	}
	m.mu.Unlock()
	for _, s := range senders {
		s.closing.Store(true)
		s.signal()
	}
	done := make(chan struct{})
	go func() {
		for _, s := range senders {
			for s.queued() > 0 && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	m.cancel()
	m.wg.Wait()
}

// Stats counts a sender's entries, how often its goroutine was woken to
// look at them, and how many it encoded on those wake-ups, ahead of the
// flush that sent them.
type Stats struct {
	Sent, Dropped, Wakeups, Encoded uint64
}

// Sender streams the entries of one logger.
type Sender struct {
	m   *Manager
	key senderKey

	// mu guards pending, the entries logged and not yet taken by the
	// sender, and pendingBuf, the wire form of those logged encoded
	// (LogEncoded), already framed as log_entry fields. Log and
	// LogEncoded only append; the sender takes both whole.
	mu         sync.Mutex
	pending    []queued
	pendingBuf []byte
	// wake carries at most one signal: a batch started, grew by
	// wakeEvery entries, or the manager is closing.
	wake chan struct{}

	sent    atomic.Uint64
	dropped atomic.Uint64
	wakeups atomic.Uint64
	encoded atomic.Uint64
	closing atomic.Bool
}

// Drop counts an entry the caller could not log (it could not be
// encoded).
func (s *Sender) Drop() { s.dropped.Add(1) }

// queued is one waiting entry: a message the sender marshals, or
// (msg nil) the framed wire form at pendingBuf[from:to].
type queued struct {
	msg      proto.Message
	from, to int
}

// maxPendingBytes bounds the encoded entries waiting per sender, on top of
// queueLen: entries are bounded one by one (the field caps), this bounds
// their sum.
const maxPendingBytes = 16 << 20

// Log enqueues an *datav3.HTTPAccessLogEntry or *datav3.TCPAccessLogEntry
// matching the sender's kind; it never blocks. The entry must not be
// changed afterwards: the sender marshals it on its own goroutine.
func (s *Sender) Log(e proto.Message) {
	s.enqueue(e, nil)
}

// LogEncoded enqueues an entry in wire form (an HTTPAccessLogEntry or
// TCPAccessLogEntry matching the sender's kind, unframed, such as
// HTTPEntry.AppendProto writes); it never blocks and copies entry, which
// the caller may reuse at once. This is the path that allocates nothing
// per entry: the bytes land in the sender's reused buffer.
func (s *Sender) LogEncoded(entry []byte) {
	s.enqueue(nil, entry)
}

func (s *Sender) enqueue(msg proto.Message, entry []byte) {
	field := httpEntryField
	if s.key.kind != resource.AccessLogHTTP {
		field = tcpEntryField
	}
	s.mu.Lock()
	n := len(s.pending)
	if n >= queueLen || msg == nil && len(s.pendingBuf)+len(entry) > maxPendingBytes {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	if s.pending == nil {
		s.pending = make([]queued, 0, 64)
	}
	q := queued{msg: msg}
	if msg == nil {
		q.from = len(s.pendingBuf)
		s.pendingBuf = protowire.AppendTag(s.pendingBuf, field, protowire.BytesType)
		s.pendingBuf = protowire.AppendBytes(s.pendingBuf, entry)
		q.to = len(s.pendingBuf)
	}
	s.pending = append(s.pending, q)
	s.mu.Unlock()
	// Only the first entry of a batch and every wakeEvery-th one wake the
	// sender; the others ride along with the next flush.
	if n == 0 || (n+1)%wakeEvery == 0 {
		s.signal()
	}
}

// signal wakes the sender without blocking; a pending signal covers this
// one.
func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queued returns how many entries wait for the sender.
func (s *Sender) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// pendingBatch is the waiting entries and the buffer their encoded ones
// are in.
type pendingBatch struct {
	entries []queued
	buf     []byte
}

// take returns the waiting entries and leaves the sender empty buffers;
// spare is a drained batch to reuse.
func (s *Sender) take(spare pendingBatch) pendingBatch {
	clear(spare.entries)
	s.mu.Lock()
	out := pendingBatch{s.pending, s.pendingBuf}
	s.pending, s.pendingBuf = spare.entries[:0], spare.buf[:0]
	// A backlog's buffer is not kept for the sender's lifetime.
	if cap(s.pendingBuf) > 1<<20 {
		s.pendingBuf = nil
	}
	s.mu.Unlock()
	return out
}

// peek returns the entries from index from on without taking them; Log
// only appends, so they (and the encoded bytes they point at) stay in
// place until the next take.
func (s *Sender) peek(from int) pendingBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from >= len(s.pending) {
		return pendingBatch{}
	}
	return pendingBatch{s.pending[from:len(s.pending):len(s.pending)], s.pendingBuf[:len(s.pendingBuf):len(s.pendingBuf)]}
}

// Kind is the logger kind the sender expects.
func (s *Sender) Kind() resource.AccessLogKind { return s.key.kind }

// Stats returns the sender's counters.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), Wakeups: s.wakeups.Load(), Encoded: s.encoded.Load()}
}

// target turns a resolved address into a gRPC target.
func target(addr string) string {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix:" + p
	}
	return "passthrough:///" + addr
}

func (s *Sender) run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		addr, ok := s.m.resolve(s.key.cluster)
		if !ok {
			if !s.sleep(ctx, wait) {
				return
			}
			continue
		}
		err := s.stream(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		s.m.logger.Debug("access log stream ended; reconnecting", "cluster", s.key.cluster, "log_name", s.key.logName, "error", err)
		if !s.sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (s *Sender) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stream sends batches over one ALS stream until it fails, the cluster's
// address changes, or ctx ends.
func (s *Sender) stream(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(target(addr), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("creating access log connection to %s: %w", addr, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(sctx, grpc.ForceCodecV2(preEncoded{}))
	if err != nil {
		return fmt.Errorf("opening access log stream to %s: %w", addr, err)
	}
	// The server never answers; a receive ends only when the stream does.
	broken := make(chan error, 1)
	go func() {
		var r alsv3.StreamAccessLogsResponse
		broken <- st.RecvMsg(&r)
	}()
	first := true
	// The pending buffer's first enc.n entries are already encoded in
	// enc; the batch is flushed when enc reaches buffer_size_bytes or the
	// flush timer fires, whichever comes first.
	var enc batchEncoder
	var spare pendingBatch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	timing := false
	// msgBuf is the messages' scratch, reused: the codec copies each
	// message during its send.
	var msgBuf []byte
	send := func(entries []byte, n int) error {
		msg, err := message(msgBuf[:0], s.key.kind, first, s.m.node, s.key.logName, entries)
		if err != nil {
			return err
		}
		err = st.SendMsg(msg)
		// A backlog's big message does not stay with the stream.
		if cap(msg) <= 1<<20 {
			msgBuf = msg[:0]
		}
		if err != nil {
			return err
		}
		first = false
		s.sent.Add(uint64(n))
		return nil
	}
	// flush sends everything waiting, split into messages of about
	// buffer_size_bytes so a backlog (after a reconnect) never becomes one
	// oversized message.
	flush := func() error {
		timer.Stop()
		timing = false
		batch := s.take(spare)
		defer func() { spare = batch }()
		enc.addAll(s.key.kind, batch.entries[enc.n:], batch.buf)
		b, ends, skipped := enc.take()
		s.dropped.Add(uint64(skipped))
		for start, from, i := 0, 0, 0; i < len(ends); i++ {
			if ends[i]-from < int(s.key.buffer) && i < len(ends)-1 {
				continue
			}
			if err := send(b[from:ends[i]], i+1-start); err != nil {
				// The rest is lost with the stream, as in Envoy.
				s.dropped.Add(uint64(len(ends) - start))
				return fmt.Errorf("sending access log entries: %w", err)
			}
			start, from = i+1, ends[i]
		}
		return nil
	}
	// Entries logged while no stream was up have had their wake-up
	// already: they start this stream's first batch.
	if s.queued() > 0 {
		timer.Reset(s.key.flush)
		timing = true
	}
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return flush()
		case err := <-broken:
			return fmt.Errorf("access log stream: %w", err)
		case <-s.wake:
			s.wakeups.Add(1)
			if s.closing.Load() {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			fresh := s.peek(enc.n)
			if len(fresh.entries) == 0 && enc.n == 0 {
				continue
			}
			if !timing {
				timer.Reset(s.key.flush)
				timing = true
			}
			// Encoding the entries now, a wake-up's worth at a time,
			// leaves the flush nothing to marshal: see doc.go.
			enc.addAll(s.key.kind, fresh.entries, fresh.buf)
			s.encoded.Add(uint64(len(fresh.entries)))
			if enc.size() >= int(s.key.buffer) {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			timing = false
			if err := flush(); err != nil {
				return err
			}
		case <-recheck.C:
			// A safety net: entries whose wake-up went to an earlier
			// stream start a batch here at the latest.
			if !timing && s.queued() > 0 {
				timer.Reset(s.key.flush)
				timing = true
			}
			if now, ok := s.m.resolve(s.key.cluster); !ok || now != addr {
				return flush()
			}
		}
	}
}
