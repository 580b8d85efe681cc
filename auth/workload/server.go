package workload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/nodemesh/nodemesh/auth"
	"github.com/nodemesh/nodemesh/auth/internal/counter"
)

// Attestor maps a caller's network namespace to the numeric identity of
// the local Pod that owns it. The composition root implements it from its
// endpoint knowledge (each local Pod's namespace, via NetNSOfPath). It is
// called from the gRPC handler goroutines, concurrently, and must not
// block; false means no known Pod owns the namespace.
type Attestor interface {
	Attest(ns NetNS) (auth.Identity, bool)
}

// Bounds (see doc.go).
const (
	DefaultMaxConns = 256
	maxStreams      = 16
	maxRecvMsg      = 64 << 10
)

// Counter names of Stats.
const (
	CountServed      = "served"       // an X.509 response or update was sent
	CountNoHeader    = "no_header"    // the workload.spiffe.io header was missing
	CountNotAttested = "not_attested" // the caller's namespace belongs to no known Pod
	CountUnavailable = "unavailable"  // the Source had no SVID to give
	CountPeerFailure = "peer_failure" // peer credentials could not be read (incl. a caller that exited)
	CountOverload    = "overload"     // a connection beyond the connection limit
)

// Server serves the SPIFFE Workload API (X.509 part) to the Pods of the
// node over a Unix socket.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	src      auth.Source
	att      Attestor
	log      *slog.Logger
	maxConns int
	stats    *counter.Set
	refresh  auth.Notifier
	grpc     *grpc.Server
	conns    atomic.Int64
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxConns bounds concurrent connections (default DefaultMaxConns);
// a connection beyond it is closed at once and counted.
func WithMaxConns(n int) Option { return func(s *Server) { s.maxConns = n } }

// New returns a Workload API server answering from src for the callers att
// recognises.
func New(src auth.Source, att Attestor, opts ...Option) *Server {
	s := &Server{src: src, att: att, log: slog.Default(), maxConns: DefaultMaxConns,
		stats: counter.New(CountServed, CountNoHeader, CountNotAttested, CountUnavailable, CountPeerFailure, CountOverload)}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(&countingCreds{s: s}),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.MaxRecvMsgSize(maxRecvMsg),
		grpc.ConnectionTimeout(5*time.Second),
		grpc.ChainUnaryInterceptor(s.unaryHeader),
		grpc.ChainStreamInterceptor(s.streamHeader),
	)
	workload.RegisterSpiffeWorkloadAPIServer(s.grpc, s)
	return s
}

// Listen creates the Unix socket at path: the parent directory is created
// (0755), a stale socket from a previous run is replaced (anything else at
// the path is an error), and the socket is made connectable by every user
// (0666): who may fetch what is decided by attestation, not file modes.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating Workload API socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("creating Workload API socket %s: a non-socket file is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale Workload API socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("creating Workload API socket: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("creating Workload API socket: %w", err)
	}
	return l, nil
}

// Serve answers on l (from Listen) until Stop.
func (s *Server) Serve(l net.Listener) error {
	return s.grpc.Serve(l)
}

// Stop closes every connection and stream.
func (s *Server) Stop() { s.grpc.Stop() }

// Refresh tells open streams that the endpoint knowledge behind the
// Attestor changed: each re-attests its caller, and a caller no longer
// recognised loses its stream (PermissionDenied). Called by the composition
// root after endpoint changes; never blocks.
func (s *Server) Refresh() { s.refresh.Notify() }

// Stats returns the counters (names Count*).
func (s *Server) Stats() map[string]uint64 { return s.stats.Snapshot() }

// checkHeader enforces the Workload API's security header: a request
// without `workload.spiffe.io: true` did not come from a Workload API
// client (for example a browser tricked into an SSRF) and is refused with
// InvalidArgument, as SPIRE does.
func (s *Server) checkHeader(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) == 1 && v[0] == "true" {
		return nil
	}
	s.stats.Inc(CountNoHeader)
	s.log.Warn("refusing Workload API call without the security header", "method", method)
	return status.Error(codes.InvalidArgument, "security header missing from request")
}

