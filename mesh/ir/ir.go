package ir

import "time"

// Config is the complete L7 configuration for one node.
type Config struct {
	Listeners []*Listener `json:"listeners,omitempty"`
	Clusters  []*Cluster  `json:"clusters,omitempty"`
	Secrets   []*Secret   `json:"secrets,omitempty"`
	// Policy is the L7 network policy the node proxy enforces (policy.go);
	// nil when no policy needs the proxy.
	Policy *Policy `json:"policy,omitempty"`
	// IngressPolicy is the policy of the node's ingress endpoint, which
	// the Gateway and Ingress listeners enforce (ingresspolicy.go); nil
	// when no policy selects it.
	IngressPolicy *IngressPolicy `json:"ingressPolicy,omitempty"`
	// Resources are Envoy resources users wrote (CiliumEnvoyConfig),
	// already decoded, checked and renamed by their producer
	// (mesh/envoyconfig); consumers deliver them as they are.
	Resources []*Resource `json:"resources,omitempty"`
}

// Listener is one socket the proxy binds (an address and a port) and the
// HTTP servers reachable through it.
type Listener struct {
	// Name is unique among listeners, e.g. "gateway/default/eg/80".
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	// Chains select how a connection is served. A listener holds either one
	// plaintext chain, or one or more TLS chains told apart by SNI (a chain
	// without ServerNames catches SNIs no other chain names).
	Chains []*HTTPChain `json:"chains"`
	// TCPChains forward connections as bytes, without terminating
	// anything. With ServerNames a chain takes the TLS connections whose
	// SNI it names (TLS passthrough) and may share the listener with TLS
	// HTTP chains; without, it takes the connections no other chain
	// names (at most one chain of a listener, HTTP or TCP, has none; a TCP
	// listener is one such chain).
	TCPChains []*TCPChain `json:"tcpChains,omitempty"`
	// PlainAndTLS lets one plaintext HTTP chain (no server names, no
	// source prefixes) share the listener with TLS chains (HTTP or TCP):
	// a connection whose first bytes are a TLS ClientHello is served by
	// the TLS chains, any other by the plaintext one (Envoy's
	// tls_inspector with filter_chain_match.transport_protocol). Ingress
	// host-network listeners serve HTTP and HTTPS on one port this way.
	PlainAndTLS bool `json:"plainAndTLS,omitempty"`
	// UDP, when set, makes this a UDP listener relaying datagrams; it then
	// has no chains, and may share its address and port with a TCP
	// listener.
	UDP *UDPProxy `json:"udp,omitempty"`
	// OriginalSourceMark, when not zero, makes the listener's upstream
	// connections keep the client's address (Envoy's original_src
	// listener filter): they bind it and carry this socket mark, which
	// makes the node's datapath steer the backends' replies to the
	// proxy. Only a producer that knows the datapath does so sets it
	// (GAMMA listeners on an agent with --datapath and
	// --policy-original-source); TCP listeners only.
	OriginalSourceMark uint32 `json:"originalSourceMark,omitempty"`
}

// UDPProxy relays each client's datagrams to one endpoint of a UDP
// cluster, picked (by endpoint weight) at the client's first datagram.
type UDPProxy struct {
	Cluster string `json:"cluster"`
}

// TCPChain relays a connection's bytes to one backend chosen by weight.
type TCPChain struct {
	// Name is unique within its listener, among HTTP and TCP chains.
	Name string `json:"name"`
	// ServerNames are the TLS SNI values this chain takes, as for
	// HTTPChain; empty means every connection.
	ServerNames []string `json:"serverNames,omitempty"`
	// TLS, when set, terminates TLS on this chain and relays the
	// decrypted bytes (Gateway API TLSRoute on a Terminate listener);
	// without it the bytes are relayed as they come (passthrough).
	TLS *TLS `json:"tls,omitempty"`
	// Backends share connections by weight. Their clusters are TCP
	// clusters; a backend without a cluster (unresolved) gets its share of
	// connections closed. Header edits do not apply.
	Backends []*WeightedBackend `json:"backends"`
}

