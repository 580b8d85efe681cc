package translator

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// TCP chains (ir.TCPChain: TLS passthrough by SNI, TCP listeners). Each
// becomes a filter chain whose only filter is tcp_proxy: one backend is
// its cluster, several are weighted_clusters (entries of weight 0 left
// out). A backend without a cluster points at the never-defined
// invalid-backend cluster, so its share of connections is closed, as
// Gateway API asks of an invalid backendRef; with no positive weight at
// all every connection is closed the same way. A chain with server names
// matches them by SNI (filter_chain_match.server_names) and makes the
// listener run the TLS inspector; without TLS no transport socket is set,
// so the TLS bytes reach the backend untouched (passthrough), and with it
// the chain terminates TLS with a DownstreamTlsContext, as HTTPS chains
// do, and relays the decrypted bytes (TLSRoute on a Terminate listener).

// tcpChain builds the filter chain of one TCP chain.
func (b *builder) tcpChain(l *ir.Listener, ch *ir.TCPChain, names []string) (*listenerv3.FilterChain, error) {
	tp := &tcpproxyv3.TcpProxy{StatPrefix: statSafe(l.Name) + "." + statSafe(ch.Name)}
	var weighted []*tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight
	for _, be := range ch.Backends {
		if be.Weight == 0 {
			continue
		}
		name := b.invalidBackend
		if be.Cluster != "" {
			name = b.clusterNames[be.Cluster]
		}
		weighted = append(weighted, &tcpproxyv3.TcpProxy_WeightedCluster_ClusterWeight{Name: name, Weight: be.Weight})
	}
	switch len(weighted) {
	case 0:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: b.invalidBackend}
	case 1:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_Cluster{Cluster: weighted[0].Name}
	default:
		tp.ClusterSpecifier = &tcpproxyv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpproxyv3.TcpProxy_WeightedCluster{Clusters: weighted}}
	}
	cfg, err := typedConfig("listener", listenerName(l), tp)
	if err != nil {
		return nil, err
	}
	fc := &listenerv3.FilterChain{Name: envoyName(ch.Name), Filters: []*listenerv3.Filter{{
		Name: filterTCPProxy, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg},
	}}}
	if b.ingressEnforced() && isIngressListener(l) {
		// world → ingress: the client is judged before tcp_proxy dials.
		rbac, err := ingressNetworkRBACFilter(listenerName(l), tp.StatPrefix, &b.cfg.IngressPolicy.Ingress, l.Port)
		if err != nil {
			return nil, err
		}
		fc.Filters = append([]*listenerv3.Filter{rbac}, fc.Filters...)
	}
	if len(names) > 0 {
		fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: names}
	}
	return fc, nil
}

// tcpUsesInvalid reports whether a TCP chain of l names the invalid-backend
// cluster, whose name the listener's output then depends on.
func tcpUsesInvalid(l *ir.Listener) bool {
	for _, ch := range l.TCPChains {
		positive := false
		for _, be := range ch.Backends {
			if be.Weight == 0 {
				continue
			}
			positive = true
			if be.Cluster == "" {
				return true
			}
		}
		if !positive {
			return true
		}
	}
	return false
}