func (s *Server) unaryHeader(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.checkHeader(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamHeader(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.checkHeader(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// attest names the caller of ctx, or refuses it with PermissionDenied.
func (s *Server) attest(ctx context.Context) (auth.Identity, PeerInfo, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return 0, PeerInfo{}, status.Error(codes.Internal, "no peer information")
	}
	info, ok := p.AuthInfo.(PeerInfo)
	if !ok {
		return 0, PeerInfo{}, status.Error(codes.Internal, "no peer credentials")
	}
	id, ok := s.att.Attest(info.NetNS)
	if !ok || id == 0 {
		s.stats.Inc(CountNotAttested)
		s.log.Warn("refusing Workload API caller: its network namespace belongs to no local Pod",
			"pid", info.PID, "uid", info.UID, "netns", info.NetNS.String(), "via", info.Method)
		return 0, info, status.Error(codes.PermissionDenied, "no identity issued")
	}
	return id, info, nil
}

// FetchX509SVID streams the caller's SVID and the trust bundle, and a new
// message whenever either changes (rotation) until the caller leaves or
// is no longer attested.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	// Subscribe before the first read, so no change falls in between.
	changed, cancel := s.src.Subscribe()
	defer cancel()
	refreshed, cancelRefresh := s.refresh.Subscribe()
	defer cancelRefresh()
	var last *workload.X509SVIDResponse
	for {
		id, info, err := s.attest(ctx)
		if err != nil {
			return err
		}
		resp, err := s.x509Response(ctx, id)
		if err != nil {
			s.stats.Inc(CountUnavailable)
			s.log.Error("no SVID for a Workload API caller", "identity", id, "pid", info.PID, "error", err)
			return status.Error(codes.Unavailable, "no SVID available")
		}
		if last == nil || !sameX509(last, resp) {
			if err := stream.Send(resp); err != nil {
				return err
			}
			s.stats.Inc(CountServed)
			s.log.Debug("sent X.509-SVID", "identity", id, "pid", info.PID, "spiffeID", resp.Svids[0].SpiffeId)
			last = resp
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-refreshed:
		}
	}
}

// FetchX509Bundles streams the trust bundle to an attested caller.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	ctx := stream.Context()
	changed, cancel := s.src.Subscribe()
	defer cancel()
	refreshed, cancelRefresh := s.refresh.Subscribe()
	defer cancelRefresh()
	var last []byte
	for {
		if _, _, err := s.attest(ctx); err != nil {
			return err
		}
		b, err := s.src.Bundle()
		if err != nil {
			s.stats.Inc(CountUnavailable)
			return status.Error(codes.Unavailable, "no bundle available")
		}
		raw := bundleDER(b)
		if last == nil || !slices.Equal(last, raw) {
			resp := &workload.X509BundlesResponse{Bundles: map[string][]byte{s.src.TrustDomain().IDString(): raw}}
			if err := stream.Send(resp); err != nil {
				return err
			}
			s.stats.Inc(CountServed)
			last = raw
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-refreshed:
		}
	}
}

func (s *Server) x509Response(ctx context.Context, id auth.Identity) (*workload.X509SVIDResponse, error) {
	svid, err := s.src.SVID(ctx, id)
	if err != nil {
		return nil, err
	}
	certs, key, err := svid.MarshalRaw()
	if err != nil {
		return nil, fmt.Errorf("encoding SVID: %w", err)
	}
	b, err := s.src.Bundle()
	if err != nil {
		return nil, err
	}
	return &workload.X509SVIDResponse{Svids: []*workload.X509SVID{{
		SpiffeId:    svid.ID.String(),
		X509Svid:    certs,
		X509SvidKey: key,
		Bundle:      bundleDER(b),
	}}}, nil
}

func bundleDER(b *x509bundle.Bundle) []byte {
	var out []byte
	for _, c := range b.X509Authorities() {
		out = append(out, c.Raw...)
	}
	return out
}

func sameX509(a, b *workload.X509SVIDResponse) bool {
	x, y := a.Svids[0], b.Svids[0]
	return x.SpiffeId == y.SpiffeId && slices.Equal(x.X509Svid, y.X509Svid) && slices.Equal(x.Bundle, y.Bundle)
}

// countingCreds bounds the number of open connections and counts and
// logs connections whose peer could not be attested at all (the process
// exited, credentials unreadable); grpc closes those.
type countingCreds struct {
	peerCreds
	s *Server
}

func (c *countingCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.s.conns.Add(1) > int64(c.s.maxConns) {
		c.s.conns.Add(-1)
		c.s.stats.Inc(CountOverload)
		c.s.log.Warn("refusing Workload API connection: connection limit reached", "limit", c.s.maxConns)
		return nil, nil, fmt.Errorf("refusing connection: %d connections open", c.s.maxConns)
	}
	nc, info, err := c.peerCreds.ServerHandshake(conn)
	if err != nil {
		c.s.conns.Add(-1)
		c.s.stats.Inc(CountPeerFailure)
		level := slog.LevelError
		if errors.Is(err, ErrPeerGone) {
			level = slog.LevelWarn
		}
		c.s.log.Log(context.Background(), level, "refusing Workload API connection", "error", err)
		return nil, nil, err
	}
	nc.(*pinnedConn).onClose = func() { c.s.conns.Add(-1) }
	return nc, info, nil
}

// Clone keeps the counting wrapper (the embedded Clone would drop it).
func (c *countingCreds) Clone() credentials.TransportCredentials { return c }
