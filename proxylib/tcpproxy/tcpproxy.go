package tcpproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/accesslog"
	"github.com/nodemesh/nodemesh/proxylib/api/l7meta"
	"github.com/nodemesh/nodemesh/proxylib/kafka"
	"github.com/nodemesh/nodemesh/proxylib/listener"
	"github.com/nodemesh/nodemesh/proxylib/parser"
	"github.com/nodemesh/nodemesh/proxylib/rbac"
	"github.com/nodemesh/nodemesh/proxylib/resource"
	"github.com/nodemesh/nodemesh/proxylib/upstream"
)

// Lookup gives access to the current configuration. Called per connection
// (clusters) and per Kafka request (policies), from any goroutine.
type Lookup interface {
	Cluster(name string) *upstream.Cluster
	KafkaPolicy(name string) *resource.KafkaPolicy
}

// Handler serves the connections of one tcp_proxy filter chain.
type Handler struct {
	cfg    *resource.TCPProxy
	rbac   []*rbac.Engine // the network RBAC filters, in order
	lookup Lookup
	logs   []*accesslog.Sender
	logger *slog.Logger

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	draining atomic.Bool
	wg       sync.WaitGroup
}

// New returns a handler for cfg; logs are the senders of its access
// loggers.
func New(cfg *resource.TCPProxy, lookup Lookup, logs []*accesslog.Sender, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{cfg: cfg, lookup: lookup, logs: logs, logger: logger, conns: map[net.Conn]struct{}{}}
	for _, r := range cfg.RBAC {
		h.rbac = append(h.rbac, rbac.New(r))
	}
	return h
}

// authorize runs the network RBAC filters on a new connection, in order.
// A denial returns the connection's termination details, Envoy's
// "rbac_access_denied_matched_policy[<policy>]" ("none" when a policy
// was required and none matched).
func (h *Handler) authorize(info listener.ConnInfo) (bool, string) {
	if len(h.rbac) == 0 {
		return true, ""
	}
	in := rbac.Input{Local: info.Local, Remote: info.Remote, ServerName: []byte(info.ServerName),
		Identity: info.Identity, IdentityOnly: info.IdentityOnly}
	if info.TLS != nil && len(info.TLS.PeerCertificates) > 0 {
		in.Authenticated = true
		in.Peer = rbac.AppendPeerNames(nil, info.TLS.PeerCertificates[0])
	}
	for _, e := range h.rbac {
		if ok, policy := e.Evaluate(&in); !ok {
			if policy == "" {
				policy = "none"
			}
			return false, "rbac_access_denied_matched_policy[" + policy + "]"
		}
	}
	return true, ""
}

