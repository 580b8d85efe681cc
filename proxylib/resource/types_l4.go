package resource

import "time"

// TCPWeightedCluster is one entry of tcp_proxy's weighted_clusters.
type TCPWeightedCluster struct {
	Name   string
	Weight uint32
}

// Transport protocols a connection is detected as, the values
// filter_chain_match.transport_protocol compares with: the tls_inspector
// sets "tls" for a ClientHello, and any other connection keeps Envoy's
// default "raw_buffer".
const (
	TransportTLS       = "tls"
	TransportRawBuffer = "raw_buffer"
)

// TLSInspector is the decoded tls_inspector listener filter.
type TLSInspector struct {
	// MaxClientHello bounds the bytes peeked for a ClientHello
	// (max_client_hello_size, default 16 KiB); InitialRead is the first
	// read's size (initial_read_buffer_size, default MaxClientHello).
	MaxClientHello uint32
	InitialRead    uint32
	// CloseOnParseError closes a connection whose first bytes are not a
	// parsable ClientHello instead of serving it as plain text
	// (close_connection_on_client_hello_parsing_errors).
	CloseOnParseError bool
}

// Envoy's tls_inspector limit of a ClientHello and the default of
// listener_filters_timeout.
const (
	DefaultMaxClientHello         = 16 << 10
	DefaultListenerFiltersTimeout = 15 * time.Second
)

// UDPProxy is a decoded udp_proxy listener filter (UdpProxyConfig).
type UDPProxy struct {
	StatPrefix string
	// Cluster is the route's cluster: the deprecated cluster field or
	// the matcher's on_no_match action.
	Cluster string
	// IdleTimeout ends a session without datagrams either way (default
	// 60 s, Envoy's).
	IdleTimeout time.Duration
	// MaxRxDatagramSize bounds a datagram read from an upstream
	// (upstream_socket_config.max_rx_datagram_size, default 1500).
	MaxRxDatagramSize uint32
}

// DefaultUDPIdleTimeout is udp_proxy's default idle_timeout.
const DefaultUDPIdleTimeout = time.Minute

// DefaultMaxRxDatagramSize is Envoy's default max_rx_datagram_size of a
// UDP listener (downstream) and of the proxy's upstream sockets: a larger
// datagram is truncated to it and dropped.
const DefaultMaxRxDatagramSize = 1500

// UDPListener is what a listener bound to a UDP address carries: its
// udp_proxy filter and receive datagram bound.
type UDPListener struct {
	Proxy *UDPProxy
	// MaxRxDatagramSize is udp_listener_config.downstream_socket_config's
	// max_rx_datagram_size (default 1500).
	MaxRxDatagramSize uint32
}
