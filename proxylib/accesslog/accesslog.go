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
	datav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// queueLen bounds the entries waiting per sender.
const queueLen = 4096

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
	s := &Sender{m: m, key: k, ch: make(chan proto.Message, queueLen)}
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
	}
	done := make(chan struct{})
	go func() {
		for _, s := range senders {
			for len(s.ch) > 0 && ctx.Err() == nil {
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

// Stats counts a sender's entries.
type Stats struct {
	Sent, Dropped uint64
}

// Sender streams the entries of one logger.
type Sender struct {
	m       *Manager
	key     senderKey
	ch      chan proto.Message
	sent    atomic.Uint64
	dropped atomic.Uint64
	closing atomic.Bool
}

// Log enqueues an *datav3.HTTPAccessLogEntry or *datav3.TCPAccessLogEntry
// matching the sender's kind; it never blocks.
func (s *Sender) Log(e proto.Message) {
	select {
	case s.ch <- e:
	default:
		s.dropped.Add(1)
	}
}

// Kind is the logger kind the sender expects.
func (s *Sender) Kind() resource.AccessLogKind { return s.key.kind }

// Stats returns the sender's counters.
func (s *Sender) Stats() Stats { return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load()} }

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
	st, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(sctx)
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
	var batch []proto.Message
	size := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		msg := &alsv3.StreamAccessLogsMessage{}
		if first {
			msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: s.m.node, LogName: s.key.logName}
		}
		if s.key.kind == resource.AccessLogHTTP {
			l := &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}
			for _, e := range batch {
				l.LogEntry = append(l.LogEntry, e.(*datav3.HTTPAccessLogEntry))
			}
			msg.LogEntries = &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: l}
		} else {
			l := &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{}
			for _, e := range batch {
				l.LogEntry = append(l.LogEntry, e.(*datav3.TCPAccessLogEntry))
			}
			msg.LogEntries = &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: l}
		}
		if err := st.Send(msg); err != nil {
			// The batch is lost with the stream, as in Envoy.
			s.dropped.Add(uint64(len(batch)))
			batch, size = batch[:0], 0
			return fmt.Errorf("sending access log entries: %w", err)
		}
		first = false
		s.sent.Add(uint64(len(batch)))
		batch, size = batch[:0], 0
		return nil
	}
	recheck := time.NewTicker(time.Second)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return flush()
		case err := <-broken:
			return fmt.Errorf("access log stream: %w", err)
		case e := <-s.ch:
			if len(batch) == 0 {
				timer.Reset(s.key.flush)
			}
			batch = append(batch, e)
			size += proto.Size(e)
			if size >= int(s.key.buffer) || s.closing.Load() && len(s.ch) == 0 {
				timer.Stop()
				if err := flush(); err != nil {
					return err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		case <-recheck.C:
			if now, ok := s.m.resolve(s.key.cluster); !ok || now != addr {
				return flush()
			}
		}
	}
}
