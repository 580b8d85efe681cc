package bootstrap

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// XDSCluster is the name of the static cluster that reaches the agent.
const XDSCluster = "nodemesh-xds"

// Defaults of Options.
const (
	DefaultXDSSocket    = "/var/run/nodemesh/xds.sock"
	DefaultCluster      = "nodemesh"
	DefaultAdminAddress = "127.0.0.1:9901"
)

// Options are the inputs of a bootstrap. Zero values take the defaults
// above, except NodeID, which is required.
type Options struct {
	// NodeID is the node id Envoy reports (the Kubernetes node name, as the
	// builtin proxy's --node-id).
	NodeID string
	// Cluster is the node's service cluster.
	Cluster string
	// XDSSocket is the absolute path of the agent's xDS Unix socket.
	XDSSocket string
	// AdminAddress is host:port of Envoy's admin endpoint; the host must
	// be a loopback address.
	AdminAddress string
	// ConnectTimeout bounds connecting to the agent (default 1s).
	ConnectTimeout time.Duration
}

// New returns the validated bootstrap for o.
func New(o Options) (*bootstrapv3.Bootstrap, error) {
	if o.NodeID == "" {
		return nil, errors.New("building bootstrap: node id is required")
	}
	if strings.ContainsAny(o.NodeID, " \t\n") {
		return nil, fmt.Errorf("building bootstrap: node id %q contains white space", o.NodeID)
	}
	if o.Cluster == "" {
		o.Cluster = DefaultCluster
	}
	if o.XDSSocket == "" {
		o.XDSSocket = DefaultXDSSocket
	}
	if !filepath.IsAbs(o.XDSSocket) {
		return nil, fmt.Errorf("building bootstrap: xDS socket %q is not an absolute path", o.XDSSocket)
	}
	if o.AdminAddress == "" {
		o.AdminAddress = DefaultAdminAddress
	}
	admin, err := netip.ParseAddrPort(o.AdminAddress)
	if err != nil {
		return nil, fmt.Errorf("building bootstrap: parsing admin address: %w", err)
	}
	if !admin.Addr().IsLoopback() {
		return nil, fmt.Errorf("building bootstrap: admin address %s is not a loopback address", admin)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = time.Second
	}
	if o.ConnectTimeout < 0 {
		return nil, fmt.Errorf("building bootstrap: negative connect timeout %s", o.ConnectTimeout)
	}

	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building bootstrap: %w", err)
	}
	ads := &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
	b := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: o.NodeID, Cluster: o.Cluster},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:                   corev3.ApiConfigSource_GRPC,
				TransportApiVersion:       corev3.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster},
					},
				}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{{
				Name:                 XDSCluster,
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
				ConnectTimeout:       durationpb.New(o.ConnectTimeout),
				TypedExtensionProtocolOptions: map[string]*anypb.Any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2,
				},
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					ClusterName: XDSCluster,
					Endpoints: []*endpointv3.LocalityLbEndpoints{{
						LbEndpoints: []*endpointv3.LbEndpoint{{
							HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
								Address: &corev3.Address{Address: &corev3.Address_Pipe{
									Pipe: &corev3.Pipe{Path: o.XDSSocket},
								}},
							}},
						}},
					}},
				},
			}},
		},
		Admin: &bootstrapv3.Admin{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address:       admin.Addr().String(),
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(admin.Port())},
			}}},
		},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validating bootstrap: %w", err)
	}
	return b, nil
}
