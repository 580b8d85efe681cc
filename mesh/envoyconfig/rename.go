package envoyconfig

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Well-known names of the extensions whose configuration refers to other
// resources by name, or that Envoy finds by name alone.
const (
	filterHCM      = "envoy.filters.network.http_connection_manager"
	filterTCPProxy = "envoy.filters.network.tcp_proxy"
	filterRouter   = "envoy.filters.http.router"
	socketTLS      = "envoy.transport_sockets.tls"
)

// renamer qualifies the names of one config's resources and every
// reference between them, so that resources of different configs, and
// the translators' own, can never share a name (see doc.go, Names).
type renamer struct {
	prefix string
	// refs records what the resources refer to, by type URL and the
	// user's name, so dangling references can be refused.
	refs map[string][]string
	// eds maps the EDS service name a cluster asks for to the name of
	// the ClusterLoadAssignment that answers it: a qualified name for one
	// of the config's own, the Service's EDS name as is for a Service.
	eds func(name string) (string, error)
	// builtin says a reference names a resource the proxy defines itself
	// (resource.AdminClusterName, when the config has no cluster of that
	// name): it is left as is and not recorded.
	builtin func(url, name string) bool
}

func (n *renamer) q(name string) string { return n.prefix + name }

// ref qualifies a reference to a resource of type url and records it.
func (n *renamer) ref(url, name string) string {
	if n.builtin != nil && n.builtin(url, name) {
		return name
	}
	if n.refs == nil {
		n.refs = map[string][]string{}
	}
	n.refs[url] = append(n.refs[url], name)
	return n.q(name)
}

func (n *renamer) listener(l *listenerv3.Listener) error {
	l.Name = n.q(l.GetName())
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(chains[:len(chains):len(chains)], dc)
	}
	for i, fc := range chains {
		for j, f := range fc.GetFilters() {
			if err := n.networkFilter(f); err != nil {
				return fmt.Errorf("filter_chains[%d].filters[%d]: %w", i, j, err)
			}
		}
		if err := n.transportSocket(fc.GetTransportSocket(), false); err != nil {
			return fmt.Errorf("filter_chains[%d].transport_socket: %w", i, err)
		}
	}
	return nil
}

// networkFilter rewrites the references of the filters that name other
// resources. Others are left alone; whether the proxy runs them is the
// proxy's check to make.
func (n *renamer) networkFilter(f *listenerv3.Filter) error {
	tc := f.GetTypedConfig()
	switch {
	case tc.MessageIs(&hcmv3.HttpConnectionManager{}) || (tc == nil && f.GetName() == filterHCM):
		if tc == nil {
			return fmt.Errorf("%s without typed_config", f.GetName())
		}
		var h hcmv3.HttpConnectionManager
		if err := tc.UnmarshalTo(&h); err != nil {
			return fmt.Errorf("typed_config: %w", err)
		}
		if rds := h.GetRds(); rds != nil {
			rds.RouteConfigName = n.ref(typeRoutes, rds.GetRouteConfigName())
			if rds.GetConfigSource() == nil {
				rds.ConfigSource = ads()
			}
		}
		if rc := h.GetRouteConfig(); rc != nil {
			n.routes(rc, false)
		}
		for _, hf := range h.GetHttpFilters() {
			// Envoy finds the router by its name when it has no
			// configuration (Cilium's examples rely on it); say so
			// explicitly, which is what Envoy does.
			if hf.GetName() == filterRouter && hf.GetConfigType() == nil {
				r, _ := anypb.New(&routerv3.Router{})
				hf.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: r}
			}
		}
		return repack(f, &h)
	case tc.MessageIs(&tcpv3.TcpProxy{}):
		var t tcpv3.TcpProxy
		if err := tc.UnmarshalTo(&t); err != nil {
			return fmt.Errorf("typed_config: %w", err)
		}
		if c := t.GetCluster(); c != "" {
			t.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: n.ref(typeCluster, c)}
		}
		for _, w := range t.GetWeightedClusters().GetClusters() {
			w.Name = n.ref(typeCluster, w.GetName())
		}
		return repack(f, &t)
	}
	return nil
}

