package resource

import (
	"crypto/tls"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/nodemesh/nodemesh/proxylib/header"
)

// Type URLs of the resources the proxy subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Defaults Envoy applies when a field is absent.
const (
	DefaultConnectTimeout    = 5 * time.Second
	DefaultRouteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = time.Hour
	DefaultStreamIdleTimeout = 5 * time.Minute
	DefaultBufferLimit       = 1 << 20
	// Envoy's circuit breaker thresholds (per cluster, priority DEFAULT).
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// HTTP/2 server defaults applied when http2_protocol_options leaves a field
// unset. They deliberately differ from Envoy's (2^31-1 streams, 256 MiB
// windows): Envoy bounds memory with its own watermark buffers, while the
// proxy's HTTP/2 server buffers up to a whole receive window per stream, so
// an unbounded window is an unbounded allocation a client controls. These
// are the values the translator emits on every connection manager (the
// numbers of Envoy's edge-proxy best practices and Envoy Gateway).
const (
	DefaultH2MaxConcurrentStreams        = 100
	DefaultH2InitialStreamWindowSize     = 64 << 10
	DefaultH2InitialConnectionWindowSize = 1 << 20
)

// Request head limits of Envoy's connection manager when unset:
// max_request_headers_kb 60 and common_http_protocol_options
// max_headers_count 100.
const (
	DefaultMaxRequestHeadersBytes = 60 << 10
	DefaultMaxHeadersCount        = 100
)

// maxRequestHeadersKB is Envoy's upper bound on max_request_headers_kb.
const maxRequestHeadersKB = 8192

// Listener is a decoded envoy.config.listener.v3.Listener.
type Listener struct {
	Name         string
	Address      string // "ip:port"
	TLSInspector bool
	// Inspector holds the TLS inspector's settings when TLSInspector.
	Inspector TLSInspector
	// FiltersTimeout bounds the listener filter phase, the ClientHello
	// peek (listener_filters_timeout, default 15 s, 0: none); on expiry
	// the connection is closed unless ContinueOnFiltersTimeout, when it
	// continues as if the inspector found nothing.
	FiltersTimeout           time.Duration
	ContinueOnFiltersTimeout bool
	Chains                   []*FilterChain
	BufferLimit              uint32
	// UDP is set for a listener on a UDP address (socket_address.protocol
	// UDP): it has no filter chains, only its udp_proxy.
	UDP *UDPListener
	// Transparent listeners accept connections for any destination
	// (IP_TRANSPARENT); OriginalDst makes the original destination the
	// connection's local address for matching and ORIGINAL_DST clusters.
	Transparent bool
	OriginalDst bool
	OriginalSrc *OriginalSrc
	// ConntrackMap, when set, is the pinned connection-tracking map the
	// datapath identity listener filter reads each accepted connection's
	// source identity from (see package datapathv1).
	ConntrackMap string
}

// FilterChain is one decoded filter chain with its single HTTP connection
// manager.
type FilterChain struct {
	Name        string
	ServerNames []string // lower-case; "*.suffix" wildcards allowed
	// DestinationPort, when non-zero, restricts the chain to connections
	// to that (original destination) port (filter_chain_match.destination_port).
	DestinationPort uint32
	// SourcePrefixes, when set, restrict the chain to clients whose
	// address one of them holds (filter_chain_match.source_prefix_ranges).
	SourcePrefixes []netip.Prefix
	// TransportProtocol, when set, restricts the chain to connections the
	// TLS inspector detected as "tls" or as "raw_buffer"
	// (filter_chain_match.transport_protocol).
	TransportProtocol string
	TLS               *DownstreamTLS
	// Exactly one of HCM and TCP is set.
	HCM *HCM
	TCP *TCPProxy
	// Key identifies the chain's configuration: two chains with equal keys
	// behave identically, so connections on one may continue on the other.
	Key string
}

// DownstreamTLS is the decoded DownstreamTlsContext.
type DownstreamTLS struct {
	SecretNames []string
	ALPN        []string
	// Validation verifies client certificates (nil: none are requested);
	// RequireClientCert refuses a handshake without one
	// (require_client_certificate).
	Validation        *PeerValidation
	RequireClientCert bool
}

// Secrets returns the SDS names the context references.
func (d *DownstreamTLS) Secrets() []string {
	out := d.SecretNames
	if d.Validation != nil && d.Validation.Secret != "" {
		out = append(out[:len(out):len(out)], d.Validation.Secret)
	}
	return out
}

// Codec is the HCM codec_type.
type Codec uint8

// Codecs.
const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
)

