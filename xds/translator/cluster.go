package translator

import (
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// defaultConnectTimeout is Envoy's own default, written out when the IR
// leaves it unset so both proxies agree without relying on defaults.
const defaultConnectTimeout = 5 * time.Second

// Upstream limits written on every cluster (see the package comment for
// why these values).
const (
	// maxConnections, maxPendingRequests and maxRequests are Envoy's
	// default circuit breaker thresholds.
	maxConnections     = 1024
	maxPendingRequests = 1024
	maxRequests        = 1024
	// maxRetries is Envoy Gateway's default of parallel retries per
	// cluster (Envoy's own is 3): retries exist only where a route asked
	// for them, and 3 at once would refuse the retries of a fourth
	// concurrently failing request on a busy gateway.
	maxRetries = 1024
	// upstreamIdleTimeout is Envoy's default idle_timeout of upstream
	// HTTP connections.
	upstreamIdleTimeout = time.Hour
	// clusterBufferLimit is Envoy Gateway's per_connection_buffer_limit_bytes.
	clusterBufferLimit = 32 << 10
)

// upstreamLimits sets the circuit breakers and buffer limit of c.
func upstreamLimits(c *clusterv3.Cluster) {
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     wrapperspb.UInt32(maxConnections),
		MaxPendingRequests: wrapperspb.UInt32(maxPendingRequests),
		MaxRequests:        wrapperspb.UInt32(maxRequests),
		MaxRetries:         wrapperspb.UInt32(maxRetries),
	}}}
	c.PerConnectionBufferLimitBytes = wrapperspb.UInt32(clusterBufferLimit)
}

// protocolOptions returns a cluster's HttpProtocolOptions: the upstream
// protocol and the idle timeout of its pooled connections.
func protocolOptions(name string, h *httpv3.HttpProtocolOptions) (map[string]*anypb.Any, error) {
	h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(upstreamIdleTimeout)}
	opts, err := typedConfig("cluster", name, h)
	if err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{httpProtocolOptionsKey: opts}, nil
}

// httpProtocolOptions returns the typed_extension_protocol_options of an
// HTTP/1.1 or (h2) h2c cluster: the packed HttpProtocolOptions. They are
// the same for every cluster of the protocol, so one translation builds,
// validates and serializes each once and its clusters share the map
// (emitted messages are never modified).
func (b *builder) httpProtocolOptions(cluster string, h2 bool) (map[string]*anypb.Any, error) {
	i := 0
	if h2 {
		i = 1
	}
	if b.httpOptions[i] == nil {
		opts, err := protocolOptions(cluster, explicitHTTP(h2))
		if err != nil {
			return nil, err
		}
		b.httpOptions[i] = opts
	}
	return b.httpOptions[i], nil
}

// clusterShared are the messages every EDS cluster of a translation holds
// alike, made once and shared (emitted messages are never modified): a
// cold translation builds thousands of clusters.
type clusterShared struct {
	discovery      *clusterv3.Cluster_Type
	edsSource      *corev3.ConfigSource
	defaultTimeout *durationpb.Duration
	limits         clusterv3.Cluster // CircuitBreakers and PerConnectionBufferLimitBytes
}

func (b *builder) clusterShared() *clusterShared {
	if b.shared == nil {
		sh := &clusterShared{
			discovery:      &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			edsSource:      adsConfigSource(),
			defaultTimeout: durationpb.New(defaultConnectTimeout),
		}
		upstreamLimits(&sh.limits)
		b.shared = sh
	}
	return b.shared
}

// explicitHTTP selects HTTP/1.1 or, with h2, h2c upstream.
func explicitHTTP(h2 bool) *httpv3.HttpProtocolOptions {
	ex := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{
			HttpProtocolOptions: &corev3.Http1ProtocolOptions{},
		},
	}
	if h2 {
		ex.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}
	}
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: ex},
	}
}

// clusterNamesOf names the Clusters of IR clusters and picks the
// invalid-backend cluster name apart from them.
func clusterNamesOf(clusters []*ir.Cluster) (map[string]string, string) {
	names := make(map[string]string, len(clusters))
	emitted := make(map[string]bool, len(clusters))
	for _, c := range clusters {
		n := clusterName(c.Name)
		names[c.Name] = n
		emitted[n] = true
	}
	return names, invalidBackendName(emitted)
}

// clusters emits every IR cluster. When the Config lists the very
// cluster objects the previous one did (a route change), the previous
// output is reused whole, versions included, without looking at each.
func (b *builder) clusters() error {
	cfg := b.cfg
	if p := b.prev; p != nil && p.clusterList != nil && slices.Equal(p.clusterList.in, cfg.Clusters) && p.clusterList.ingress == b.ingressHash {
		l := p.clusterList
		b.out.Clusters = slices.Clone(l.clusters)
		b.out.ClusterLoadAssignments = slices.Clone(l.clas)
		b.reusedClusters = l
		b.out.clusterVersions = l.versions
		b.denied, b.ingressSalt = l.denied, b.viaIngressSalt(l.denied)
		b.out.Warnings = append(b.out.Warnings, l.warnings...)
		b.next.clusters, b.next.clusterList = p.clusters, l
		return nil
	}
	mark := len(b.out.Warnings)
	b.out.Clusters = make([]*clusterv3.Cluster, 0, len(cfg.Clusters))
	b.out.ClusterLoadAssignments = make([]*endpointv3.ClusterLoadAssignment, 0, len(cfg.Clusters))
	b.out.clusterVersions = make(map[proto.Message]string, 2*len(cfg.Clusters))
	b.denied = nil
	for _, c := range cfg.Clusters {
		if err := b.cluster(c); err != nil {
			return err
		}
	}
	b.ingressSalt = b.viaIngressSalt(b.denied)
	if b.next != nil {
		b.next.clusterList = &clusterList{
			in: cfg.Clusters, ingress: b.ingressHash, viaNames: b.viaIngressNames, denied: b.denied, clusters: slices.Clone(b.out.Clusters), clas: slices.Clone(b.out.ClusterLoadAssignments),
			versions: b.out.clusterVersions, warnings: b.warningsSince(mark),
			names: b.clusterNames, invalid: b.invalidBackend,
		}
	}
	return nil
}

