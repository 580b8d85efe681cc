package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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

type sotwState struct {
	nonce string
	names []string
	sent  bool
}

func (c *Client) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening ADS stream: %w", err)
	}
	c.note(func(s *Stats) { s.Connected = true; s.Streams++ })
	st := map[string]*sotwState{}
	first := true
	send := func(req *discoveryv3.DiscoveryRequest) error {
		if first {
			req.Node = c.node
			first = false
		}
		return stream.Send(req)
	}
	for _, t := range wildcardTypes {
		st[t] = &sotwState{sent: true}
		if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: c.versions[t]}); err != nil {
			return false, fmt.Errorf("sending %s request: %w", t, err)
		}
	}
	for _, t := range namedTypes {
		st[t] = &sotwState{}
	}
	resubscribe := func() error {
		for _, t := range namedTypes {
			s := st[t]
			names := c.h.Names(t)
			if len(names) == 0 || (s.sent && slices.Equal(names, s.names)) {
				continue
			}
			s.names, s.sent = names, true
			if err := send(&discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: c.versions[t],
				ResponseNonce: s.nonce, ResourceNames: names}); err != nil {
				return fmt.Errorf("sending %s request: %w", t, err)
			}
		}
		return nil
	}
	if err := resubscribe(); err != nil {
		return false, err
	}
	got := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return got, fmt.Errorf("receiving: %w", err)
		}
		got = true
		t := resp.GetTypeUrl()
		s := st[t]
		if s == nil {
			// Not subscribed: NACK so the server learns.
			_ = send(&discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce(),
				ErrorDetail: errorDetail(fmt.Errorf("resource type %q not supported by nodemesh-proxy", t))})
			continue
		}
		s.nonce = resp.GetNonce()
		full := slices.Contains(wildcardTypes, t)
		uerr := c.h.Update(t, resp.GetVersionInfo(), resp.GetResources(), nil, full)
		req := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: s.nonce, ResourceNames: s.names}
		if uerr != nil {
			req.VersionInfo = c.versions[t]
			req.ErrorDetail = errorDetail(uerr)
			c.logger.Warn("NACK", "type", t, "version", resp.GetVersionInfo(), "error", uerr)
			c.note(func(s *Stats) { s.NACKs++ })
		} else {
			c.versions[t] = resp.GetVersionInfo()
			req.VersionInfo = resp.GetVersionInfo()
			c.note(func(s *Stats) { s.ACKs++; s.LastACK = time.Now() })
		}
		if err := send(req); err != nil {
			return got, fmt.Errorf("sending ACK: %w", err)
		}
		if err := resubscribe(); err != nil {
			return got, err
		}
	}
}

func (c *Client) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ads.DeltaAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening delta ADS stream: %w", err)
	}
	c.note(func(s *Stats) { s.Connected = true; s.Streams++ })
	first := true
	send := func(req *discoveryv3.DeltaDiscoveryRequest) error {
		if first {
			req.Node = c.node
			first = false
		}
		return stream.Send(req)
	}
	subscribed := map[string][]string{}
	for _, t := range wildcardTypes {
		if c.resVers[t] == nil {
			c.resVers[t] = map[string]string{}
		}
		if err := send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: c.resVers[t]}); err != nil {
			return false, fmt.Errorf("sending %s request: %w", t, err)
		}
	}
	resubscribe := func() error {
		for _, t := range namedTypes {
			names := c.h.Names(t)
			old := subscribed[t]
			var add, drop []string
			for _, n := range names {
				if !slices.Contains(old, n) {
					add = append(add, n)
				}
			}
			for _, n := range old {
				if !slices.Contains(names, n) {
					drop = append(drop, n)
				}
			}
			if len(add) == 0 && len(drop) == 0 {
				continue
			}
			_, known := subscribed[t]
			subscribed[t] = names
			if c.resVers[t] == nil {
				c.resVers[t] = map[string]string{}
			}
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop}
			if !known {
				req.InitialResourceVersions = c.resVers[t]
			}
			if err := send(req); err != nil {
				return fmt.Errorf("sending %s request: %w", t, err)
			}
		}
		return nil
	}
	if err := resubscribe(); err != nil {
		return false, err
	}
	got := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			return got, fmt.Errorf("receiving: %w", err)
		}
		got = true
		t := resp.GetTypeUrl()
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
		vers := c.resVers[t]
		if vers == nil {
			req.ErrorDetail = errorDetail(fmt.Errorf("resource type %q not supported by nodemesh-proxy", t))
			_ = send(req)
			continue
		}
		anys := make([]*anypb.Any, 0, len(resp.GetResources()))
		removed := slices.Clone(resp.GetRemovedResources())
		for _, r := range resp.GetResources() {
			if r.GetResource() == nil {
				removed = append(removed, r.GetName())
				continue
			}
			anys = append(anys, r.GetResource())
		}
		if uerr := c.h.Update(t, resp.GetSystemVersionInfo(), anys, removed, false); uerr != nil {
			req.ErrorDetail = errorDetail(uerr)
			c.logger.Warn("NACK", "type", t, "nonce", resp.GetNonce(), "error", uerr)
			c.note(func(s *Stats) { s.NACKs++ })
		} else {
			for _, r := range resp.GetResources() {
				if r.GetResource() != nil {
					vers[r.GetName()] = r.GetVersion()
				}
			}
			for _, n := range removed {
				delete(vers, n)
			}
			c.note(func(s *Stats) { s.ACKs++; s.LastACK = time.Now() })
		}
		if err := send(req); err != nil {
			return got, fmt.Errorf("sending ACK: %w", err)
		}
		if err := resubscribe(); err != nil {
			return got, err
		}
	}
}

var _ = errors.New
