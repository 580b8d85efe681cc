package translator

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/nodemesh/nodemesh/mesh/ir"
)

// httpConnectionManager is the HTTP server of one chain. Its routes come
// over RDS so a route change never touches (or drains) the listener.
//
// Defaults chosen for an edge/mesh proxy: the codec is negotiated (AUTO:
// HTTP/1.1, or HTTP/2 by ALPN or prior knowledge), the peer address is the
// client address (use_remote_address, no trusted XFF hops), and paths are
// normalised before matching (setPathNormalization). WebSocket upgrades
// pass through (upgrade_configs); other upgrades are refused. HTTP/2
// settings are written out (http2Options) rather than left to Envoy's
// defaults, which bound nothing; so are head limits and timeouts
// (conn_limits.go).
func (b *builder) httpConnectionManager(l *ir.Listener, ch *ir.HTTPChain) (*anypb.Any, error) {
	name := listenerName(l)
	router, err := typedConfig("listener", name, &routerv3.Router{})
	if err != nil {
		return nil, err
	}
	// Gateway chains have no filter but the router and, where routes carry
	// CORS policies, the CORS filter (httpfilters.go orders them).
	filters := []httpFilter{routerFilter(router)}
	if ch.CORS {
		cors, err := corsFilter(name)
		if err != nil {
			return nil, err
		}
		filters = append(filters, cors)
	}
	if b.ingressEnforced() && isIngressListener(l) {
		rbac, err := ingressRBACFilter(name, &b.cfg.IngressPolicy.Ingress, l.Port)
		if err != nil {
			return nil, err
		}
		filters = append(filters, rbac)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix(l, ch),
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeConfigName(ch.Routes),
			ConfigSource:    adsConfigSource(),
		}},
		HttpFilters: httpFilters(filters),
		// WebSocket upgrades are forwarded on every route, as Envoy
		// Gateway does; CONNECT is not enabled.
		UpgradeConfigs:       []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: upgradeWebSocket}},
		UseRemoteAddress:     wrapperspb.Bool(true),
		Http2ProtocolOptions: http2Options(),
		// A client's x-forwarded-client-cert is removed from every request,
		// on chains that validate client certificates too (strictly or
		// with AllowInsecureFallback): the backend never sees an identity
		// a client made up. SANITIZE is the proto's default; it is named
		// here because choosing a forwarding mode would open that hole.
		ForwardClientCertDetails: hcmv3.HttpConnectionManager_SANITIZE,
	}
	setPathNormalization(hcm)
	limitHCM(hcm)
	return typedConfig("listener", name, hcm)
}

// setPathNormalization sets the path handling of every connection manager
// the translator emits, Gateway and policy listeners alike, so an HTTPRoute
// match, an RBAC path rule and the backend all see one normalised path:
// RFC 3986 normalisation (normalize_path: "%2e%2e" and ".." segments
// removed), merge_slashes ("//admin" is "/admin"), and
// UNESCAPE_AND_REDIRECT for %2F and %5C. These are Envoy Gateway's
// defaults; doc.go says why they were chosen.
func setPathNormalization(h *hcmv3.HttpConnectionManager) {
	h.NormalizePath = wrapperspb.Bool(true)
	h.MergeSlashes = true
	h.PathWithEscapedSlashesAction = hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT
}

// Downstream HTTP/2 settings (see doc.go): Envoy's edge-proxy best
// practices, which Envoy Gateway also emits.
const (
	http2MaxConcurrentStreams        = 100
	http2InitialStreamWindowSize     = 64 << 10
	http2InitialConnectionWindowSize = 1 << 20
)

// http2Options are the downstream HTTP/2 settings of every connection
// manager. A malformed request resets its own stream only
// (override_stream_error_on_invalid_http_message), as RFC 9113 §8.1.1
// asks, instead of Envoy's default of closing the connection with every
// other stream on it.
func http2Options() *corev3.Http2ProtocolOptions {
	return &corev3.Http2ProtocolOptions{
		MaxConcurrentStreams:                    wrapperspb.UInt32(http2MaxConcurrentStreams),
		InitialStreamWindowSize:                 wrapperspb.UInt32(http2InitialStreamWindowSize),
		InitialConnectionWindowSize:             wrapperspb.UInt32(http2InitialConnectionWindowSize),
		OverrideStreamErrorOnInvalidHttpMessage: wrapperspb.Bool(true),
	}
}