// EscapedSlashesAction is the HCM's path_with_escaped_slashes_action: what
// a request whose path (not query) holds %2F or %5C (any case) gets.
type EscapedSlashesAction uint8

// Escaped-slash actions. IMPLEMENTATION_SPECIFIC_DEFAULT decodes as
// KeepUnchanged, Envoy's default.
const (
	KeepUnchanged EscapedSlashesAction = iota
	RejectRequest
	UnescapeAndRedirect
	UnescapeAndForward
)

// HCM is a decoded HttpConnectionManager.
type HCM struct {
	StatPrefix                string
	Codec                     Codec
	RouteConfigName           string
	UseRemoteAddress          bool
	XFFNumTrustedHops         uint32
	SkipXFFAppend             bool
	StripAnyHostPort          bool
	NormalizePath             bool
	MergeSlashes              bool
	EscapedSlashes            EscapedSlashesAction
	ServerName                string // "envoy" unless configured
	IdleTimeout               time.Duration
	StreamIdleTimeout         time.Duration
	RequestTimeout            time.Duration
	GenerateRequestID         bool
	PreserveExternalRequestID bool
	Upgrades                  map[string]bool // lower-case upgrade types enabled
	// MaxRequestHeadersBytes bounds a request head (max_request_headers_kb
	// × 1024); over HTTP/2 it is SETTINGS_MAX_HEADER_LIST_SIZE.
	MaxRequestHeadersBytes int
	// MaxHeadersCount bounds the fields of a request head
	// (common_http_protocol_options.max_headers_count).
	MaxHeadersCount int
	// HTTP2 holds the downstream HTTP/2 settings (http2_protocol_options).
	HTTP2 H2Options
	// ForwardClientCert is what happens to x-forwarded-client-cert
	// (forward_client_cert_details); ClientCertDetails are the fields
	// APPEND_FORWARD and SANITIZE_SET write (set_current_client_cert_details).
	ForwardClientCert ClientCertMode
	ClientCertDetails ClientCertDetails
	// Filters run before the router, in order.
	Filters    []*HTTPFilter
	LocalReply []*ReplyMapper
	AccessLogs []*AccessLog

	// RequestHeadersTimeout bounds the time from the first byte of a
	// request head to its last (request_headers_timeout; 0, Envoy's
	// default, means none).
	RequestHeadersTimeout time.Duration
	// BufferLimit is the listener's per_connection_buffer_limit_bytes (0:
	// no bound but the proxy's own buffer sizes); it also bounds the
	// request body kept for retries and mirrors.
	BufferLimit uint32
}

// ClientCertMode is the connection manager's forward_client_cert_details.
type ClientCertMode uint8

// x-forwarded-client-cert modes; the zero value is Envoy's default.
const (
	XFCCSanitize          ClientCertMode = iota // remove it
	XFCCForwardOnly                             // forward it as received on mTLS connections
	XFCCAppendForward                           // append this hop's client certificate (mTLS)
	XFCCSanitizeSet                             // replace it by this hop's client certificate (mTLS)
	XFCCAlwaysForwardOnly                       // forward it as received, always
)

// ClientCertDetails are the client certificate fields written into
// x-forwarded-client-cert (Hash always, By for each URI SAN of the
// proxy's own certificate).
type ClientCertDetails struct {
	Subject, Cert, Chain, DNS, URI bool
}

// H2Options are the downstream HTTP/2 settings of a connection manager.
type H2Options struct {
	// MaxConcurrentStreams is advertised in SETTINGS and enforced: a stream
	// over it is refused.
	MaxConcurrentStreams uint32
	// InitialStreamWindowSize and InitialConnectionWindowSize are the
	// receive windows advertised to the client, and so the most request
	// body bytes buffered per stream and per connection.
	InitialStreamWindowSize     uint32
	InitialConnectionWindowSize uint32
	// StreamErrorOnInvalidMessage (override_stream_error_on_invalid_http_message):
	// a malformed request resets only its stream (RST_STREAM PROTOCOL_ERROR);
	// otherwise, as in Envoy by default, the connection is closed with
	// GOAWAY PROTOCOL_ERROR.
	StreamErrorOnInvalidMessage bool
}

// RouteConfig is a decoded RouteConfiguration.
type RouteConfig struct {
	Name         string
	VirtualHosts []*VirtualHost
	// IgnorePort selects virtual hosts by the Host header without its
	// port (ignore_port_in_host_matching); the header itself is untouched.
	IgnorePort bool
}

