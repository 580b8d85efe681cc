package adsclient

import (
	"context"
	"fmt"
	"sort"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs in the order a proxy needs them.
var (
	ClusterType  = resource.ClusterType
	EndpointType = resource.EndpointType
	ListenerType = resource.ListenerType
	RouteType    = resource.RouteType
	SecretType   = resource.SecretType
)

// Options configure a Client.
type Options struct {
	// NodeID and Cluster identify the proxy (sent in the first request).
	NodeID  string
	Cluster string
	// Delta selects incremental xDS instead of state of the world.
	Delta bool
	// Reject is asked about every response before it is applied; a
	// non-nil error NACKs the response with the error's text.
	Reject func(typeURL string, resources map[string]proto.Message) error
}

// Event is one response the client received.
type Event struct {
	TypeURL string
	Version string
	Nonce   string
	// Names are the resources carried (sorted); Removed the names a delta
	// response removed.
	Names   []string
	Removed []string
	// Rejected is true if the client NACKed the response.
	Rejected bool
}

type typeState struct {
	version   string
	nonce     string
	names     []string // named subscription (SotW and delta)
	resources map[string]proto.Message
	versions  map[string]string // delta resource versions
}

// Client is one proxy's ADS stream. Methods are safe from any goroutine.
type Client struct {
	opts   Options
	target string
	conn   *grpc.ClientConn

	mu         sync.Mutex
	types      map[string]*typeState
	events     []Event
	violations []string
	changed    chan struct{}
	err        error
	resume     bool

	cancel context.CancelFunc
	done   chan struct{}
}

// Dial connects to target (a gRPC target such as "unix:///run/xds.sock")
// and opens the stream.
func Dial(target string, opts Options) (*Client, error) {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", target, err)
	}
	c := &Client{opts: opts, target: target, conn: conn, types: map[string]*typeState{}, changed: make(chan struct{})}
	for _, t := range []string{ClusterType, EndpointType, ListenerType, RouteType, SecretType} {
		c.types[t] = &typeState{resources: map[string]proto.Message{}, versions: map[string]string{}}
	}
	c.start()
	return c, nil
}

func (c *Client) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		var err error
		if c.opts.Delta {
			err = c.runDelta(ctx)
		} else {
			err = c.runSotW(ctx)
		}
		c.mu.Lock()
		if ctx.Err() == nil {
			c.err = err
		}
		c.notifyLocked()
		c.mu.Unlock()
	}()
}

// Disconnect ends the stream but keeps what the client applied, as a proxy
// keeps serving its configuration while the server is away.
func (c *Client) Disconnect() {
	c.cancel()
	<-c.done
}

// Reconnect opens a new stream, resuming with the versions it holds (SotW
// version_info, delta initial_resource_versions).
func (c *Client) Reconnect() {
	c.mu.Lock()
	c.resume = true
	c.err = nil
	c.mu.Unlock()
	c.start()
}

// Close ends the stream and the connection.
func (c *Client) Close() {
	c.Disconnect()
	c.conn.Close()
}

// Err returns the error that ended the stream, if any.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Events returns a copy of every response received so far, in order.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.events...)
}

// Violations lists make-before-break violations seen so far.
func (c *Client) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.violations...)
}

// Version returns the accepted version of a type (SotW) or the system
// version of the last accepted response (delta).
func (c *Client) Version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[typeURL].version
}

// Names returns the names of the applied resources of a type, sorted.
func (c *Client) Names(typeURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return sortedNames(c.types[typeURL].resources)
}

// Resource returns an applied resource, or nil.
func (c *Client) Resource(typeURL, name string) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[typeURL].resources[name]
}

