package resource

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
)

// listenerAddress returns "ip:port" of a listener's socket address and
// whether it is a UDP one (socket_address.protocol).
func listenerAddress(a *corev3.Address, p path) (string, bool, error) {
	addr, err := ipPort(a, p)
	if err != nil {
		return "", false, err
	}
	// A listener on :: accepts IPv4 too (Go's wildcard sockets are dual
	// stack), which is what ipv4_compat asks for; on any other address
	// Envoy's flag has no meaning.
	if sa := a.GetSocketAddress(); sa.GetIpv4Compat() && netip.MustParseAddrPort(addr).Addr() != netip.IPv6Unspecified() {
		return "", false, fieldErr(append(p, "socket_address", "ipv4_compat"), "only for the address ::")
	}
	switch proto := a.GetSocketAddress().GetProtocol(); proto {
	case corev3.SocketAddress_TCP:
		return addr, false, nil
	case corev3.SocketAddress_UDP:
		if netip.MustParseAddrPort(addr).Port() == 0 {
			return "", false, fieldErr(append(p, "socket_address", "port_value"), "a UDP listener needs a port")
		}
		return addr, true, nil
	default:
		return "", false, fieldErr(append(p, "socket_address", "protocol"), "%s not supported by nodemesh-proxy", proto)
	}
}

// decodeUDPListener decodes the part of a UDP listener the proxy serves:
// exactly one listener filter, the udp_proxy, and no filter chains (they
// are QUIC's).
func decodeUDPListener(l *listenerv3.Listener) (*UDPListener, error) {
	if len(l.GetFilterChains()) > 0 || l.GetDefaultFilterChain() != nil {
		return nil, fieldErr(path{"filter_chains"}, "a UDP listener takes no filter chains (QUIC is not supported by nodemesh-proxy)")
	}
	if l.GetTransparent() != nil && l.GetTransparent().GetValue() {
		return nil, fieldErr(path{"transparent"}, "not supported on UDP listeners by nodemesh-proxy")
	}
	out := &UDPListener{MaxRxDatagramSize: DefaultMaxRxDatagramSize}
	if v := l.GetUdpListenerConfig().GetDownstreamSocketConfig().GetMaxRxDatagramSize(); v != nil {
		out.MaxRxDatagramSize = uint32(v.GetValue())
	}
	lfs := l.GetListenerFilters()
	if len(lfs) != 1 {
		return nil, fieldErr(path{"listener_filters"}, "a UDP listener needs exactly one listener filter, the udp_proxy")
	}
	fp := path{"listener_filters", "[0]", "typed_config"}
	if lfs[0].GetTypedConfig().GetTypeUrl() != "type.googleapis.com/"+udpProxyName {
		return nil, fieldErr(fp, "a UDP listener's filter must be the udp_proxy (%s)", udpProxyName)
	}
	var cfg udpproxyv3.UdpProxyConfig
	if err := lfs[0].GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		return nil, fieldErr(fp, "decoding: %v", err)
	}
	u, err := decodeUDPProxy(&cfg, append(fp, "(UdpProxyConfig)"))
	if err != nil {
		return nil, err
	}
	out.Proxy = u
	return out, nil
}

// decodeUDPProxy takes the route from the deprecated cluster field or
// from a matcher whose only content is an on_no_match action routing to a
// cluster (what Envoy Gateway emits); matcher lists and trees are NACKed
// by the allowlist.
func decodeUDPProxy(c *udpproxyv3.UdpProxyConfig, p path) (*UDPProxy, error) {
	out := &UDPProxy{StatPrefix: c.GetStatPrefix(), Cluster: c.GetCluster(),
		IdleTimeout:       duration(c.GetIdleTimeout(), DefaultUDPIdleTimeout),
		MaxRxDatagramSize: DefaultMaxRxDatagramSize}
	if out.IdleTimeout <= 0 {
		return nil, fieldErr(append(p, "idle_timeout"), "must be positive")
	}
	if v := c.GetUpstreamSocketConfig().GetMaxRxDatagramSize(); v != nil {
		out.MaxRxDatagramSize = uint32(v.GetValue())
	}
	if m := c.GetMatcher(); m != nil {
		mp := append(p, "matcher")
		action := m.GetOnNoMatch().GetAction()
		if action == nil {
			return nil, fieldErr(append(mp, "on_no_match", "action"), "a route action is required")
		}
		var r udpproxyv3.Route
		if err := action.GetTypedConfig().UnmarshalTo(&r); err != nil {
			return nil, fieldErr(append(mp, "on_no_match", "action", "typed_config"), "decoding: %v", err)
		}
		out.Cluster = r.GetCluster()
	}
	if out.Cluster == "" {
		return nil, fieldErr(p, "a cluster is required (cluster, or matcher.on_no_match.action with a Route)")
	}
	return out, nil
}
