package observer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/nodemesh/nodemesh/mesh/flow"
	flowpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/flow"
	observerpb "github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/observer"
	"github.com/nodemesh/nodemesh/mesh/flow/observer/api/v1/relay"
)

// HealthService is the name the hubble CLI health-checks (Hubble's
// server registers its health status under it, not under the gRPC
// service's name observer.Observer).
const HealthService = "hubble.server.Observer"

// Store is the flow store the observer reads (flow.Store). Its methods
// are called from the server's stream goroutines and must not block.
type Store interface {
	Read(seq uint64, max int) (flows []flow.Flow, next, lost uint64)
	Oldest() uint64
	Last() uint64
	Changed() <-chan struct{}
	Stats() (held, capacity int, added uint64)
}

var _ Store = (*flow.Store)(nil)

// batch is how many flows one stream reads from the store at a time.
const batch = 256

// Defaults of the stream bounds (see doc.go).
const (
	// DefaultMaxStreams is how many GetFlows streams the server serves at
	// once, over all connections and listeners.
	DefaultMaxStreams = 64
	// DefaultSendTimeout is how long one message may wait for a client
	// that does not read before its stream is ended.
	DefaultSendTimeout = 15 * time.Second
	// maxStreamsPerConn is gRPC's per-connection limit: the hubble CLI
	// opens one stream per command.
	maxStreamsPerConn = 16
)

// Server serves Hubble's observer.Observer from a Store.
type Server struct {
	observerpb.UnimplementedObserverServer
	store       Store
	node        string
	version     string
	start       time.Time
	log         *slog.Logger
	sendTimeout time.Duration
	// slots holds one token per GetFlows stream being served.
	slots chan struct{}
	stats counters
}

// Option configures a Server.
type Option func(*Server)

// WithNodeName sets the node name flows and GetNodes report (default: the
// host name).
func WithNodeName(n string) Option { return func(s *Server) { s.node = n } }

// WithVersion sets the version ServerStatus and GetNodes report.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxStreams sets how many GetFlows streams are served at once over
// every connection (default DefaultMaxStreams); more are refused with
// ResourceExhausted. n < 1 keeps the default.
func WithMaxStreams(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.slots = make(chan struct{}, n)
		}
	}
}

// WithSendTimeout sets how long a message may wait for the client to read
// before its stream ends with DeadlineExceeded (default
// DefaultSendTimeout). d <= 0 keeps the default.
func WithSendTimeout(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.sendTimeout = d
		}
	}
}

// New returns a Server reading store.
func New(store Store, opts ...Option) *Server {
	s := &Server{store: store, version: "nodemesh", start: time.Now(), log: slog.Default(),
		sendTimeout: DefaultSendTimeout, slots: make(chan struct{}, DefaultMaxStreams)}
	for _, o := range opts {
		o(s)
	}
	if s.node == "" {
		s.node, _ = os.Hostname()
	}
	return s
}

// Register adds the Observer and the gRPC health service (which `hubble
// status` asks first) to g.
func (s *Server) Register(g *grpc.Server) {
	observerpb.RegisterObserverServer(g, s)
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus(HealthService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, h)
}

// Serve serves the Observer on every listener until ctx ends, then stops
// (streams are cancelled: a follower never holds up shutdown). It returns
// the first listener's error other than a clean stop.
func (s *Server) Serve(ctx context.Context, ls ...net.Listener) error {
	g := grpc.NewServer(
		// Requests are small (filters); nothing legitimate comes near.
		grpc.MaxRecvMsgSize(1<<20),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	)
	s.Register(g)
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- g.Serve(l) }()
	}
	select {
	case <-ctx.Done():
		g.Stop()
		return nil
	case err := <-errc:
		g.Stop()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("serving the Hubble observer: %w", err)
	}
}

// request is a validated GetFlows request.
type request struct {
	allow, deny  match
	since, until time.Time
	mask         fieldMask
}

func (s *Server) parse(req *observerpb.GetFlowsRequest) (*request, error) {
	r := &request{}
	var err error
	if len(req.Whitelist) > 0 {
		if r.allow, err = compileList(req.Whitelist); err != nil {
			return nil, fmt.Errorf("whitelist: %w", err)
		}
	}
	if len(req.Blacklist) > 0 {
		if r.deny, err = compileList(req.Blacklist); err != nil {
			return nil, fmt.Errorf("blacklist: %w", err)
		}
	}
	for _, t := range []struct {
		ts  *timestamppb.Timestamp
		dst *time.Time
	}{{req.Since, &r.since}, {req.Until, &r.until}} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			return nil, fmt.Errorf("time bound: %w", err)
		}
		*t.dst = t.ts.AsTime()
	}
	if r.mask, err = newFieldMask(req.FieldMask); err != nil {
		return nil, err
	}
	if req.First && req.Follow {
		return nil, errors.New("first and follow exclude each other")
	}
	return r, nil
}

// keep converts f and reports whether it passes the request's filters
// and time bounds.
func (r *request) keep(f *flow.Flow, node string) (*flowpb.Flow, bool) {
	if !r.since.IsZero() && f.Time.Before(r.since) {
		return nil, false
	}
	if !r.until.IsZero() && f.Time.After(r.until) {
		return nil, false
	}
	p := Proto(f, node)
	if (r.allow != nil && !r.allow(p)) || (r.deny != nil && r.deny(p)) {
		return nil, false
	}
	return p, true
}

