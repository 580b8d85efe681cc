package translator

import (
	"time"

	xdscorev3 "github.com/cncf/xds/go/xds/core/v3"
	xdsmatcherv3 "github.com/cncf/xds/go/xds/type/matcher/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	udpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/udp/udp_proxy/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// UDP listeners (ir.Listener.UDP): a listener with a UDP socket address, no
// filter chains and the UDP proxy as its one listener filter, routing
// every datagram through a matcher whose only content is the on_no_match
// action Route{cluster} (the deprecated cluster field is not used).
// idle_timeout is written out at Envoy's default, 60 s: a client's session
// ends after that long without a datagram either way. Weights between
// backends are the endpoints' load_balancing_weight in the cluster.

// udpIdleTimeout is Envoy's default UdpProxyConfig.idle_timeout.
const udpIdleTimeout = 60 * time.Second

// udpListener builds the Listener of a UDP IR listener.
func (b *builder) udpListener(l *ir.Listener, name string, addr string) (*listenerv3.Listener, error) {
	route, err := typedConfig("listener", name, &udpproxyv3.Route{Cluster: b.clusterNames[l.UDP.Cluster]})
	if err != nil {
		return nil, err
	}
	cfg, err := typedConfig("listener", name, &udpproxyv3.UdpProxyConfig{
		StatPrefix:  statSafe(l.Name),
		IdleTimeout: durationpb.New(udpIdleTimeout),
		RouteSpecifier: &udpproxyv3.UdpProxyConfig_Matcher{Matcher: &xdsmatcherv3.Matcher{
			OnNoMatch: &xdsmatcherv3.Matcher_OnMatch{OnMatch: &xdsmatcherv3.Matcher_OnMatch_Action{
				Action: &xdscorev3.TypedExtensionConfig{Name: udpRouteAction, TypedConfig: route},
			}},
		}},
	})
	if err != nil {
		return nil, err
	}
	sa := socketAddress(addr, l.Port)
	sa.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
	out := &listenerv3.Listener{Name: name, Address: sa, ListenerFilters: []*listenerv3.ListenerFilter{{
		Name: filterUDPProxy, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: cfg},
	}}}
	// Limits are stated on every listener; UDP sockets do not use them.
	limitListener(out)
	if err := checked("listener", name, out); err != nil {
		return nil, err
	}
	b.out.Listeners = append(b.out.Listeners, out)
	return out, nil
}