func (h *Handler) track(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining.Load() {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Handler) untrack(c net.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// ServeConn relays c until either side closes.
func (h *Handler) ServeConn(c net.Conn, info listener.ConnInfo) {
	h.wg.Add(1)
	defer h.wg.Done()
	defer c.Close()
	if !h.track(c) {
		return
	}
	defer h.untrack(c)
	start := time.Now()
	// Judged before a cluster is picked: a denied client costs no
	// upstream connection, and the backend never sees it.
	if ok, details := h.authorize(info); !ok {
		h.logger.Debug("tcp_proxy: connection denied by RBAC", "src", info.Remote, "dst", info.Local, "details", details)
		h.logConn(info, start, "", nil, details)
		return
	}
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	name := h.pickCluster(rnd)
	cl := h.lookup.Cluster(name)
	var host *upstream.Host
	var up net.Conn
	// Each connect attempt picks a host anew (max_connect_attempts): a
	// failed connect, not an overflow or a missing host, is retried.
	for attempt := uint32(1); ; attempt++ {
		host = nil
		if cl != nil {
			if cl.IsOriginalDst() {
				host = cl.PickOriginal(info.Local, false, info.SourceBind, info.SourceMark)
			} else {
				host = cl.Pick(rnd)
			}
		}
		if host == nil {
			h.logger.Debug("tcp_proxy: no upstream host", "cluster", name, "destination", info.Local)
			h.logConn(info, start, name, nil, "no_healthy_upstream")
			return
		}
		host.Pool.Begin()
		var err error
		up, err = cl.Dial(context.Background(), host, info.SourceBind, info.SourceMark)
		if err == nil {
			defer host.Pool.End()
			break
		}
		host.Pool.End()
		h.logger.Debug("tcp_proxy: connecting upstream", "host", host.Addr, "attempt", attempt, "error", err)
		if errors.Is(err, upstream.ErrOverflow) {
			h.logConn(info, start, name, host, "upstream_overflow") // max_connections (Envoy's UO)
			return
		}
		if attempt >= h.cfg.MaxConnectAttempts {
			h.logConn(info, start, name, host, "upstream_connection_failure")
			return
		}
	}
	defer up.Close()
	if !h.track(up) {
		return
	}
	defer h.untrack(up)
	reason := ""
	if h.cfg.Kafka != nil {
		reason = h.relayKafka(c, up, info)
	} else {
		reason = h.relay(c, up)
	}
	h.logConn(info, start, name, host, reason)
}

// pickCluster returns the cluster of a new connection: the configured one,
// or one of weighted_clusters in proportion to its weight.
func (h *Handler) pickCluster(rnd *rand.Rand) string {
	if h.cfg.Weighted == nil {
		return h.cfg.Cluster
	}
	x := rnd.Uint64N(h.cfg.TotalWeight)
	for _, w := range h.cfg.Weighted {
		if x < uint64(w.Weight) {
			return w.Name
		}
		x -= uint64(w.Weight)
	}
	return h.cfg.Weighted[len(h.cfg.Weighted)-1].Name
}

// relay copies both ways, propagating half-closes, with the idle timeout.
func (h *Handler) relay(down, up net.Conn) string {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	idle := h.cfg.IdleTimeout
	timedOut := atomic.Bool{}
	// Each direction holds at most one read, bounded by the listener's
	// per_connection_buffer_limit_bytes.
	size := 32 << 10
	if l := h.cfg.BufferLimit; l > 0 && l < uint32(size) {
		size = int(l)
	}
	copyDir := func(dst, src net.Conn) {
		buf := make([]byte, size)
		for {
			if idle > 0 {
				_ = src.SetReadDeadline(time.Now().Add(idle))
			}
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					src.Close()
					return
				}
			}
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if time.Since(time.Unix(0, last.Load())) < idle {
						continue
					}
					timedOut.Store(true)
					src.Close()
					dst.Close()
					return
				}
				if err == io.EOF {
					if tc, ok := dst.(interface{ CloseWrite() error }); ok {
						_ = tc.CloseWrite()
						return
					}
				}
				dst.Close()
				return
			}
		}
	}
	done := make(chan struct{})
	go func() {
		copyDir(up, down)
		close(done)
	}()
	copyDir(down, up)
	<-done
	if timedOut.Load() {
		return "idle_timeout"
	}
	return ""
}

func (h *Handler) relayKafka(down, up net.Conn, info listener.ConnInfo) string {
	name := h.cfg.Kafka.Name
	maxReq := resource.DefaultKafkaMaxRequest
	if p := h.lookup.KafkaPolicy(name); p != nil {
		maxReq = int(p.MaxRequestBytes)
	}
	pc := &parser.Connection{Src: info.Remote, Dst: info.Local, Listener: info.Listener, SrcUnjudged: info.IdentityOnly}
	p := kafka.NewParser(pc, kafka.Config{
		Policy: func() *resource.KafkaPolicy { return h.lookup.KafkaPolicy(name) },
		Log:    func(ev kafka.Event) { h.logKafka(info, ev) },
		Logger: h.logger,
	})
	err := parser.Relay(context.Background(), down, up, pc, p, parser.Options{MaxBuffer: maxReq + 4, IdleTimeout: h.cfg.IdleTimeout,
		ReadSize: int(h.cfg.BufferLimit)})
	if err != nil {
		h.logger.Debug("kafka: connection closed", "src", info.Remote, "dst", info.Local, "error", err)
		return "kafka_" + err.Error()
	}
	return ""
}