// VirtualHost is a decoded virtual host.
type VirtualHost struct {
	Name    string
	Domains []string // lower-case
	Routes  []*Route
	// PerFilter is the typed_per_filter_config (nil: none).
	PerFilter PerFilter
}

// PathKind is the route's path specifier.
type PathKind uint8

// Path specifiers.
const (
	PathPrefix PathKind = iota
	PathExact
	PathRegex
	PathSeparatedPrefix
)

// ActionKind is the route's action.
type ActionKind uint8

// Route actions.
const (
	ActionForward ActionKind = iota
	ActionRedirect
	ActionDirect
)

// Route is a decoded route with precompiled matchers.
type Route struct {
	Name      string
	PathKind  PathKind
	PathValue string
	PathRegex *regexp.Regexp // anchored
	Headers   []HeaderMatch
	Query     []QueryMatch

	Action   ActionKind
	Forward  *Forward
	Redirect *Redirect
	Direct   *Direct

	RequestHeaders  header.Mutation
	ResponseHeaders header.Mutation

	// PerFilter is the typed_per_filter_config (nil: none).
	PerFilter PerFilter
}

// StringMatchKind is the rule of a StringMatcher.
type StringMatchKind uint8

// StringMatcher rules. The zero value is exact.
const (
	MatchExact StringMatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchContains
)

// StringMatch is a decoded StringMatcher: exact, prefix, suffix or
// contains (Exact holds the operand; IgnoreCase compares ASCII
// case-insensitively, with Exact lower-cased), or an anchored RE2 when
// Regex is set.
type StringMatch struct {
	Kind       StringMatchKind
	Exact      string
	IgnoreCase bool
	Regex      *regexp.Regexp
	// RegexPrefix is a literal every match of Regex starts with;
	// RegexLiteral says Regex matches exactly RegexPrefix. Both let most
	// mismatches skip the regex engine (policies with many path rules).
	RegexPrefix  string
	RegexLiteral bool
}

// NewRegexMatch returns a matcher for an anchored regular expression.
func NewRegexMatch(re *regexp.Regexp) StringMatch {
	p, complete := re.LiteralPrefix()
	return StringMatch{Regex: re, RegexPrefix: p, RegexLiteral: complete}
}

// Match reports whether v satisfies the matcher.
func (m *StringMatch) Match(v []byte) bool {
	if m.Regex != nil {
		if len(v) < len(m.RegexPrefix) || string(v[:len(m.RegexPrefix)]) != m.RegexPrefix {
			return false
		}
		if m.RegexLiteral {
			return len(v) == len(m.RegexPrefix)
		}
		return m.Regex.Match(v)
	}
	if m.IgnoreCase {
		return m.matchFold(v)
	}
	switch m.Kind {
	case MatchPrefix:
		return len(v) >= len(m.Exact) && string(v[:len(m.Exact)]) == m.Exact
	case MatchSuffix:
		return len(v) >= len(m.Exact) && string(v[len(v)-len(m.Exact):]) == m.Exact
	case MatchContains:
		return strings.Contains(string(v), m.Exact)
	}
	return string(v) == m.Exact
}

func (m *StringMatch) matchFold(v []byte) bool {
	n := len(m.Exact)
	switch m.Kind {
	case MatchPrefix:
		return len(v) >= n && foldEq(v[:n], m.Exact)
	case MatchSuffix:
		return len(v) >= n && foldEq(v[len(v)-n:], m.Exact)
	case MatchContains:
		for i := 0; i+n <= len(v); i++ {
			if foldEq(v[i:i+n], m.Exact) {
				return true
			}
		}
		return false
	}
	return len(v) == n && foldEq(v, m.Exact)
}

// foldEq compares b with the lower-case s, ignoring ASCII case in b.
func foldEq(b []byte, s string) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// HeaderMatchKind says how a header matcher decides.
type HeaderMatchKind uint8

// Header matcher kinds.
const (
	HeaderPresent HeaderMatchKind = iota
	HeaderString
)

// HeaderMatch is a decoded HeaderMatcher.
type HeaderMatch struct {
	Name    string // lower-case; pseudo-headers ":method", ":path", ":authority", ":scheme"
	Kind    HeaderMatchKind
	String  StringMatch
	Present bool
	Invert  bool
}

// QueryMatch is a decoded QueryParameterMatcher.
type QueryMatch struct {
	Name   string
	String *StringMatch // nil: presence only
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	Name            string
	Weight          uint32
	RequestHeaders  header.Mutation
	ResponseHeaders header.Mutation
}