func repack(f *listenerv3.Filter, m proto.Message) error {
	a, err := anypb.New(m)
	if err != nil {
		return fmt.Errorf("encoding typed_config: %w", err)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	return nil
}

// transportSocket qualifies the SDS secret names a TLS context names.
func (n *renamer) transportSocket(ts *corev3.TransportSocket, upstream bool) error {
	tc := ts.GetTypedConfig()
	if tc == nil {
		return nil
	}
	switch {
	case tc.MessageIs(&tlsv3.DownstreamTlsContext{}):
		var d tlsv3.DownstreamTlsContext
		if err := tc.UnmarshalTo(&d); err != nil {
			return fmt.Errorf("typed_config: %w", err)
		}
		n.tlsContext(d.GetCommonTlsContext())
		a, err := anypb.New(&d)
		if err != nil {
			return err
		}
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
	case tc.MessageIs(&tlsv3.UpstreamTlsContext{}):
		var u tlsv3.UpstreamTlsContext
		if err := tc.UnmarshalTo(&u); err != nil {
			return fmt.Errorf("typed_config: %w", err)
		}
		n.tlsContext(u.GetCommonTlsContext())
		a, err := anypb.New(&u)
		if err != nil {
			return err
		}
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: a}
	}
	return nil
}

func (n *renamer) tlsContext(c *tlsv3.CommonTlsContext) {
	for _, s := range c.GetTlsCertificateSdsSecretConfigs() {
		s.Name = n.ref(typeSecret, s.GetName())
	}
	if s := c.GetValidationContextSdsSecretConfig(); s != nil {
		s.Name = n.ref(typeSecret, s.GetName())
	}
}

// routes qualifies a route configuration's name (unless it is inline in
// a listener, where it has no name of its own to clash) and the clusters
// its routes forward to.
func (n *renamer) routes(rc *routev3.RouteConfiguration, named bool) {
	if named {
		rc.Name = n.q(rc.GetName())
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			a := r.GetRoute()
			if a == nil {
				continue
			}
			if c := a.GetCluster(); c != "" {
				a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: n.ref(typeCluster, c)}
			}
			for _, w := range a.GetWeightedClusters().GetClusters() {
				w.Name = n.ref(typeCluster, w.GetName())
			}
			for _, m := range a.GetRequestMirrorPolicies() {
				m.Cluster = n.ref(typeCluster, m.GetCluster())
			}
		}
	}
}

// cluster qualifies a cluster's name and points an EDS cluster at the
// endpoints it asks for: its eds_cluster_config.service_name, or, as in
// Envoy, its own name when that is unset.
func (n *renamer) cluster(c *clusterv3.Cluster) error {
	orig := c.GetName()
	c.Name = n.q(orig)
	if c.GetType() == clusterv3.Cluster_EDS {
		if c.EdsClusterConfig == nil {
			c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{}
		}
		want := c.EdsClusterConfig.GetServiceName()
		if want == "" {
			want = orig
		}
		name, err := n.eds(want)
		if err != nil {
			return err
		}
		c.EdsClusterConfig.ServiceName = name
		if c.EdsClusterConfig.GetEdsConfig() == nil {
			c.EdsClusterConfig.EdsConfig = ads()
		}
	}
	if la := c.GetLoadAssignment(); la != nil {
		la.ClusterName = c.GetName()
	}
	return n.transportSocket(c.GetTransportSocket(), true)
}

func (n *renamer) endpoints(cla *endpointv3.ClusterLoadAssignment) {
	cla.ClusterName = n.q(cla.GetClusterName())
}

func (n *renamer) secret(s *tlsv3.Secret) { s.Name = n.q(s.GetName()) }

// ads is the config source of everything this agent serves: the
// proxy's aggregated stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// Type URLs references are recorded under.
const (
	typeRoutes  = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeCluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeSecret  = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)