// cluster emits the EDS Cluster and the ClusterLoadAssignment of one IR
// cluster. Each is reused from the previous translation while what it is
// built from (the settings, the endpoints) is unchanged, so an endpoint
// change builds one ClusterLoadAssignment.
func (b *builder) cluster(c *ir.Cluster) error {
	settings, endpoints := b.hashes.Cluster(c)
	if b.egressEnforced() {
		// The endpoints are filtered by the ingress endpoint's egress.
		endpoints = mixHash(endpoints, b.ingressHash)
	}
	m := &clusterMemo{settings: settings, endpoints: endpoints}
	prev := b.prev.cluster(c.Name)
	if prev != nil && prev.settings == settings && prev.endpoints == endpoints {
		m = prev
	} else {
		mark := len(b.out.Warnings)
		name := b.clusterNames[c.Name]
		if prev != nil && prev.settings == settings {
			m.cluster, m.version = prev.cluster, prev.version
		} else {
			out, err := b.buildCluster(c, name)
			if err != nil {
				return err
			}
			m.cluster, m.version = out, versionString(b.ver.start("cluster").hash(settings).sum())
		}
		cla, err := b.loadAssignment(c, name, false)
		if err != nil {
			return err
		}
		m.cla, m.claVersion = cla, versionString(b.ver.start("cluster load assignment").hash(endpoints).sum())
		if b.egressEnforced() {
			if err := b.viaIngressCluster(c, m, prev); err != nil {
				return err
			}
		}
		// Only the endpoints warn.
		m.warnings = b.warningsSince(mark)
	}
	b.out.Clusters = append(b.out.Clusters, m.cluster)
	b.out.ClusterLoadAssignments = append(b.out.ClusterLoadAssignments, m.cla)
	b.out.clusterVersions[m.cluster] = m.version
	b.out.clusterVersions[m.cla] = m.claVersion
	if m.via != nil {
		b.out.Clusters = append(b.out.Clusters, m.via)
		b.out.ClusterLoadAssignments = append(b.out.ClusterLoadAssignments, m.viaCLA)
		b.out.clusterVersions[m.via] = m.viaVersion
		b.out.clusterVersions[m.viaCLA] = m.viaCLAVersion
	}
	if m.denied {
		if b.denied == nil {
			b.denied = make(map[string]bool)
		}
		b.denied[c.Name] = true
	}
	if m == prev {
		b.out.Warnings = append(b.out.Warnings, m.warnings...)
	}
	b.next.put(c.Name, m)
	return nil
}

// buildCluster builds and validates the Cluster of an IR cluster, from its
// settings.
func (b *builder) buildCluster(c *ir.Cluster, name string) (*clusterv3.Cluster, error) {
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	sh := b.clusterShared()
	connect := sh.defaultTimeout
	if timeout != defaultConnectTimeout {
		connect = durationpb.New(timeout)
	}
	// The cluster and its EDS settings in one allocation: clusters come
	// by the thousand.
	blk := new(struct {
		cluster clusterv3.Cluster
		eds     clusterv3.Cluster_EdsClusterConfig
	})
	blk.eds.EdsConfig, blk.eds.ServiceName = sh.edsSource, name
	out := &blk.cluster
	out.Name = name
	out.ClusterDiscoveryType = sh.discovery
	out.EdsClusterConfig = &blk.eds
	out.ConnectTimeout = connect
	out.LbPolicy = lbPolicy(c.LBPolicy)
	out.CircuitBreakers = sh.limits.CircuitBreakers
	out.PerConnectionBufferLimitBytes = sh.limits.PerConnectionBufferLimitBytes
	// TCP and UDP clusters relay bytes: no HTTP protocol options.
	if c.Protocol != ir.ProtocolTCP && c.Protocol != ir.ProtocolUDP {
		opts, err := b.httpProtocolOptions(name, c.Protocol == ir.ProtocolH2C)
		if err != nil {
			return nil, err
		}
		out.TypedExtensionProtocolOptions = opts
	}
	if c.UpstreamTLS != nil {
		ts, err := upstreamTLS(name, c.UpstreamTLS)
		if err != nil {
			return nil, err
		}
		out.TransportSocket = ts
	}
	if c.UpstreamMark != 0 {
		out.UpstreamBindConfig = markBind(c.UpstreamMark, "upstream mark: the identity the proxy connects for")
		if c.UpstreamSource != "" {
			out.UpstreamBindConfig.SourceAddress.Address = c.UpstreamSource
		}
	}
	if err := checked("cluster", name, out); err != nil {
		return nil, err
	}
	return out, nil
}

func lbPolicy(p ir.LBPolicy) clusterv3.Cluster_LbPolicy {
	switch p {
	case ir.LBRandom:
		return clusterv3.Cluster_RANDOM
	case ir.LBLeastRequest:
		return clusterv3.Cluster_LEAST_REQUEST
	default:
		return clusterv3.Cluster_ROUND_ROBIN
	}
}

// adsConfigSource says "over the same ADS stream, v3 API": how every
// dynamic reference (RDS, EDS, SDS) is resolved.
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