// HTTPChain is one HTTP server on a listener: optional TLS termination and
// the route table requests are matched against.
type HTTPChain struct {
	// Name is unique within its listener.
	Name string `json:"name"`
	// ServerNames are the TLS SNI values this chain answers; exact names or
	// "*.suffix" wildcards. Empty means any.
	ServerNames []string `json:"serverNames,omitempty"`
	// TLS, when set, terminates TLS on this chain.
	TLS *TLS `json:"tls,omitempty"`
	// SourcePrefixes, when set, restrict the chain to connections from
	// these client addresses (CIDR prefixes): among the chains a
	// connection's server name selects, the one with the longest prefix
	// holding the client's address wins, and a chain without prefixes
	// takes the clients no other chain names. Only plaintext chains use
	// them (GAMMA consumer routes, told apart by client namespace).
	SourcePrefixes []string `json:"sourcePrefixes,omitempty"`
	// Routes is the table requests on this chain are matched against.
	Routes *RouteTable `json:"routes"`
	// CORS runs the CORS filter on this chain. Routes of its table may
	// carry a CORS policy only when it is set; it lives on the chain so
	// the chain (an Envoy listener's connection manager) does not depend
	// on its routes' content.
	CORS bool `json:"cors,omitempty"`
}

// TLS describes downstream TLS termination.
type TLS struct {
	// Certificates name Secrets in Config.Secrets; the proxy picks the one
	// matching the client's SNI, else the first.
	Certificates []string `json:"certificates"`
	// ALPN protocols offered, in preference order (e.g. "h2", "http/1.1").
	ALPN []string `json:"alpn,omitempty"`
	// ClientCA, when set, holds the PEM CA certificates client
	// certificates are verified against: clients must present one that
	// chains to them, or the handshake fails.
	ClientCA []byte `json:"clientCA,omitempty"`
	// AllowUnverifiedClients (only with ClientCA) still asks for and
	// verifies a client certificate, but lets clients without one, or
	// with one that fails verification, in (Gateway API's
	// AllowInsecureFallback).
	AllowUnverifiedClients bool `json:"allowUnverifiedClients,omitempty"`
}

// RouteTable is a named set of virtual hosts.
type RouteTable struct {
	// Name is unique among route tables in a Config.
	Name         string         `json:"name"`
	VirtualHosts []*VirtualHost `json:"virtualHosts"`
}

// VirtualHost groups the routes served for a set of domains. Domain
// selection follows Envoy: an exact domain beats the longest "*.suffix"
// wildcard, which beats "*". The Host header's port is ignored.
type VirtualHost struct {
	// Name is unique within its route table.
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	// Routes in precedence order: the first whose Match holds wins.
	Routes []*Route `json:"routes"`
}

// Route is a match and what to do with requests it matches. Exactly one of
// Backends, Redirect and DirectResponse is set.
type Route struct {
	// Name is unique within its virtual host and traces back to the intent
	// it came from, e.g. "httproute/default/foo/rule/0/match/1".
	Name  string `json:"name"`
	Match Match  `json:"match"`

	// Backends forward the request, split by weight.
	Backends []*WeightedBackend `json:"backends,omitempty"`
	// Rewrite changes the forwarded request; only with Backends.
	Rewrite *Rewrite `json:"rewrite,omitempty"`
	// Redirect answers with an HTTP redirect.
	Redirect *Redirect `json:"redirect,omitempty"`
	// DirectResponse answers with a fixed status and body.
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`

	// RequestHeaders edits request headers before forwarding.
	RequestHeaders *HeaderModifier `json:"requestHeaders,omitempty"`
	// ResponseHeaders edits response headers before they reach the client
	// (also applied to redirects and direct responses).
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`

	// Timeout bounds the whole request (0: none).
	Timeout time.Duration `json:"timeout,omitempty"`
	// CORS, when set, applies the Fetch standard's CORS protocol to
	// requests this route matches (CORSPolicy); its chain must have CORS
	// set.
	CORS *CORSPolicy `json:"cors,omitempty"`

	// BackendTimeout bounds each request the proxy sends to a backend for
	// this route, until the backend's response starts (0: none). Without
	// retries there is one such request, so it matters when it is shorter
	// than Timeout; it is never longer than a non-zero Timeout. Only
	// forwarding routes use it.
	BackendTimeout time.Duration `json:"backendTimeout,omitempty"`

	// Retry re-sends a forwarded request whose attempt failed; nil sends
	// each request once. Only forwarding routes use it.
	Retry *RetryPolicy `json:"retry,omitempty"`
	// Mirrors copy each forwarded request (a sample of them) to other
	// clusters; only forwarding routes use them.
	Mirrors []*Mirror `json:"mirrors,omitempty"`
}

