package resource

import (
	"crypto/tls"
	"regexp"
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
)

// Listener is a decoded envoy.config.listener.v3.Listener.
type Listener struct {
	Name         string
	Address      string // "ip:port"
	TLSInspector bool
	Chains       []*FilterChain
	BufferLimit  uint32
}

// FilterChain is one decoded filter chain with its single HTTP connection
// manager.
type FilterChain struct {
	Name        string
	ServerNames []string // lower-case; "*.suffix" wildcards allowed
	TLS         *DownstreamTLS
	HCM         *HCM
	// Key identifies the chain's configuration: two chains with equal keys
	// behave identically, so connections on one may continue on the other.
	Key string
}

// DownstreamTLS is the decoded DownstreamTlsContext.
type DownstreamTLS struct {
	SecretNames []string
	ALPN        []string
}

// Codec is the HCM codec_type.
type Codec uint8

// Codecs.
const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
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
	ServerName                string // "envoy" unless configured
	IdleTimeout               time.Duration
	StreamIdleTimeout         time.Duration
	RequestTimeout            time.Duration
	GenerateRequestID         bool
	PreserveExternalRequestID bool
	Upgrades                  map[string]bool // lower-case upgrade types enabled
}

// RouteConfig is a decoded RouteConfiguration.
type RouteConfig struct {
	Name         string
	VirtualHosts []*VirtualHost
}

// VirtualHost is a decoded virtual host.
type VirtualHost struct {
	Name    string
	Domains []string // lower-case
	Routes  []*Route
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
}

// StringMatch is a decoded StringMatcher (exact or anchored RE2).
type StringMatch struct {
	Exact string
	Regex *regexp.Regexp
}

// Match reports whether v satisfies the matcher.
func (m *StringMatch) Match(v []byte) bool {
	if m.Regex != nil {
		return m.Regex.Match(v)
	}
	return string(v) == m.Exact
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
	Timeout       time.Duration
	TimeoutMS     []byte // decimal milliseconds, for x-envoy-expected-rq-timeout-ms
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

// Cluster is a decoded EDS cluster.
type Cluster struct {
	Name           string
	ServiceName    string // EDS resource name
	ConnectTimeout time.Duration
	LB             LBPolicy
	HTTP2          bool
	BufferLimit    uint32
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

// Secret is a decoded TLS certificate secret.
type Secret struct {
	Name        string
	Certificate *tls.Certificate
}