// GetFlows answers from the flows the store holds: the first or last
// Number matching flows (Number 0: all of them; with follow and no since,
// none), then, with follow, every new matching flow until the client goes
// away. A follower that falls more than the store's capacity behind is
// told how many flows it missed in a LostEvent from HUBBLE_RING_BUFFER,
// as Hubble does; the proxy's stream never waits for it.
//
// Memory and time are bounded per stream: history is sent as it is read
// (the last Number flows are found by counting first, not by holding
// them), a message the client does not take within the send timeout ends
// the stream, and at most WithMaxStreams streams run at once.
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, stream grpc.ServerStreamingServer[observerpb.GetFlowsResponse]) error {
	r, err := s.parse(req)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.stats.refused.Add(1)
		return status.Errorf(codes.ResourceExhausted, "the observer serves at most %d flow streams at once", cap(s.slots))
	}
	s.stats.streams.Add(1)
	s.stats.active.Add(1)
	defer s.stats.active.Add(-1)
	if !req.Follow && !r.since.IsZero() && r.until.IsZero() {
		r.until = time.Now()
	}
	out := s.newSender(stream)
	defer out.close()
	send := func(p *flowpb.Flow) error {
		err := out.send(&observerpb.GetFlowsResponse{
			ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: r.mask.apply(p)},
			NodeName:      s.node, Time: p.GetTime(),
		})
		if err == nil {
			s.stats.flowsSent.Add(1)
		}
		return err
	}
	sendLost := func(n uint64) error {
		return out.send(&observerpb.GetFlowsResponse{
			ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
				Source: flowpb.LostEventSource_HUBBLE_RING_BUFFER, NumEventsLost: n}},
			NodeName: s.node, Time: timestamppb.Now(),
		})
	}
	ctx := stream.Context()

	// History: the flows held when the request came.
	end := s.store.Last()
	if !(req.Follow && req.Number == 0 && r.since.IsZero()) {
		// skip is how many matches come before the ones to send: for the
		// last Number, a first pass counts the matches (holding none of
		// them); the first Number, or all, need no count.
		var skip uint64
		if !req.First && req.Number > 0 {
			matches, err := s.scan(ctx, r, end, nil)
			if err != nil {
				return err
			}
			skip = matches - min(matches, req.Number)
		}
		limit := req.Number // 0: no limit
		_, err := s.scan(ctx, r, end, func(p *flowpb.Flow, lost uint64) (bool, error) {
			if lost > 0 {
				if err := sendLost(lost); err != nil {
					return false, err
				}
			}
			if p == nil {
				return true, nil
			}
			if skip > 0 {
				skip--
				return true, nil
			}
			if err := send(p); err != nil {
				return false, err
			}
			if limit > 0 {
				limit--
				return limit > 0, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	if !req.Follow {
		return nil
	}

	seq := end
	for {
		changed := s.store.Changed()
		flows, next, lost := s.store.Read(seq, batch)
		if lost > 0 {
			if err := sendLost(lost); err != nil {
				return err
			}
		}
		seq = next
		for i := range flows {
			if p, ok := r.keep(&flows[i], s.node); ok {
				if err := send(p); err != nil {
					return err
				}
			}
		}
		if len(flows) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// scan goes through the held flows older than end, a batch at a time,
// and returns how many matched r. With each, and with every gap the ring
// overwrote (p nil, lost > 0), it calls visit, which returns whether to go
// on; visit nil only counts.
func (s *Server) scan(ctx context.Context, r *request, end uint64, visit func(p *flowpb.Flow, lost uint64) (bool, error)) (uint64, error) {
	var matches uint64
	seq := s.store.Oldest()
	for seq < end {
		flows, next, lost := s.store.Read(seq, min(batch, int(end-seq)))
		if lost > 0 && visit != nil {
			if more, err := visit(nil, lost); err != nil || !more {
				return matches, err
			}
		}
		if len(flows) == 0 {
			break
		}
		seq = next
		for i := range flows {
			p, ok := r.keep(&flows[i], s.node)
			if !ok {
				continue
			}
			matches++
			if visit != nil {
				if more, err := visit(p, 0); err != nil || !more {
					return matches, err
				}
			}
		}
		if err := ctx.Err(); err != nil {
			return matches, status.FromContextError(err).Err()
		}
	}
	return matches, nil
}

// ServerStatus reports the store's fill and the server's uptime.
func (s *Server) ServerStatus(context.Context, *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	held, capacity, added := s.store.Stats()
	return &observerpb.ServerStatusResponse{
		NumFlows: uint64(held), MaxFlows: uint64(capacity), SeenFlows: added,
		UptimeNs: uint64(time.Since(s.start)), Version: s.version,
	}, nil
}

// GetNodes reports this node, the only one a node's observer knows.
func (s *Server) GetNodes(context.Context, *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	held, capacity, added := s.store.Stats()
	return &observerpb.GetNodesResponse{Nodes: []*observerpb.Node{{
		Name: s.node, Version: s.version, State: relay.NodeState_NODE_CONNECTED,
		UptimeNs: uint64(time.Since(s.start)), NumFlows: uint64(held), MaxFlows: uint64(capacity), SeenFlows: added,
	}}}, nil
}