// Forward is a decoded RouteAction.
type Forward struct {
	Cluster       string
	Weighted      []WeightedCluster
	TotalWeight   uint64
	NotFoundCode  int
	PrefixRewrite []byte // nil: none
	RegexRewrite  *regexp.Regexp
	Substitution  []byte // Go regexp template
	HostRewrite   []byte // nil: none
	// Timeout is the route timeout (0: none). PerTryTimeout bounds the
	// upstream attempt until its response starts (0: none); it is 0 when
	// it would not fire before a non-zero Timeout, as Envoy ignores it then.
	Timeout       time.Duration
	PerTryTimeout time.Duration
	// TimeoutMS is x-envoy-expected-rq-timeout-ms, in decimal
	// milliseconds: the per-try timeout if any, else the route timeout;
	// nil when neither is set.
	TimeoutMS []byte
	// Retry is the retry policy (nil: no attempt is retried).
	Retry *RetryPolicy
	// Mirrors are the request_mirror_policies.
	Mirrors []Mirror
}

// Redirect is a decoded RedirectAction.
type Redirect struct {
	Scheme        string
	Host          string
	Port          string // ":8443" or ""
	Path          string
	PathHasQuery  bool
	PrefixRewrite []byte
	RegexRewrite  *regexp.Regexp
	Substitution  []byte
	Code          int
	StripQuery    bool
	HasPrefix     bool // prefix_rewrite was set
}

// Direct is a decoded DirectResponseAction.
type Direct struct {
	Status int
	Body   []byte
}

// LBPolicy is the cluster's load-balancing policy.
type LBPolicy uint8

// Load-balancing policies.
const (
	RoundRobin LBPolicy = iota
	LeastRequest
	Random
)

// AdminClusterName is the cluster the proxy defines itself, never
// published over xDS (a CDS cluster of this name is rejected): its own
// admin endpoint, which serves its Prometheus metrics at Envoy's
// /stats/prometheus. The name is the one Cilium's Envoy bootstrap gives
// its admin cluster, so Envoy configs written for Cilium that route to it
// work unchanged.
const AdminClusterName = "envoy-admin"

// Cluster is a decoded cluster: EDS, STATIC (with its endpoints inline)
// or ORIGINAL_DST (the host is each connection's original destination).
type Cluster struct {
	Name           string
	Kind           ClusterKind
	ServiceName    string // EDS resource name
	ConnectTimeout time.Duration
	LB             LBPolicy
	HTTP2          bool
	// DownstreamProtocol: speak upstream what the downstream spoke (HTTP/2
	// for HTTP/2 requests, HTTP/1.1 otherwise).
	DownstreamProtocol bool
	BufferLimit        uint32
	// IdleTimeout closes a pooled connection without requests for that
	// long (HttpProtocolOptions.common_http_protocol_options.idle_timeout;
	// 0 disables).
	IdleTimeout time.Duration
	Limits      Thresholds // circuit_breakers, priority DEFAULT
	Static      *Endpoints // STATIC clusters
	Bind        *Bind      // nil: no upstream_bind_config
	// TLS, when set, connects to endpoints with TLS (transport_socket
	// UpstreamTlsContext).
	TLS *UpstreamTLS
	// Outlier, when set, ejects endpoints that fail (outlier_detection).
	Outlier *OutlierDetection
}

// Thresholds are a cluster's circuit breaker limits, Envoy's
// CircuitBreakers.Thresholds of priority DEFAULT, with Envoy's defaults for
// unset fields.
type Thresholds struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32 // retries scheduled or in flight at once
}

// DefaultThresholds are Envoy's thresholds for a cluster without
// circuit_breakers.
var DefaultThresholds = Thresholds{
	MaxConnections:     DefaultMaxConnections,
	MaxPendingRequests: DefaultMaxPendingRequests,
	MaxRequests:        DefaultMaxRequests,
	MaxRetries:         DefaultMaxRetries,
}

// Health is an endpoint's EDS health status, reduced to what balancing uses.
type Health uint8

// Endpoint health classes.
const (
	Healthy Health = iota
	Degraded
	Unhealthy
)

// Endpoint is one load-balancing endpoint.
type Endpoint struct {
	Address string // "ip:port"
	Health  Health
	Weight  uint32
}

// Endpoints is a decoded ClusterLoadAssignment.
type Endpoints struct {
	ClusterName string
	Endpoints   []Endpoint
}

// Secret is a decoded SDS Secret: a certificate with its key, or a
// validation context (exactly one is set).
type Secret struct {
	Name        string
	Certificate *tls.Certificate
	Validation  *ValidationContext
}