// Shutdown refuses new connections and waits for the open ones, closing
// them when ctx ends.
func (h *Handler) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.draining.Store(true)
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		<-done
	}
}

// tcpLog is the scratch of one TCP entry: the entry refilled per log
// and the buffer it is encoded into, taken from a pool so that logging a
// Kafka request allocates nothing once the pool is warm.
type tcpLog struct {
	e   accesslog.TCPEntry
	buf []byte
}

var tcpLogs = sync.Pool{New: func() any { return new(tcpLog) }}

// send encodes the entry once and hands it to every logger (each copies
// it), then returns the scratch to the pool.
func (h *Handler) send(x *tcpLog) {
	b, err := x.e.AppendProto(x.buf[:0])
	for _, l := range h.logs {
		if err != nil {
			// Not UTF-8: dropped and counted, as a message protobuf
			// refused to marshal was.
			l.Drop()
			continue
		}
		l.LogEncoded(b)
	}
	// A rare huge entry's buffer is not pooled.
	x.buf = nil
	if cap(b) <= 8<<10 {
		x.buf = b[:0]
	}
	x.e.Reset()
	tcpLogs.Put(x)
}

func (h *Handler) logConn(info listener.ConnInfo, start time.Time, cluster string, host *upstream.Host, reason string) {
	if len(h.logs) == 0 {
		return
	}
	x := tcpLogs.Get().(*tcpLog)
	e := &x.e
	e.Start, e.Duration, e.Remote, e.Local, e.UpstreamCluster = start, time.Since(start), info.Remote, info.Local, cluster
	if host != nil {
		e.Upstream, _ = netip.ParseAddrPort(host.Addr)
	}
	e.L7.String(l7meta.Protocol, "tcp")
	if reason != "" {
		e.L7.String(l7meta.Reason, reason)
		e.TerminationDetails = reason
	}
	h.send(x)
}

func (h *Handler) logKafka(info listener.ConnInfo, ev kafka.Event) {
	if len(h.logs) == 0 {
		return
	}
	r := ev.Request
	x := tcpLogs.Get().(*tcpLog)
	e := &x.e
	e.Start, e.Duration, e.Remote, e.Local, e.Upstream, e.UpstreamCluster = ev.Start, ev.Duration, info.Remote, info.Local, info.Local, h.cfg.Cluster
	l7 := &e.L7
	l7.String(l7meta.Protocol, "kafka")
	l7.Number(l7meta.KafkaAPIKey, float64(r.Key))
	l7.String(l7meta.KafkaAPIKeyName, kafka.APIKeyName(r.Key))
	l7.Number(l7meta.KafkaAPIVersion, float64(r.Version))
	l7.Number(l7meta.KafkaCorrelationID, float64(r.CorrelationID))
	l7.String(l7meta.KafkaClientID, r.ClientID)
	l7.List(l7meta.KafkaTopics, r.Topics)
	if info.Identity != 0 {
		l7.Number(l7meta.SourceIdentity, float64(info.Identity))
	}
	if ev.Verdict.Allowed {
		l7.Number(l7meta.KafkaErrorCode, 0)
		l7.String(l7meta.Verdict, l7meta.VerdictForwarded)
		if ev.Verdict.Policy != "" {
			l7.String(l7meta.Policy, ev.Verdict.Policy)
		}
	} else {
		l7.String(l7meta.Verdict, l7meta.VerdictDropped)
		l7.String(l7meta.Reason, ev.Verdict.Reason)
		if ev.ErrorCode != nil {
			l7.Number(l7meta.KafkaErrorCode, float64(ev.ErrorCode.Code))
			l7.String(l7meta.KafkaErrorName, ev.ErrorCode.Message)
		} else {
			l7.Number(l7meta.KafkaErrorCode, 0)
		}
	}
	h.send(x)
}
