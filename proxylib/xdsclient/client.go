package xdsclient

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/nodemesh/nodemesh/proxylib/resource"
)

// Handler applies received resources. See package config's Store.
type Handler interface {
	// Update applies resources of typeURL; full means they are the whole set
	// of that type. A non-nil error NACKs the response.
	Update(typeURL, version string, resources []*anypb.Any, removed []string, full bool) error
	// Names returns the names to subscribe for a non-wildcard type.
	Names(typeURL string) []string
}

// NodeCluster is the node cluster the proxy reports.
const NodeCluster = "nodemesh-proxy"

var (
	wildcardTypes = []string{resource.ClusterType, resource.ListenerType}
	namedTypes    = []string{resource.EndpointType, resource.RouteType, resource.SecretType, resource.ExtensionConfigType}
)

// Client is an ADS client.
type Client struct {
	target  string
	node    *corev3.Node
	delta   bool
	h       Handler
	logger  *slog.Logger
	minWait time.Duration
	maxWait time.Duration

	mu    sync.Mutex
	stats Stats

	// Accepted state carried across streams.
	versions map[string]string            // SotW: last ACKed version per type
	resVers  map[string]map[string]string // delta: name → version per type
}

// Stats counts stream activity, for the admin endpoint.
type Stats struct {
	Connected bool      `json:"connected"`
	Streams   int       `json:"streams"`
	ACKs      int       `json:"acks"`
	NACKs     int       `json:"nacks"`
	LastError string    `json:"last_error,omitempty"`
	LastACK   time.Time `json:"last_ack,omitempty"`
}

// Option configures a Client.
type Option func(*Client)

// WithDelta selects the incremental protocol.
func WithDelta(on bool) Option { return func(c *Client) { c.delta = on } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// WithBackoff sets the reconnect backoff bounds.
func WithBackoff(min, max time.Duration) Option {
	return func(c *Client) { c.minWait, c.maxWait = min, max }
}

// New returns a client for address "unix:///path" or "tcp://host:port".
func New(address, nodeID string, h Handler, opts ...Option) (*Client, error) {
	var target string
	switch {
	case strings.HasPrefix(address, "unix://"):
		target = address
	case strings.HasPrefix(address, "tcp://"):
		target = "passthrough:///" + strings.TrimPrefix(address, "tcp://")
	default:
		return nil, fmt.Errorf("parsing xDS address %q: want unix:///path or tcp://host:port", address)
	}
	c := &Client{
		target: target, h: h, logger: slog.Default(), minWait: 250 * time.Millisecond, maxWait: 30 * time.Second,
		node:     &corev3.Node{Id: nodeID, Cluster: NodeCluster, UserAgentName: "nodemesh-proxy"},
		versions: map[string]string{}, resVers: map[string]map[string]string{},
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Stats returns a copy of the stream counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Client) note(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// Run keeps a stream open until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(c.target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return fmt.Errorf("creating xDS connection: %w", err)
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)
	wait := c.minWait
	for {
		var got bool
		if c.delta {
			got, err = c.runDelta(ctx, ads)
		} else {
			got, err = c.runSotW(ctx, ads)
		}
		c.note(func(s *Stats) {
			s.Connected = false
			if err != nil {
				s.LastError = err.Error()
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		if got {
			wait = c.minWait
		}
		c.logger.Warn("xDS stream ended; reconnecting", "error", err, "after", wait)
		jitter := time.Duration(rand.Int64N(int64(wait)/2 + 1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait/2 + jitter):
		}
		wait = min(wait*2, c.maxWait)
	}
}

func errorDetail(err error) *statuspb.Status {
	return &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}
