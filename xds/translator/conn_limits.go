package translator

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Downstream limits and timeouts written on every listener and connection
// manager, so that what a client may hold is stated in the configuration
// rather than left to a proxy's defaults. The package comment says why
// each value was chosen.
const (
	listenerBufferLimit   = 32 << 10
	maxRequestHeadersKB   = 60
	maxHeadersCount       = 100
	idleTimeout           = time.Hour
	streamIdleTimeout     = 5 * time.Minute
	requestHeadersTimeout = 10 * time.Second
)

// limitListener sets the listener's per-connection buffer limit.
func limitListener(l *listenerv3.Listener) {
	l.PerConnectionBufferLimitBytes = wrapperspb.UInt32(listenerBufferLimit)
}

// limitHCM sets the connection manager's head limits and timeouts.
func limitHCM(h *hcmv3.HttpConnectionManager) {
	h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{
		IdleTimeout:     durationpb.New(idleTimeout),
		MaxHeadersCount: wrapperspb.UInt32(maxHeadersCount),
	}
	h.MaxRequestHeadersKb = wrapperspb.UInt32(maxRequestHeadersKB)
	h.StreamIdleTimeout = durationpb.New(streamIdleTimeout)
	h.RequestHeadersTimeout = durationpb.New(requestHeadersTimeout)
}