// WaitFor blocks until cond holds (checked after every change) or ctx
// ends. cond runs with the client's lock released and may call its
// methods.
func (c *Client) WaitFor(ctx context.Context, what string, cond func(*Client) bool) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond(c) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (stream error: %v)", what, ctx.Err(), c.Err())
		case <-ch:
		}
	}
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// decode unpacks the resources of a response.
func decode(anys []*anypb.Any) (map[string]proto.Message, error) {
	out := make(map[string]proto.Message, len(anys))
	for _, a := range anys {
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", a.GetTypeUrl(), err)
		}
		out[resourceName(m)] = m
	}
	return out, nil
}

func resourceName(m proto.Message) string {
	switch r := m.(type) {
	case interface{ GetClusterName() string }:
		return r.GetClusterName()
	case interface{ GetName() string }:
		return r.GetName()
	}
	return ""
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// wanted computes the named subscriptions the applied clusters and
// listeners call for.
func (c *Client) wantedLocked(typeURL string) []string {
	set := map[string]bool{}
	switch typeURL {
	case EndpointType:
		for _, m := range c.types[ClusterType].resources {
			cl := m.(*clusterv3.Cluster)
			name := cl.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = cl.GetName()
			}
			set[name] = true
		}
	case RouteType, SecretType:
		for _, m := range c.types[ListenerType].resources {
			for _, fc := range m.(*listenerv3.Listener).GetFilterChains() {
				if typeURL == SecretType {
					for _, n := range secretRefs(fc) {
						set[n] = true
					}
					continue
				}
				for _, f := range fc.GetFilters() {
					hcm := &hcmv3.HttpConnectionManager{}
					if f.GetTypedConfig().UnmarshalTo(hcm) == nil && hcm.GetRds() != nil {
						set[hcm.GetRds().GetRouteConfigName()] = true
					}
				}
			}
		}
	}
	return sortedNames(set)
}

func secretRefs(fc *listenerv3.FilterChain) []string {
	ts := fc.GetTransportSocket()
	if ts == nil {
		return nil
	}
	ctx := &tlsv3.DownstreamTlsContext{}
	if ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		return nil
	}
	var out []string
	for _, s := range ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
		out = append(out, s.GetName())
	}
	return out
}

// checkLocked records make-before-break violations after an update.
// prevSecrets are the secrets held before the update.
func (c *Client) checkLocked(after string, prevSecrets map[string]proto.Message) {
	clusters := c.types[ClusterType].resources
	endpoints := c.types[EndpointType].resources
	for _, m := range c.types[RouteType].resources {
		rc := m.(*routev3.RouteConfiguration)
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				for _, name := range routeClusters(r) {
					_, known := clusters[name]
					_, warm := endpoints[name]
					if !known || !warm {
						c.violations = append(c.violations, fmt.Sprintf("after %s: route %q of %q uses cluster %q (known %t, endpoints %t)",
							after, r.GetName(), rc.GetName(), name, known, warm))
					}
				}
			}
		}
	}
	for _, m := range c.types[ListenerType].resources {
		for _, fc := range m.(*listenerv3.Listener).GetFilterChains() {
			for _, n := range secretRefs(fc) {
				if _, had := prevSecrets[n]; had {
					if _, has := c.types[SecretType].resources[n]; !has {
						c.violations = append(c.violations, fmt.Sprintf("after %s: secret %q removed while listener %q uses it", after, n, m.(*listenerv3.Listener).GetName()))
					}
				}
			}
		}
	}
}

func routeClusters(r *routev3.Route) []string {
	a := r.GetRoute()
	if a == nil {
		return nil
	}
	if n := a.GetCluster(); n != "" {
		return []string{n}
	}
	var out []string
	for _, w := range a.GetWeightedClusters().GetClusters() {
		if w.GetWeight().GetValue() > 0 {
			out = append(out, w.GetName())
		}
	}
	return out
}

func nodeOf(o Options) *corev3.Node {
	return &corev3.Node{Id: o.NodeID, Cluster: o.Cluster}
}

func errorDetail(err error) *statuspb.Status {
	return &statuspb.Status{Code: 3, Message: err.Error()}
}
