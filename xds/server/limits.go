package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Bounds on what clients of the xDS socket may make the server hold. The
// socket is meant for the node's proxies, but whatever reaches it is
// treated as untrusted: every stream, node and request adds state, and
// each of those is bounded.
const (
	// DefaultMaxStreams bounds the gRPC streams open at once over every
	// listener and service (ADS in both protocols and the access-log
	// service). A node's proxy opens one ADS stream and one access-log
	// stream per (cluster, log name, kind).
	DefaultMaxStreams = 1024
	// DefaultMaxStreamsPerClient bounds the streams of one client (peer.go:
	// a process on the Unix socket, an IP address over TCP), so that one
	// client cannot hold every stream. Envoy opens an access-log stream
	// per worker thread and access-log configuration, so a proxy with many
	// workers needs more than a handful.
	DefaultMaxStreamsPerClient = 256
	// DefaultMaxDisconnectedNodes bounds the node records kept for status
	// after their last stream ended; the oldest disconnection goes first.
	// Connected nodes are bounded by the streams.
	DefaultMaxDisconnectedNodes = 64
	// MaxRequestBytes bounds one received message (gRPC's default, set
	// explicitly): a state-of-the-world request names every resource of
	// its type and a delta one may list them with versions, which for
	// thousands of routes stays well under this.
	MaxRequestBytes = 4 << 20
	// MaxNodeFieldBytes bounds the node ID and cluster a stream presents;
	// a longer one ends the stream with InvalidArgument.
	MaxNodeFieldBytes = 1024
	// MaxSubscribedNames bounds, per delta stream and resource type, the
	// resource names the stream holds subscribed (resource_names_subscribe
	// accumulates across requests until unsubscribed) and the
	// initial_resource_versions of the type's first request. go-control-plane
	// keeps both in the stream's subscription; a request that would go past
	// the bound ends the stream with InvalidArgument. Far above any
	// configuration a node serves (one name per cluster, endpoint set,
	// listener, route, secret or extension configuration).
	MaxSubscribedNames = 1 << 16
	// MaxSubscribedBytes bounds the bytes of those names (and of the
	// initial versions' version strings) the same way: no more than one
	// request may carry.
	MaxSubscribedBytes = MaxRequestBytes
)

// WithMaxStreams sets how many gRPC streams may be open at once (default
// DefaultMaxStreams); one more is refused with ResourceExhausted.
func WithMaxStreams(n int) Option { return func(s *Server) { s.maxStreams = int64(max(n, 1)) } }

// WithMaxStreamsPerClient sets how many streams one client may have open
// at once (default DefaultMaxStreamsPerClient); one more is refused with
// ResourceExhausted.
func WithMaxStreamsPerClient(n int) Option { return func(s *Server) { s.maxPeerStreams = max(n, 1) } }

// WithMaxDisconnectedNodes sets how many disconnected nodes Status keeps
// (default DefaultMaxDisconnectedNodes).
func WithMaxDisconnectedNodes(n int) Option {
	return func(s *Server) { s.maxDisconnected = max(n, 0) }
}

// admitStream is the stream interceptor of every service: beyond
// maxStreams open streams, or maxPeerStreams of the stream's client, a new
// one is refused before any handler (and go-control-plane's per-stream
// state) runs.
func (s *Server) admitStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if s.grpcStreams.Add(1) > s.maxStreams {
		s.grpcStreams.Add(-1)
		s.counts.refused.Add(1)
		s.log.Warn("refusing a stream: too many open", "method", info.FullMethod, "limit", s.maxStreams)
		return status.Errorf(codes.ResourceExhausted, "xDS server: %d streams are open, the most it serves at once", s.maxStreams)
	}
	defer s.grpcStreams.Add(-1)
	client := clientOf(ss.Context())
	if err := s.admitClient(client); err != nil {
		s.counts.refused.Add(1)
		s.log.Warn("refusing a stream: too many open by one client", "method", info.FullMethod, "client", client, "limit", s.maxPeerStreams)
		return err
	}
	defer s.releaseClient(client)
	return h(srv, ss)
}

