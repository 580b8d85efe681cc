package resource

import (
	"net/netip"
	"time"
)

// ExtensionConfigType is the type URL of ECDS resources.
const ExtensionConfigType = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"

// Type URLs of the typed configs ECDS may deliver.
const (
	RBACTypeURL        = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	KafkaTypeURL       = "type.googleapis.com/nodemesh.filters.network.kafka.v1.KafkaPolicy"
	HeaderMatchTypeURL = "type.googleapis.com/nodemesh.filters.http.header_match.v1.HeaderMatchPolicy"
)

// ExtensionRef is a filter whose configuration comes from ECDS: the
// TypedExtensionConfig name and the type URLs it may hold.
type ExtensionRef struct {
	Name     string
	TypeURLs []string
}

// Allows reports whether typeURL is one of the accepted types.
func (r *ExtensionRef) Allows(typeURL string) bool {
	for _, t := range r.TypeURLs {
		if t == typeURL {
			return true
		}
	}
	return false
}

// HTTPFilterKind identifies an HTTP filter before the router.
type HTTPFilterKind uint8

// HTTP filters.
const (
	FilterRBAC HTTPFilterKind = iota + 1
	// FilterCORS is Envoy's CORS filter: its policies come from the
	// routes' and virtual hosts' typed_per_filter_config under its name.
	FilterCORS
)

// HTTPFilter is one HTTP filter before the router: its configuration is
// either static (RBAC) or discovered (Discovery).
type HTTPFilter struct {
	Name      string
	Kind      HTTPFilterKind
	RBAC      *RBAC
	Discovery *ExtensionRef
}

// ReplyMapper is a decoded local_reply_config mapper: local replies it
// matches get StatusCode (when non-zero) and Body (when HasBody). It
// matches by response flags (Flags non-nil: any of them) or by status code
// (StatusOp applied to StatusValue; the runtime key is ignored, the proxy
// has no runtime).
type ReplyMapper struct {
	Flags       map[string]bool
	StatusOp    CompareOp
	StatusValue uint32
	StatusCode  int
	Body        []byte
	HasBody     bool
}

// CompareOp is an access-log ComparisonFilter operator.
type CompareOp uint8

// Comparison operators, numbered as in Envoy's API.
const (
	CompareEQ CompareOp = iota
	CompareGE
	CompareLE
	CompareNE
)

// Compare applies the operator: code op value.
func (o CompareOp) Compare(code, value uint32) bool {
	switch o {
	case CompareGE:
		return code >= value
	case CompareLE:
		return code <= value
	case CompareNE:
		return code != value
	}
	return code == value
}

// AccessLogKind says which gRPC access logger a chain uses.
type AccessLogKind uint8

// Access logger kinds.
const (
	AccessLogHTTP AccessLogKind = iota + 1
	AccessLogTCP
)

// Defaults of CommonGrpcAccessLogConfig.
const (
	DefaultALSFlushInterval = time.Second
	DefaultALSBufferBytes   = 16 << 10
)

// AccessLog is a decoded envoy.access_loggers.http_grpc or tcp_grpc
// configuration.
type AccessLog struct {
	Kind          AccessLogKind
	LogName       string
	Cluster       string
	FlushInterval time.Duration
	BufferBytes   uint32
}

// TCPProxy is a decoded tcp_proxy network filter, with the Kafka policy
// filter before it when configured.
type TCPProxy struct {
	StatPrefix string
	// Cluster is the upstream cluster, or "" when Weighted is set: one of
	// weighted_clusters picked per connection in proportion to its weight.
	Cluster     string
	Weighted    []TCPWeightedCluster
	TotalWeight uint64
	// MaxConnectAttempts is how many upstream connects a connection may
	// make, each to a host picked anew (max_connect_attempts, default 1).
	MaxConnectAttempts uint32
	IdleTimeout        time.Duration
	AccessLogs         []*AccessLog
	// BufferLimit is the listener's per_connection_buffer_limit_bytes.
	BufferLimit uint32
	// Kafka is the ECDS reference of the Kafka policy filter, or nil.
	Kafka *ExtensionRef
	// RBAC are the network RBAC filters before tcp_proxy, in order: each
	// judges a connection once, before anything is dialled upstream.
	RBAC []*RBAC
}

// DefaultTCPIdleTimeout is tcp_proxy's default idle_timeout.
const DefaultTCPIdleTimeout = time.Hour

// OriginalSrc is a decoded original_src listener filter: upstream sockets
// bind to the client's address and carry Mark.
type OriginalSrc struct {
	Mark     uint32
	BindPort bool
}

// ClusterKind is the cluster discovery type.
type ClusterKind uint8

// Cluster types.
const (
	ClusterEDS ClusterKind = iota
	ClusterStatic
	ClusterOriginalDst
)

// SocketOption is one upstream socket option set before connect.
type SocketOption struct {
	Level, Name int64
	Int         int64
	Buf         []byte
	IsBuf       bool
}

// Bind is a decoded upstream_bind_config.
type Bind struct {
	// Source, when valid, is the local address upstream sockets bind to.
	Source  netip.AddrPort
	Options []SocketOption
}

// Extension is a decoded TypedExtensionConfig.
type Extension struct {
	Name        string
	TypeURL     string
	RBAC        *RBAC
	Kafka       *KafkaPolicy
	HeaderMatch *HeaderMatchPolicy
}
