package envoyconfig

import (
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	origsrcv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
)

// Socket option numbers of SO_MARK (Linux).
const (
	solSocket = 1
	soMark    = 36
)

// withUpstreamMark makes every upstream connection of c carry mark
// (Options.UpstreamMark). A mark is how the datapath learns who the proxy
// connects for and whether a policy listener judged the connection
// already, so a config may not set one of its own: it could claim the
// policy listeners' mark and skip a backend's L7 rules, or another
// identity. Such a cluster is refused, and so is one binding its
// upstream connections to a chosen source address.
func withUpstreamMark(c *clusterv3.Cluster, mark uint32) error {
	b := c.GetUpstreamBindConfig()
	for i, o := range b.GetSocketOptions() {
		if o.GetLevel() == solSocket && o.GetName() == soMark {
			return fmt.Errorf("upstream_bind_config.socket_options[%d]: SO_MARK is set by the agent on this node (the datapath reads it as the proxy's identity)", i)
		}
	}
	// The datapath judges a connection marked without an identity by its
	// source address: an address of the config's choice (a Pod's, bound
	// with IP_TRANSPARENT) would be judged as that Pod.
	if sa := b.GetSourceAddress(); sa != nil {
		if a, err := netip.ParseAddr(sa.GetAddress()); err != nil || !a.IsUnspecified() || sa.GetPortValue() != 0 {
			return fmt.Errorf("upstream_bind_config.source_address %s:%d: only 0.0.0.0 or :: with port 0 on this node (the datapath judges the proxy's upstream connections by their source address)", sa.GetAddress(), sa.GetPortValue())
		}
	}
	if b == nil {
		b = &corev3.BindConfig{SourceAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{}}}
		c.UpstreamBindConfig = b
	}
	b.SocketOptions = append(b.SocketOptions, &corev3.SocketOption{
		Description: "routing listener mark: the backend's ingress policy, L7 included, still applies",
		Level:       solSocket,
		Name:        soMark,
		Value:       &corev3.SocketOption_IntValue{IntValue: int64(mark)},
		State:       corev3.SocketOption_STATE_PREBIND,
	})
	return nil
}

// checkOriginalSrcMark refuses a listener whose own original_src filter
// sets a mark, for the reason withUpstreamMark gives; an original_src
// without one gets mark, so the connections it opens from a client's
// address carry the same mark as the cluster's others.
func checkOriginalSrcMark(l *listenerv3.Listener, mark uint32) error {
	for i, f := range l.GetListenerFilters() {
		if f.GetTypedConfig().GetTypeUrl() != typeOriginalSrc {
			continue
		}
		var os origsrcv3.OriginalSrc
		if err := f.GetTypedConfig().UnmarshalTo(&os); err != nil {
			return fmt.Errorf("listener_filters[%d]: decoding original_src: %w", i, err)
		}
		if os.GetMark() != 0 {
			return fmt.Errorf("listener_filters[%d]: original_src mark is set by the agent on this node (the datapath reads it as the proxy's identity)", i)
		}
		os.Mark = mark
		if err := f.GetTypedConfig().MarshalFrom(&os); err != nil {
			return fmt.Errorf("listener_filters[%d]: encoding original_src: %w", i, err)
		}
	}
	return nil
}