// grpcOptions are the server's gRPC bounds and interceptor.
func (s *Server) grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(MaxRequestBytes), grpc.ChainStreamInterceptor(s.admitStream)}
}

// checkNode refuses a node whose ID or cluster exceeds MaxNodeFieldBytes.
func checkNode(id, cluster string) error {
	if len(id) > MaxNodeFieldBytes || len(cluster) > MaxNodeFieldBytes {
		return status.Errorf(codes.InvalidArgument, "xDS server: node ID (%d bytes) or cluster (%d bytes) longer than %d bytes",
			len(id), len(cluster), MaxNodeFieldBytes)
	}
	return nil
}

// unservedType refuses a request for a resource type the server does not
// serve. Left alone, go-control-plane would open a watch for it that the
// cache keeps, with the whole request, until the stream ends: one per
// distinct type URL a client invents. The proxies on the node (Envoy
// bootstrapped by xds/bootstrap, proxylib/xdsclient) ask only for the six
// served types.
func unservedType(typeURL string) error {
	if len(typeURL) > 256 {
		typeURL = typeURL[:256] + "…"
	}
	return status.Errorf(codes.InvalidArgument, "xDS server: resource type %q is not served", typeURL)
}

// subscriptions is what a delta stream holds subscribed of one type, as
// go-control-plane's subscription does, to bound it (MaxSubscribedNames,
// MaxSubscribedBytes).
type subscriptions struct {
	names map[string]struct{}
	bytes int
}

// update applies a delta request's subscriptions, then its
// unsubscriptions (go-control-plane's order), and refuses the request when
// the stream would hold more than the bounds allow.
func (s *subscriptions) update(sub, unsub []string) error {
	if s.names == nil {
		s.names = map[string]struct{}{}
	}
	for _, n := range sub {
		if _, ok := s.names[n]; !ok {
			s.names[n] = struct{}{}
			s.bytes += len(n)
		}
	}
	for _, n := range unsub {
		if _, ok := s.names[n]; ok {
			delete(s.names, n)
			s.bytes -= len(n)
		}
	}
	if len(s.names) > MaxSubscribedNames || s.bytes > MaxSubscribedBytes {
		return status.Errorf(codes.InvalidArgument, "xDS server: a stream may hold at most %d subscribed resource names (%d bytes) per type, this one asks for %d (%d bytes)",
			MaxSubscribedNames, MaxSubscribedBytes, len(s.names), s.bytes)
	}
	return nil
}

// checkInitialVersions refuses a delta request whose
// initial_resource_versions go past the same bounds.
func checkInitialVersions(v map[string]string) error {
	n := 0
	for name, version := range v {
		n += len(name) + len(version)
	}
	if len(v) > MaxSubscribedNames || n > MaxSubscribedBytes {
		return status.Errorf(codes.InvalidArgument, "xDS server: at most %d initial resource versions (%d bytes) per type, this request has %d (%d bytes)",
			MaxSubscribedNames, MaxSubscribedBytes, len(v), n)
	}
	return nil
}

// trimDisconnectedLocked forgets the oldest disconnected nodes beyond
// maxDisconnected.
func (s *Server) trimDisconnectedLocked() {
	for {
		var oldest *nodeRecord
		n := 0
		for _, rec := range s.nodes {
			if len(rec.streams) > 0 {
				continue
			}
			n++
			if oldest == nil || rec.disconnectedAt.Before(oldest.disconnectedAt) ||
				rec.disconnectedAt.Equal(oldest.disconnectedAt) && rec.id < oldest.id {
				oldest = rec
			}
		}
		if n <= s.maxDisconnected {
			return
		}
		delete(s.nodes, oldest.id)
	}
}