// RetryPolicy says when a failed attempt at a backend is tried again. An
// attempt that got no response (the connection could not be made, was
// reset or closed, or BackendTimeout expired before the response started)
// is always retriable; a response is retriable when its status is one of
// Codes. Retries and the back-offs between them stay within the route's
// Timeout.
type RetryPolicy struct {
	// Codes are the response statuses (400-599) that are retried.
	Codes []int `json:"codes,omitempty"`
	// Attempts is how many times a request may be retried; 0 means the
	// proxy's default, one retry.
	Attempts uint32 `json:"attempts,omitempty"`
	// Backoff is the base interval between retries (0: the proxy's
	// default, 25 ms).
	Backoff time.Duration `json:"backoff,omitempty"`
}

// Mirror sends a copy of a forwarded request to a cluster and discards
// the answer; the copy never delays or fails the request.
type Mirror struct {
	// Cluster names a Cluster in Config.Clusters.
	Cluster string `json:"cluster"`
	// Numerator out of Denominator requests are mirrored, picked at
	// random; Denominator 0 mirrors every request. Numerator is at most
	// Denominator.
	Numerator   uint32 `json:"numerator,omitempty"`
	Denominator uint32 `json:"denominator,omitempty"`
}

// Match is a conjunction: every set field must hold.
type Match struct {
	// Path nil matches every path.
	Path *PathMatch `json:"path,omitempty"`
	// Method empty matches every method.
	Method  string        `json:"method,omitempty"`
	Headers []HeaderMatch `json:"headers,omitempty"`
	Query   []QueryMatch  `json:"query,omitempty"`
}

// PathMatchType says how PathMatch.Value is compared with the request path
// (the part before '?').
type PathMatchType string

const (
	// PathExact matches the path byte for byte.
	PathExact PathMatchType = "Exact"
	// PathPrefix matches whole '/'-separated segments: "/foo" matches
	// "/foo", "/foo/" and "/foo/bar" but not "/foobar". Value has no
	// trailing '/' unless it is "/", which matches everything.
	PathPrefix PathMatchType = "Prefix"
	// PathRegex matches an RE2 expression against the whole path.
	PathRegex PathMatchType = "RegularExpression"
)

// PathMatch compares the request path.
type PathMatch struct {
	Type  PathMatchType `json:"type"`
	Value string        `json:"value"`
}

// StringMatchType says how a header or query value is compared.
type StringMatchType string

const (
	// MatchExact compares byte for byte.
	MatchExact StringMatchType = "Exact"
	// MatchRegex matches an RE2 expression against the whole value.
	MatchRegex StringMatchType = "RegularExpression"
)

// HeaderMatch holds when the named request header (case-insensitive name)
// has a value matching Value. With several values (repeated header) they are
// joined with "," before comparing, as Envoy does.
type HeaderMatch struct {
	Name  string          `json:"name"`
	Type  StringMatchType `json:"type"`
	Value string          `json:"value"`
}

// QueryMatch holds when the named query parameter (case-sensitive name; the
// first occurrence) has a value matching Value.
type QueryMatch struct {
	Name  string          `json:"name"`
	Type  StringMatchType `json:"type"`
	Value string          `json:"value"`
}

