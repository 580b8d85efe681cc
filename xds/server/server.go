package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/delta/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/rest/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// nodeKey is the one cache key every proxy maps to: the agent serves one
// configuration per node, and all proxies on the node run it.
const nodeKey = "nodemesh"

// sameConfigForAll maps every proxy to nodeKey.
type sameConfigForAll struct{}

func (sameConfigForAll) ID(*corev3.Node) string { return nodeKey }

// DefaultStageTimeout bounds how long the rollout waits for a proxy that
// neither accepts nor rejects new clusters before switching routes.
const DefaultStageTimeout = 10 * time.Second

// Server is the node's xDS server: ADS (state of the world and delta) over
// gRPC, a snapshot cache, the make-before-break publisher and the ACK/NACK
// table. Create it with New, feed it with Update, serve it with Serve,
// stop it with Stop.
type Server struct {
	log          *slog.Logger
	stageTimeout time.Duration
	now          func() time.Time

	// Two caches with the same content, except that state-of-the-world
	// proxies are served only the secrets their listeners use (see
	// state.sotwSecrets).
	sotwCache  cachev3.SnapshotCache
	deltaCache cachev3.SnapshotCache
	grpc       *grpc.Server

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kickCh chan struct{}

	updateMu sync.Mutex // serialises Update

	mu            sync.Mutex // guards everything below
	desired       state
	desiredSet    bool
	published     state
	publishedOnce bool
	// publishedSotwSecrets is the secret set served to state-of-the-world
	// proxies with published.
	publishedSotwSecrets *typeSet
	// publishedSotwExtensions is the same for extension configurations.
	publishedSotwExtensions *typeSet
	makeAt                  time.Time
	history                 [numKinds][]*typeSet
	streams                 map[streamKey]*stream
	nodes                   map[string]*nodeRecord
	changed                 chan struct{}
	completed               string

	counts exchangeCounts // Counters

	maxStreams      int64
	maxDisconnected int
	grpcStreams     atomic.Int64 // gRPC streams open now (admitStream)
	maxPeerStreams  int
	clientsMu       sync.Mutex
	clientStreams   map[string]int // open streams per client (peer.go)
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithStageTimeout sets how long the rollout waits for every proxy to
// answer new clusters and endpoints before switching routes anyway
// (default DefaultStageTimeout). Removal of retained resources never times
// out.
func WithStageTimeout(d time.Duration) Option { return func(s *Server) { s.stageTimeout = d } }

// New creates a Server and starts its publisher goroutine. Nothing is
// served until Update is called (proxies that connect earlier wait).
func New(opts ...Option) *Server {
	s := &Server{
		log:          slog.Default(),
		stageTimeout: DefaultStageTimeout,
		now:          time.Now,
		kickCh:       make(chan struct{}, 1),
		desired:      emptyState(),
		published:    emptyState(),
		streams:      map[streamKey]*stream{},
		nodes:        map[string]*nodeRecord{},
		changed:      make(chan struct{}),

		maxStreams:      DefaultMaxStreams,
		maxDisconnected: DefaultMaxDisconnectedNodes,
		maxPeerStreams:  DefaultMaxStreamsPerClient,
		clientStreams:   map[string]int{},
	}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("component", "xds-server")
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sotwCache = cachev3.NewSnapshotCache(true, sameConfigForAll{}, cacheLogger{s.log})
	s.deltaCache = cachev3.NewSnapshotCache(true, sameConfigForAll{}, cacheLogger{s.log})
	cb := s.callbacks()
	xds := serverv3.NewServerAdvanced(
		rest.NewServer(s.sotwCache, cb),
		sotw.NewServer(s.ctx, s.sotwCache, cb, sotw.WithOrderedADS()),
		delta.NewServer(s.ctx, s.deltaCache, cb),
	)
	s.grpc = grpc.NewServer(append(s.grpcOptions(),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)...)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, xds)
	s.wg.Add(1)
	go s.run()
	return s
}

// RegisterService adds another gRPC service to the server, so proxies
// reach it over the xDS socket (the agent's AccessLogService). Call it
// before the first Serve.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// Serve accepts proxies on l until Stop; it blocks. It may be called for
// several listeners (the Unix socket and a TCP port) concurrently. On a
// Unix listener each connection is known by its process (peer.go), which
// bounds the streams of each client.
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("serving xDS", "address", l.Addr().String())
	if err := s.grpc.Serve(serveListener(l)); err != nil {
		return fmt.Errorf("serving xDS on %s: %w", l.Addr(), err)
	}
	return nil
}

// Stop closes every stream and listener and stops the publisher. It waits
// up to grace for streams to end on their own. Proxies keep running their
// last configuration and reconnect when a server is back.
func (s *Server) Stop(grace time.Duration) {
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		s.grpc.Stop()
		<-done
	}
	s.wg.Wait()
}

// cacheLogger sends go-control-plane's logs to slog; its debug chatter
// stays at debug level.
type cacheLogger struct{ l *slog.Logger }

// adsSubsetDrop starts the cache's warning for a named request that does
// not name every resource of its type (ADS mode drops it). The rollout
// causes one whenever clusters or secrets are added: the proxy's ACK of
// the new clusters still names the old endpoints, and its next request
// names the new set and is answered. Expected on every such change, it is
// logged at debug level.
const adsSubsetDrop = "ADS mode: not responding to request"

func (c cacheLogger) Debugf(f string, a ...any) {
	if c.l.Enabled(context.Background(), slog.LevelDebug) {
		c.l.Debug(fmt.Sprintf(f, a...))
	}
}
func (c cacheLogger) Infof(f string, a ...any) {
	if c.l.Enabled(context.Background(), slog.LevelDebug) {
		c.l.Debug(fmt.Sprintf(f, a...))
	}
}
func (c cacheLogger) Warnf(f string, a ...any) {
	if strings.HasPrefix(f, adsSubsetDrop) {
		c.Debugf(f, a...)
		return
	}
	c.l.Warn(fmt.Sprintf(f, a...))
}
func (c cacheLogger) Errorf(f string, a ...any) { c.l.Error(fmt.Sprintf(f, a...)) }