// CORSPolicy is what a route allows cross-origin requests to do. A request
// with a non-empty Origin header is a CORS request; its origin is allowed
// when one of AllowOrigins matches it. Responses to allowed origins echo the
// origin in access-control-allow-origin (never "*") and carry
// access-control-allow-credentials and access-control-expose-headers as set
// here. A preflight (OPTIONS with Origin and access-control-request-method)
// from an allowed origin is answered by the proxy with 200 and the
// allow-methods, allow-headers and max-age headers; a "*" entry in
// AllowMethods or AllowHeaders echoes what the preflight asked for. A
// preflight from another origin is answered by the proxy too, with 200 and
// no access-control-allow-origin, and never reaches the backend.
type CORSPolicy struct {
	// AllowOrigins match the Origin header as a whole: Exact byte for
	// byte (the value "*" allows every origin), RegularExpression as an
	// RE2 full match. Empty allows no origin.
	AllowOrigins []OriginMatch `json:"allowOrigins,omitempty"`
	// AllowMethods, AllowHeaders and ExposeHeaders are listed, in order,
	// in the response headers of the same names; a list holding "*" is
	// that one entry.
	AllowMethods  []string `json:"allowMethods,omitempty"`
	AllowHeaders  []string `json:"allowHeaders,omitempty"`
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`
	// MaxAge is how long a client may cache a preflight answer, in whole
	// seconds; 0 leaves access-control-max-age out.
	MaxAge time.Duration `json:"maxAge,omitempty"`
	// AllowCredentials sends access-control-allow-credentials: true.
	AllowCredentials bool `json:"allowCredentials,omitempty"`
}

// OriginMatch compares a request's Origin header.
type OriginMatch struct {
	Type  StringMatchType `json:"type"`
	Value string          `json:"value"`
}

// HeaderModifier edits a header block: Set overwrites (or adds), Add appends
// a value (adding the header if absent), Remove deletes by name. Applied in
// the order Remove, Set, Add, matching Gateway API's intent that the three
// lists do not interact.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Header is one header name and value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// WeightedBackend is one destination of a forward and its share of traffic.
type WeightedBackend struct {
	// Cluster names a Cluster in Config.Clusters; empty means the backend
	// could not be resolved and its share is answered with status 500.
	Cluster string `json:"cluster,omitempty"`
	// Weight is relative to the other backends of the route; 0 receives no
	// traffic. If every weight is 0 the route answers 500.
	Weight uint32 `json:"weight"`
	// Headers edited only when this backend is chosen.
	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
}

// PathRewriteType says how a path is replaced.
type PathRewriteType string

const (
	// ReplaceFullPath replaces the whole path (query string kept).
	ReplaceFullPath PathRewriteType = "ReplaceFullPath"
	// ReplacePrefixMatch replaces the part of the path matched by the
	// route's PathPrefix match; the route must have one. Segment rules as in
	// Gateway API: replacing "/foo" with "/" turns "/foo/bar" into "/bar"
	// and "/foo" into "/".
	ReplacePrefixMatch PathRewriteType = "ReplacePrefixMatch"
)

// PathRewrite replaces (part of) the request path.
type PathRewrite struct {
	Type  PathRewriteType `json:"type"`
	Value string          `json:"value"`
}

// Rewrite edits the forwarded request.
type Rewrite struct {
	// Hostname replaces the Host (:authority) header when non-empty.
	Hostname string       `json:"hostname,omitempty"`
	Path     *PathRewrite `json:"path,omitempty"`
}

// Redirect answers with a Location built from the request, changing only
// what is set here. Scheme empty keeps the request's scheme. Port is the
// final port; 0 keeps the request's port. Producers resolve Gateway API's
// port defaulting and set Port explicitly; the Location may then carry the
// scheme's default port (":443" for https), which Envoy does and Gateway API
// conformance accepts.
type Redirect struct {
	Scheme   string       `json:"scheme,omitempty"`
	Hostname string       `json:"hostname,omitempty"`
	Port     uint32       `json:"port,omitempty"`
	Path     *PathRewrite `json:"path,omitempty"`
	// StatusCode is 301, 302, 303, 307 or 308.
	StatusCode int `json:"statusCode"`
}

// DirectResponse answers without contacting a backend.
type DirectResponse struct {
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
}

// AppProtocol is the protocol spoken to a cluster's endpoints.
type AppProtocol string

const (
	// ProtocolHTTP1 is HTTP/1.1 over cleartext TCP.
	ProtocolHTTP1 AppProtocol = "HTTP/1.1"
	// ProtocolH2C is HTTP/2 with prior knowledge over cleartext TCP (gRPC
	// backends, appProtocol kubernetes.io/h2c).
	ProtocolH2C AppProtocol = "h2c"
	// ProtocolTCP relays bytes; only TCP chains use such clusters.
	ProtocolTCP AppProtocol = "TCP"
	// ProtocolUDP relays datagrams; only UDP listeners use such clusters.
	ProtocolUDP AppProtocol = "UDP"
)

// LBPolicy picks an endpoint for each request.
type LBPolicy string

const (
	LBRoundRobin   LBPolicy = "RoundRobin"
	LBRandom       LBPolicy = "Random"
	LBLeastRequest LBPolicy = "LeastRequest"
)

// Cluster is a named group of interchangeable endpoints.
type Cluster struct {
	// Name is unique among clusters, e.g. "service/default/echo/8080".
	Name           string        `json:"name"`
	Protocol       AppProtocol   `json:"protocol"`
	LBPolicy       LBPolicy      `json:"lbPolicy"`
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// UpstreamMark, when not zero, is the SO_MARK the proxy puts on its
	// connections to the endpoints: with the datapath it says on whose
	// behalf the proxy connects (the reserved ingress identity for a
	// Gateway's backends), so backend policy judges that identity instead
	// of the node's.
	UpstreamMark uint32 `json:"upstreamMark,omitempty"`
	// UpstreamSource, when set (with UpstreamMark), is the IP address
	// the proxy binds its connections to the endpoints to: the node's
	// ingress address for a Gateway's backends, which every node's
	// ipcache maps to the ingress identity, so the identity also holds on
	// backends on other nodes, where the mark does not reach.
	UpstreamSource string `json:"upstreamSource,omitempty"`
	// Endpoints may be empty: requests then get 503, as from Envoy.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// UpstreamTLS, when set, makes the proxy speak TLS to the endpoints
	// and verify them; only HTTP clusters (HTTP/1.1, h2c: then HTTP/2 over
	// TLS) take it.
	UpstreamTLS *UpstreamTLS `json:"upstreamTLS,omitempty"`
}

// UpstreamTLS is TLS from the proxy to a cluster's endpoints. It always
// verifies the endpoint: a connection whose certificate does not chain to
// TrustedCA, or carries none of the expected names, fails (fail closed).
type UpstreamTLS struct {
	// SNI is the server name sent in the ClientHello; empty sends none.
	SNI string `json:"sni,omitempty"`
	// TrustedCA holds the PEM certificates an endpoint's chain must lead
	// to; at least one, each of which parses.
	TrustedCA []byte `json:"trustedCA"`
	// SubjectAltNames: the endpoint's certificate must carry at least one
	// of them. Empty means a DNS SAN matching SNI (which must then be set).
	SubjectAltNames []SubjectAltName `json:"subjectAltNames,omitempty"`
	// ClientCertificate, when set, names a Secret in Config.Secrets whose
	// certificate the proxy presents to the endpoints.
	ClientCertificate string `json:"clientCertificate,omitempty"`
}

// SANType is the kind of a subject alternative name.
type SANType string

const (
	// SANDNS is a DNS name; an exact name also matches a certificate's
	// "*.suffix" wildcard covering it with one label, as in Envoy.
	SANDNS SANType = "DNS"
	// SANURI is a URI compared byte for byte (e.g. a SPIFFE ID).
	SANURI SANType = "URI"
)

// SubjectAltName is one name a peer certificate may carry.
type SubjectAltName struct {
	Type  SANType `json:"type"`
	Value string  `json:"value"`
}

// Endpoint is one backend address. Only ready endpoints receive traffic.
type Endpoint struct {
	Address string `json:"address"`
	Port    uint32 `json:"port"`
	Ready   bool   `json:"ready"`
	// Weight is the endpoint's share relative to the cluster's other
	// endpoints; 0 means 1. Producers use it to split one UDP cluster
	// between several backends.
	Weight uint32 `json:"weight,omitempty"`
}

// Secret is a certificate chain and its private key, both PEM.
type Secret struct {
	Name        string `json:"name"`
	Certificate []byte `json:"certificate"`
	PrivateKey  []byte `json:"privateKey"`
}

// Resource types a Resource may have, by their type URL.
const (
	TypeListener              = "type.googleapis.com/envoy.config.listener.v3.Listener"
	TypeRouteConfiguration    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	TypeCluster               = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeClusterLoadAssignment = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeSecret                = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// Resource is one Envoy resource carried verbatim: the IR cannot name
// Envoy's types, so it holds the resource's serialized protobuf. Its
// producer guarantees that Value decodes as TypeURL, names Name, and is
// valid; the IR checks only that names are unique per type and do not
// collide with the names of the IR's own objects.
type Resource struct {
	TypeURL string `json:"typeURL"`
	Name    string `json:"name"`
	// Value is the deterministic protobuf encoding of the resource.
	Value []byte `json:"value"`
	// Bind is "address:port" for a listener (so two listeners never
	// claim one socket), empty otherwise.
	Bind string `json:"bind,omitempty"`
}
