// Package proxylib is nodemesh's builtin node proxy: a Go L7 proxy that
// implements a documented subset of Envoy's v3 API with Envoy's semantics,
// so that the xDS configuration nodemesh emits runs unchanged on it and on
// stock Envoy. This comment is the authoritative list of that subset.
//
// # Transport and protocol
//
// One aggregated (ADS) gRPC stream to the xDS server over a Unix socket or
// TCP; state-of-the-world by default, incremental (delta) on request. Node
// id is configurable (default: the host name); node cluster
// "nodemesh-proxy". Listeners and Clusters are wildcard subscriptions;
// RouteConfigurations, ClusterLoadAssignments and Secrets are subscribed by
// the names listeners and clusters reference; TypedExtensionConfigs (ECDS)
// by the names of the filters configured with config_discovery. Every
// config source must be `ads: {}` with `resource_api_version: V3`.
//
// Every response is ACKed or NACKed. A NACK's error_detail names the
// resource and the exact field path, e.g.
//
//	listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).tracing: field not supported by nodemesh-proxy
//
// An update with any invalid resource of a type is rejected as a whole and
// the previous configuration of that type keeps serving. While disconnected
// the proxy keeps serving the last applied configuration and reconnects with
// backoff.
//
// # Resources and fields
//
// Listener: name; address.socket_address{address (an IP literal),
// port_value, protocol (TCP, or UDP: see L4 below), ipv4_compat (only
// with the address "::", whose socket accepts IPv4 as well)};
// listener_filters: the
// TLS inspector{max_client_hello_size, initial_read_buffer_size,
// close_connection_on_client_hello_parsing_errors} (and the policy
// listener filters below); listener_filters_timeout (default 15 s, 0:
// none) and continue_on_listener_filters_timeout; filter_chains
// (at least one) with name, filter_chain_match{destination_port,
// server_names (exact names and "*.suffix" wildcards),
// transport_protocol ("tls" or "raw_buffer"), source_prefix_ranges}
// chosen as Envoy prunes chains: the chains naming
// the connection's (original) destination port if any, else those naming
// no port; among them the exact server name first, then the most
// specific wildcard, then the chains without server_names; among those
// the chains naming the transport protocol the TLS inspector detected
// ("tls" for a ClientHello, "raw_buffer" for anything else, or when the
// filters timeout lets the connection continue), else those naming none;
// among those the chain whose longest source prefix holds the client's address, else
// the chain without source_prefix_ranges (a v4 client on a dual-stack
// socket is matched as v4). No stage falls back to a less specific group
// of an earlier one, and nothing left closes the connection.
// transport_socket DownstreamTlsContext
// (common_tls_context.tls_certificate_sds_secret_configs, alpn_protocols;
// TLS 1.2 and 1.3; client certificates, see TLS below) terminates TLS; a
// chain without one on a TLS connection passes the bytes through (see
// L4). Network filters end in the HttpConnectionManager or tcp_proxy (see
// L4 and L7 policy); per_connection_buffer_limit_bytes (default 1 MiB;
// see Limits and timeouts). Two listeners may not share an address and
// protocol; two chains may not share a match.
//
// HttpConnectionManager: stat_prefix; codec_type AUTO (HTTP/1.1, or HTTP/2
// by ALPN "h2" or the prior-knowledge preface), HTTP1 or HTTP2; rds with
// route_config_name; http_filters ending in the router (RBAC
// filters may precede it, see L7 policy); use_remote_address; xff_num_trusted_hops;
// skip_xff_append; strip_any_host_port (the Host header loses its port);
// normalize_path, merge_slashes and path_with_escaped_slashes_action (all
// four actions; IMPLEMENTATION_SPECIFIC_DEFAULT is KEEP_UNCHANGED), applied
// in Envoy's order before the RBAC filters and the router, for HTTP/1.1
// and HTTP/2 alike, and forwarded upstream: escaped slashes (%2F, %5C, any
// case, path only) rejected with 400, or decoded (then answered 307 to the
// final path under UNESCAPE_AND_REDIRECT, 400 for gRPC); then RFC 3986
// canonicalisation (escapes of unreserved characters decoded, other
// escapes kept as sent, '\' a separator, bytes a path cannot hold
// percent-encoded, "." and ".." segments removed, ".." at the root staying
// there); then runs of '/' merged. The query is never changed. A path with
// '#' gets 400 whatever the settings (Envoy's default), and so does %00
// with normalize_path, as in Envoy. Stricter than Envoy: with
// normalize_path a malformed escape ('%' without two hex digits) gets 400
// (package hcm explains why);
// server_name (default "envoy");
// common_http_protocol_options{idle_timeout (default 1 h),
// max_headers_count (default 100)}; max_request_headers_kb (default 60);
// stream_idle_timeout (default 5 min); request_timeout (default off);
// request_headers_timeout (default off); see Limits and timeouts;
// generate_request_id (default true); preserve_external_request_id;
// local_reply_config and access_log (see L7 policy);
// upgrade_configs (upgrade_type, enabled) for WebSocket pass-through — an
// addition to the translator contract; without it upgrade requests get 403
// as in Envoy.
// http2_protocol_options: max_concurrent_streams (advertised in SETTINGS; a
// stream over it is refused), initial_stream_window_size and
// initial_connection_window_size (the receive windows advertised, so the
// request body bytes buffered per stream and connection), each in Envoy's
// range; absent, they default to 100, 64 KiB and 1 MiB — not Envoy's 2^31-1
// and 256 MiB, because this server buffers a whole window per stream — and
// override_stream_error_on_invalid_http_message (default false, as in
// Envoy: a malformed HTTP/2 request closes the connection with GOAWAY
// PROTOCOL_ERROR; true: RST_STREAM PROTOCOL_ERROR on its stream only).
// Other Http2ProtocolOptions fields are NACKed, and on clusters every field
// (there the message only selects h2c). The HTTP/2 server advertises
// SETTINGS_MAX_FRAME_SIZE 16 KiB and SETTINGS_MAX_HEADER_LIST_SIZE equal to
// the request head limit (max_request_headers_kb, default 60 KiB); a
// header block over it gets 431, one with more fields than
// max_headers_count (default 100) is malformed. A request that arrives over
// HTTP/2 passes the checks of an HTTP/1.1 request before it is forwarded
// (RFC 9113 §8.2 and §8.3 plus: a token method, an origin-form :path of
// visible ASCII without a fragment — "*" only for OPTIONS —, a valid
// :authority or host agreeing with each other, one content-length
// consistent with the DATA received); CONNECT is refused with 403.
//
// RouteConfiguration: name; virtual_hosts{name, domains, routes,
// typed_per_filter_config (CorsPolicy only, see CORS)};
// ignore_port_in_host_matching (the Host port takes no part in selecting a
// virtual host; unlike strip_any_host_port the header keeps it). Domains
// are unique per configuration and match case-insensitively: exact, then
// the longest "*suffix" (the "*" matches at least one character), then the
// longest "prefix*", then "*". No virtual host or no route → 404.
//
// Route: name; typed_per_filter_config (CorsPolicy only: a configuration
// for a filter the proxy does not implement is NACKed); match with one of prefix (byte prefix of :path including
// the query), path (exact, without the query), safe_regex (RE2, whole path
// without the query; every RegexMatcher is RE2, and its google_re2 may be
// given, empty), path_separated_prefix (prefix then end or "/");
// headers{name, string_match{exact | safe_regex}, present_match,
// invert_match} (repeated headers joined with ","; a missing header never
// matches string_match, even inverted; ":method", ":authority", ":path",
// ":scheme" are matchable); query_parameters{name, string_match{exact |
// safe_regex}, present_match} (first occurrence, percent-decoded). One
// action of:
//   - route: cluster or weighted_clusters{clusters{name, weight, request/
//     response headers to add/remove}} (picked per request proportionally
//     to weight; weight 0 is never picked); cluster_not_found_response_code
//     (default 503); prefix_rewrite (replaces the matched prefix; not with
//     safe_regex); regex_rewrite{pattern, substitution} (RE2 "\N" groups;
//     the query is kept); host_rewrite_literal; timeout (default 15 s, 0
//     disables; bounds the upstream exchange from when the request is
//     sent until the response ends; expiry before the response started →
//     504 "upstream request timeout", after → the stream is reset);
//     retry_policy (see Retries); its per_try_timeout bounds each
//     upstream attempt until its response starts, then only timeout
//     applies; ignored, as in Envoy, when not below a non-zero timeout;
//     expiry → 504 "upstream request timeout" unless retried;
//     x-envoy-expected-rq-timeout-ms carries it when set. Negative
//     durations are NACKed. request_mirror_policies (see Mirrors).
//   - redirect: scheme_redirect, host_redirect, port_redirect,
//     path_redirect | prefix_rewrite | regex_rewrite, response_code
//     (default 301), strip_query. As Envoy builds Location: a port_redirect
//     always appears (":443" too) and replaces the request's port; without
//     it the request's port is kept unless the scheme changes and the port
//     is the default of the request's x-forwarded-proto; a path_redirect
//     keeps the request's query unless it has its own or strip_query.
//   - direct_response: status, body.inline_string (inline_bytes also
//     accepted).
//
// plus request_headers_to_add{header{key, value}, append_action},
// request_headers_to_remove, response_headers_to_add,
// response_headers_to_remove: removes, then adds; APPEND_IF_EXISTS_OR_ADD
// (default), ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS;
// weighted-cluster edits apply first, then route edits; empty values are
// dropped; values are literal ("%%" is a percent sign; other "%COMMAND%"
// formatters are NACKed); pseudo-headers and host may not be edited.
//
// Cluster: name; type EDS only; eds_cluster_config{eds_config,
// service_name (default: the cluster name)}; connect_timeout (default 5 s);
// lb_policy ROUND_ROBIN, RANDOM or LEAST_REQUEST (weighted by endpoint
// load_balancing_weight); typed_extension_protocol_options with only
// "envoy.extensions.upstreams.http.v3.HttpProtocolOptions" whose
// explicit_http_config selects http_protocol_options (HTTP/1.1, also the
// default) or http2_protocol_options (h2c), and
// common_http_protocol_options.idle_timeout (default 1 h, 0 disables: a
// pooled connection without a request for that long is closed);
// per_connection_buffer_limit_bytes (default 1 MiB): an HTTP/1.1 relay
// reads at most that many response body bytes of a connection before
// writing them on (it never holds more than its 16 KiB read buffer
// anyway), and an h2c connection is not bounded by it (its flow-control
// windows are the HTTP/2 library's); circuit_breakers.thresholds with
// priority DEFAULT only (HIGH is NACKed, as are retry_budget,
// track_remaining, max_connection_pools and per_host_thresholds):
// max_connections, max_pending_requests, max_requests (default 1024 each)
// and max_retries (default 3: retries scheduled or in flight at once, see
// Retries). As in Envoy, connections count from dial to close, idle ones
// included; a request without an idle connection is pending until it has
// one (while it dials, or queued in order when max_connections is
// reached, for at most its route timeout, then 504), a pool with no
// connection may always dial one; h2c connections and tcp_proxy do not
// queue but overflow at max_connections (tcp_proxy closes the client
// connection, details upstream_overflow). Beyond max_pending_requests or
// max_requests (or an h2c max_connections) a request gets
// Envoy's 503 "upstream connect error or disconnect/reset before headers.
// reset reason: overflow" with x-envoy-overloaded: true, response flag UO
// and details upstream_reset_before_response_started{overflow}; counters
// and gauges per cluster (upstream_cx_overflow,
// upstream_rq_pending_overflow, upstream_cx_active, upstream_rq_active,
// upstream_rq_pending_active, and the retry statistics below) are on the
// admin endpoint's /stats. A
// cluster's limits and counters survive its updates. Upstream HTTP/1.1
// connections are pooled per cluster and endpoint and survive
// configuration updates; a pooled connection is probed before every reuse
// and closed if anything (stray bytes after its last response, or a
// close) is readable, so a backend's extra bytes never reach another
// request. transport_socket: an UpstreamTlsContext (see TLS).
//
// Cluster.outlier_detection (passive health checking, Envoy's defaults
// for unset fields): consecutive_5xx (5) with enforcing_consecutive_5xx
// (100 %), split_external_local_origin_errors with
// consecutive_local_origin_failure (5) and
// enforcing_consecutive_local_origin_failure (100 %), success rate
// (enforcing_success_rate and, when split,
// enforcing_local_origin_success_rate, 100 %; success_rate_minimum_hosts
// 5, success_rate_request_volume 100, success_rate_stdev_factor 1900),
// interval (10 s), base_ejection_time (30 s), max_ejection_time (300 s)
// and max_ejection_percent (10 %, one endpoint may always be ejected).
// External events are response statuses (5xx fails, each attempt of a
// retried request counts); local-origin events are connection attempts
// (refused, timed out or failed TLS handshakes fail; an established
// connection succeeds); a reset after the connection was established is
// not one. Without split a local-origin failure counts as a 5xx. An
// ejected endpoint gets no requests for base_ejection_time times the
// number of its ejections (less one per interval it spent un-ejected),
// at most max_ejection_time; it returns at the first interval boundary
// after that, evaluated with the next outcome the cluster reports; when
// every endpoint is ejected, balancing ignores ejection. State is per
// cluster name and endpoint, and survives updates. The gateway-failure
// and failure-percentage detectors and every other field are NACKed.
//
// ClusterLoadAssignment: cluster_name; endpoints[].lb_endpoints[]{endpoint.
// address.socket_address (IP literal), health_status, load_balancing_weight}.
// HEALTHY and UNKNOWN are healthy, DEGRADED is used when nothing is healthy,
// the rest are unhealthy; below Envoy's 50% panic threshold all hosts are
// used. A cluster without endpoints answers 503 "no healthy upstream".
//
// The static cluster envoy-admin (resource.AdminClusterName, the name
// Cilium's Envoy bootstrap gives its admin cluster): while the admin
// endpoint is on, the proxy defines it itself, as a bootstrap
// static_resources cluster, with the admin endpoint's address as its one
// endpoint; the admin endpoint serves the proxy's metrics in Prometheus'
// text format at Envoy's /stats/prometheus. So a route to envoy-admin
// (Cilium's Prometheus listener example rewrites /metrics to
// /stats/prometheus) works unchanged. A published cluster of that name is
// NACKed: it cannot replace a static one, as in Envoy. With the admin
// endpoint off there is no such cluster, and routes to it answer 503.
//
// Secret: name; tls_certificate{certificate_chain, private_key} as
// inline_bytes or inline_string (the key pair must parse), or
// validation_context (see TLS).
//
// Warming: a cluster serves once its ClusterLoadAssignment and the Secrets
// of its UpstreamTlsContext arrived, a
// listener once its RouteConfigurations and Secrets arrived (its address is
// bound meanwhile, so a bind failure NACKs the listener); an updated
// resource keeps serving its previous version while the new one warms;
// after 15 s (Envoy's initial_fetch_timeout) it stops waiting.
//
// # Limits and timeouts
//
// Every wait of the HTTP/1.1 connection manager is bounded, with Envoy's
// fields, defaults and answers:
//   - common_http_protocol_options.idle_timeout: a connection with no
//     request in progress closes (silently) after it.
//   - request_headers_timeout, from the first byte of a request head:
//     the head must be complete by then, however steadily its bytes
//     trickle in, or the request gets 408 "request header timeout" and the
//     connection closes. Off when absent or 0, as in Envoy (the translator
//     always sets it).
//   - request_timeout, from the first byte of the request: the request's
//     head and body must have been read by then, or 408 "request timeout"
//     and a close. The router's own waits are the route timeout's.
//   - stream_idle_timeout: every read of the request (head or body), every
//     wait for the response head and every read of the response body (from
//     HTTP/1.1 upstreams; from h2c ones only the route timeout bounds them)
//     must make progress within it, and so must every write of the
//     response to the client. Before the request is complete the answer
//     is 408 "stream timeout" and a close; a silent upstream after a
//     complete request gets 504 "stream timeout" (response flag SI); once
//     the response started the connection is closed. A route timeout shorter than it wins (504
//     "upstream request timeout"), and it bounds a route without a timeout.
//     An upgraded (WebSocket) connection with no byte in either direction
//     for that long is closed on both sides (response flag SI), and so is
//     one whose write to either side makes no progress for that long while
//     the other direction is quiet (over TLS, where a timed-out write
//     cannot resume, even while it is not).
//   - max_request_headers_kb bounds the request head as received (request
//     line, header lines and line ends, so a few bytes per line before
//     Envoy, which counts names and values);
//     common_http_protocol_options.max_headers_count bounds its header
//     fields (count 5: the sixth field is refused). Past either: 431
//     "Request Header Fields Too Large" and a close.
//   - Malformed heads get 400 "Bad Request" (codec errors carry the status
//     text as Envoy's do) and a close, as soon as they are malformed: a
//     bare LF or CR ends no line (package http1), and a Host must be one
//     valid uri-host[:port] field (RFC 9112 §3.2); an absolute-form
//     target's authority replaces the Host field.
//   - per_connection_buffer_limit_bytes (listener) bounds every read from
//     a client: the proxy reads at most that much at a time and forwards
//     or parses it before reading again, so beyond a head it is still
//     parsing (bounded by max_request_headers_kb, as Envoy holds a head in
//     its header map, not in the connection buffer) it holds at most one
//     such read per direction; response bytes are written to the client
//     before the next upstream read. That is the soft limit Envoy's
//     watermarks give. tcp_proxy and the Kafka filter read at most it at a
//     time (a Kafka request is still gathered whole, up to the filter's
//     max_request_bytes). What an HTTP/2 client may send ahead is bounded,
//     as in Envoy, by the http2_protocol_options windows.
//
// On HTTP/2 connections the head limits apply (see http2_protocol_options
// above) and the timeouts apply per stream, with Envoy's answers:
//   - idle_timeout runs only while the connection has no open stream:
//     then GOAWAY (NO_ERROR), and the connection closes 1 s later.
//   - request_timeout, from the stream's start (the end of its header
//     block, which is bounded as below) until its END_STREAM was read or
//     its response started: 408 "request timeout".
//   - stream_idle_timeout, from the stream's last activity (request body
//     bytes read, response bytes written to the client, in either
//     direction; a body trickled within it keeps the stream alive): with
//     no response started, 408 "stream timeout" while the request is
//     incomplete, 504 "stream timeout" once it is complete (flag SI in both
//     cases); once the response started, or for a response (a local reply
//     too) the client grants no flow-control window for, RST_STREAM
//     (INTERNAL_ERROR, the code the server library resets a stream with).
//     The upstream exchange is abandoned in every case. A reply sent
//     before the request ended is followed by RST_STREAM NO_ERROR, as RFC
//     9113 §8.1 asks.
//   - A header block (HEADERS and CONTINUATION frames, or one frame
//     trickled byte by byte) must be complete within the earliest of
//     request_headers_timeout, request_timeout and stream_idle_timeout
//     from its first byte (a trailers block: the earliest of the last
//     two). Nothing else moves on a connection while a block is open, and
//     the block cannot be abandoned without losing the connection's HPACK
//     state, so the connection is closed where Envoy answers the stream
//     408 "request header timeout".
//   - A client that reads nothing while the proxy has frames for it is
//     disconnected after stream_idle_timeout.
//
// So a client holds at most max_concurrent_streams streams per
// connection, each for at most stream_idle_timeout without activity (and
// request_timeout before its request ended), and a connection without
// streams for idle_timeout.
//
// # Retries
//
// RouteAction.retry_policy: retry_on (comma-separated, Envoy's names): 5xx
// (any 5xx response, or none: a reset, a closed connection, a connection
// failure, a per-try timeout), gateway-error (502, 503, 504, or none),
// reset (no response), connect-failure (connecting or the TLS handshake
// failed), retriable-4xx (409), refused-stream (an HTTP/2 upstream's
// REFUSED_STREAM), retriable-status-codes (retriable_status_codes),
// envoy-ratelimited (a response with x-envoy-ratelimited, which no other
// condition retries) and the gRPC ones read from grpc-status in the
// response head: cancelled, deadline-exceeded, internal,
// resource-exhausted, unavailable; any other condition is NACKed, and
// without one nothing is retried. num_retries (default 1);
// retry_back_off{base_interval (default 25 ms, below 1 ms rounded up),
// max_interval (default 10× the base, not below it)}: retry N waits a
// random time below base×(2^N−1), at most max_interval;
// retry_host_predicate previous_hosts with
// host_selection_retry_max_attempts (default 1): a retry re-picks a host an
// earlier attempt used that many times. A circuit breaker overflow is
// never retried. The decision comes before any response byte is relayed;
// a retried response's connection is closed. The route timeout bounds all
// attempts and back-offs together, from when the request body was sent;
// the per-try timeout each attempt; a retry's
// x-envoy-expected-rq-timeout-ms is lowered to the time left. The request
// body is kept as it is sent, up to the listener's
// per_connection_buffer_limit_bytes (0: 1 MiB): a larger body is not
// retried once its sending began (retry_or_shadow_abandoned). Each retry
// holds one of the cluster's max_retries from its decision until the
// next (beyond it: upstream_rq_retry_overflow, and the last response or
// failure stands). Statistics per cluster on /stats: upstream_rq_retry,
// upstream_rq_retry_overflow, upstream_rq_retry_success,
// upstream_rq_retry_limit_exceeded (the request is then flagged URX),
// retry_or_shadow_abandoned. After retries a failure's reply reads
// "... retried and the latest reset reason: ...". A reused HTTP/1.1
// connection the server closed before answering is replaced once, not
// counted as a retry, unless the policy itself retries resets. Upgrade
// requests are not retried. Envoy's x-envoy-retry-on and related request
// headers are removed, never obeyed; x-envoy-attempt-count is not sent
// (Envoy sends it only with a virtual host option the proxy NACKs).
// NACKed: per_try_idle_timeout, retry_priority, retry_options_predicates,
// retriable_headers, retriable_request_headers,
// rate_limited_retry_back_off, refresh_cluster_on_retry.
//
// # Mirrors
//
// RouteAction.request_mirror_policies (any number): cluster,
// runtime_fraction.default_value{numerator, denominator} (the runtime_key
// is ignored: the proxy has no runtime layer), disable_shadow_host_suffix_append,
// host_rewrite_literal (implies no suffix). Policies are sampled with one
// random draw per request, as Envoy's stable random. A sampled request is
// copied, when its body is complete, to a host of the mirror cluster: the
// same method, path and headers as sent upstream, the authority's host
// suffixed "-shadow" (before the port). Copies are fire and forget: their
// responses are discarded, they never delay or fail the request, they are
// bounded by the route timeout (15 s without one) and the mirror
// cluster's circuit breakers, and an unknown mirror cluster is skipped.
// The body comes from the retry buffer: one over the buffer limit is not
// mirrored (retry_or_shadow_abandoned on the route's cluster; Envoy's
// streaming shadows would send it). A retried request is mirrored once.
// Upgrade requests are not mirrored. NACKed: cluster_header,
// trace_sampled (no tracing), request_headers_mutations.
//
// # TLS
//
// Cluster.transport_socket UpstreamTlsContext{sni (sent as the server
// name; none without it), auto_sni_san_validation (a DNS SAN must match
// the sni instead of the SAN matchers; needs a validation context),
// common_tls_context{tls_certificate_sds_secret_configs (at most one client
// certificate), alpn_protocols (default: "h2" for an HTTP/2 cluster,
// "http/1.1" otherwise, as Envoy offers), a validation context}}: TLS 1.2
// and 1.3; the cluster's connect_timeout covers the handshake; HTTP/2
// requests carry :scheme https. Connections are pooled; a pooled TLS
// connection is also probed for records crypto/tls read ahead. Without a
// validation context the server is not verified, as in Envoy. A server
// failing verification gets 503 "upstream connect error or
// disconnect/reset before headers. reset reason: connection failure,
// transport failure reason:
// TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"
// (BoringSSL's words, for clients telling failures apart; other handshake
// failures carry Go's description) with the same reason in the response
// code details, flag UF.
//
// DownstreamTlsContext: require_client_certificate (needs a validation
// context) and a validation context in common_tls_context: with trusted_ca
// or SAN matchers the listener asks for a client certificate, advertising
// the trusted CAs, and verifies one if presented; without, it asks for
// none. A failed verification ends the handshake.
//
// Validation contexts, both directions: common_tls_context.validation_context,
// validation_context_sds_secret_config (a Secret with validation_context,
// looked up at every handshake so rotation needs no listener or cluster
// update), or combined_validation_context{default_validation_context,
// validation_context_sds_secret_config} (merged as Envoy merges them: the
// Secret's trusted_ca replaces the default's, SAN matchers add up).
// CertificateValidationContext{trusted_ca (inline PEM certificates only,
// all of which must parse; any is a trust anchor, as with Envoy's
// partial-chain verification), match_typed_subject_alt_names{san_type
// DNS | URI | EMAIL | IP_ADDRESS, matcher} (any one must match; an exact
// DNS matcher also matches a "*.suffix" wildcard SAN covering exactly one
// label), trust_chain_verification (ACCEPT_UNTRUSTED: a failed
// verification does not fail the handshake, the peer is just not
// validated)}. Without trusted_ca nothing is verified; SAN matchers
// without trusted_ca are NACKed, as Envoy refuses them. The peer's chain
// must be within its validity period and allow its role (server or
// client authentication). The host name is never checked except through
// SAN matchers. NACKed: filename data sources, CRLs, SPKI and hash pins,
// allow_expired_certificate, max_verify_depth, custom validators,
// system_root_certs (not implemented in Envoy either), tls_params,
// inline tls_certificates, certificate providers, OTHER_NAME SANs.
//
// HttpConnectionManager.forward_client_cert_details: SANITIZE (the default:
// x-forwarded-client-cert is removed from every request), FORWARD_ONLY
// (kept on connections with a client certificate, removed otherwise),
// APPEND_FORWARD and SANITIZE_SET (on such connections this hop's element
// is appended, or replaces the header; removed otherwise),
// ALWAYS_FORWARD_ONLY (never touched); set_current_client_cert_details
// {subject, cert, chain, dns, uri} selects the element's fields, in
// Envoy's format (package hcm). RBAC authenticated principals match a
// presented client certificate's URI SANs, DNS SANs, then subject.
//
// Gateway API on these fields (for the translator): HTTPRouteRetry →
// retry_on "connect-failure,reset" (connection errors and backendRequest
// expiring as per_try_timeout, HTTPRouteRetryConnectionError and
// HTTPRouteRetryBackendTimeout) plus "retriable-status-codes" with
// retriable_status_codes = codes, num_retries = attempts,
// retry_back_off.base_interval = backoff;
// HTTPRouteRequestMirror (+ Multiple, Percentage) → one
// request_mirror_policies entry per filter, fraction/percent as
// runtime_fraction; BackendTLSPolicy → UpstreamTlsContext{sni = hostname,
// validation context with trusted_ca = the CA bundle (well-known System
// CAs inlined by the translator), match_typed_subject_alt_names DNS
// exact hostname or the policy's subjectAltNames}; Gateway
// BackendClientCertificate → tls_certificate_sds_secret_configs;
// FrontendClientCertificateValidation AllowValidOnly →
// require_client_certificate with trusted_ca, AllowInsecureFallback →
// trust_chain_verification ACCEPT_UNTRUSTED without
// require_client_certificate; HTTPS misdirected requests → per filter
// chain route configurations whose other listeners' hosts answer a
// direct_response 421 (existing fields).
//
// # L7 policy
//
// Policy listeners (the datapath redirects to their port): transparent
// (IP_TRANSPARENT; one SO_REUSEPORT group of GOMAXPROCS sockets per
// address, so each core accepts on its own socket even under eBPF TPROXY);
// listener_filters original_dst (the original destination — SO_ORIGINAL_DST
// after a NAT redirect, the accepted socket's local address under TPROXY —
// becomes the connection's local address for RBAC destination_ip/port,
// ORIGINAL_DST clusters and access logs) and original_src{mark} (upstream
// sockets bind to the client's address with IP_TRANSPARENT, port left to
// the kernel, and carry mark; bind_port is refused), and on transparent
// listeners nodemesh's datapath identity filter
// (nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity
// {conntrack_map}; package proxylib/api/datapath/v1): each accepted
// connection's source identity is read from the datapath's pinned
// connection tracking (package conntrack), a connection without a live
// entry is closed unread, the identity reaches RBAC (filter_state
// "nodemesh.source_identity"), the Kafka filter and access logs
// (source_identity), and where the datapath took it from a routing
// listener's mark the peer's address judges nothing. A filter chain ends in
// an HttpConnectionManager or in tcp_proxy (see L4), optionally preceded by the Kafka
// policy filter (type nodemesh.filters.network.kafka.v1.KafkaPolicy through
// ECDS; see packages proxylib/api/kafka/v1 and kafka).
//
// original_src is accepted on any TCP listener, not only transparent ones
// (as in Envoy; CiliumEnvoyConfig and GAMMA listeners reached through a
// Service redirect use it). It applies to every cluster the listener forwards to:
// an ORIGINAL_DST cluster keys its hosts by client address; an EDS or
// STATIC cluster keeps, per endpoint, a pool per client address
// (upstream.Cluster.BindSource), so a connection is only reused for the
// client it was opened for and two upstream connections of one downstream
// connection never share a 5-tuple; such pools close after 5 s unused,
// and count as their endpoint for outlier detection, least_request and
// circuit breakers. The client's address is not bound (the connection
// leaves from the node) when it is a loopback address, when the endpoint
// is the client itself (its answer would never reach the proxy), or for
// a Unix-socket endpoint; mirrored requests always leave from the node.
//
// HttpConnectionManager http_filters: the CORS filter (see CORS) and any
// number of RBAC filters
// (envoy.extensions.filters.http.rbac.v3.RBAC{rules{action ALLOW | DENY,
// policies}}) before the router, with a static typed_config or through ECDS
// (config_discovery{config_source, type_urls}; as in Envoy the filter's
// name is the TypedExtensionConfig name). Permissions: any, and_rules,
// or_rules, not_rule, header, url_path, destination_ip, destination_port,
// destination_port_range; principals: any, and_ids, or_ids, not_id,
// direct_remote_ip, source_ip (the same peer address),
// authenticated.principal_name, filter_state on "nodemesh.source_identity"
// with an exact decimal match (package rbac). RBAC
// matches the path as the connection manager normalised it, the same path
// the router matches and the upstream receives. A denied
// request gets Envoy's 403 "RBAC: access denied" local reply (for gRPC:
// trailers-only, grpc-status 7, the body as percent-encoded grpc-message).
// A discovered configuration that never arrived (warming gave up) answers
// 500, fail closed, as Envoy does. local_reply_config mappers{filter
// response_flag_filter | status_code_filter{comparison{op, value
// {default_value}}}, status_code, body} rewrite local replies (the first
// matching mapper wins; the runtime key is ignored). access_log:
// envoy.access_loggers.http_grpc in the connection manager, tcp_grpc in
// tcp_proxy, with common_config{log_name, transport_api_version V3,
// grpc_service.envoy_grpc.cluster_name, buffer_flush_interval,
// buffer_size_bytes}; see package accesslog, and proxylib/api/l7meta for the
// L7 fields entries carry.
//
// Header match filters may also precede the router (type
// nodemesh.filters.http.header_match.v1.HeaderMatchPolicy, through ECDS
// only; packages proxylib/api/headermatch/v1 and headermatch): Cilium's
// headerMatches mismatch actions, which Envoy's RBAC cannot express. Such
// a filter never denies: for every rule whose scope (destination terms and
// port, source terms, method/path/authority RE2 full matches, required
// headers; decided as an RBAC policy is) matches the request, in order,
// each header match compares the header (joined values, constant time)
// with its value, or checks presence for an empty one, and on a mismatch
// LOG records it, ADD appends the header, DELETE removes a present header
// with another value, REPLACE sets it. Later matches and filters see the
// edits, the router forwards the edited headers, and the access-log entry
// carries the records (l7meta missing_headers, rejected_headers). Host,
// pseudo-headers and the headers that frame a message or a connection
// cannot be named (NACK).
//
// ECDS: a filter configuration update never touches the listener (its
// bytes are unchanged), so no connection is drained; HTTP requests and
// Kafka requests on open connections are judged by the newest
// configuration. A TypedExtensionConfig of a type its filter does not
// accept is NACKed, as is a listener referencing one of the wrong type. A
// listener warms until its discovered configurations arrived.
//
// Clusters additionally: type STATIC with load_assignment (endpoints may
// be pipes, e.g. the agent's access-log socket) and type ORIGINAL_DST with
// lb_policy CLUSTER_PROVIDED (one host per original destination, pooled
// and closed after 5 s unused, Envoy's cleanup_interval);
// upstream_bind_config{source_address (0.0.0.0:0 binds nothing),
// socket_options{level, name, int_value | buf_value, state STATE_PREBIND}}
// applied to every upstream socket before connect (SO_MARK tells the
// datapath whether a policy listener already applied the destination's L7
// ingress rules, magic 0xA00, or a routing listener applied none, 0xB00:
// see proxylib/transparent);
// HttpProtocolOptions.use_downstream_protocol_config (HTTP/2 upstream for
// HTTP/2 requests, HTTP/1.1 otherwise; ORIGINAL_DST clusters only, any
// other cluster type with it is NACKed). StringMatcher additionally takes
// prefix, suffix, contains and ignore_case.
//
// # L4: TLS passthrough, TCP and UDP
//
// TLS inspector: with it, the first bytes of every connection are peeked
// at — not consumed — until they hold a whole ClientHello (one or several
// handshake records), at most max_client_hello_size bytes (default and
// maximum 16 KiB, counted as Envoy counts them: record headers included;
// the first peek asks for initial_read_buffer_size, doubling up to it),
// within listener_filters_timeout. A ClientHello yields its server_name
// (matched case-insensitively); one without the extension has no name.
// Bytes that cannot begin a well-formed ClientHello are plain text (no
// name) unless close_connection_on_client_hello_parsing_errors; a
// ClientHello over the limit, a connection closed or failing before it
// completes, or one still incomplete when the timeout expires is closed —
// unless continue_on_listener_filters_timeout, when the connection goes on
// as if nothing had been read (the chain for no name). NACKed:
// enable_ja3_fingerprinting, enable_ja4_fingerprinting. Without the
// inspector server names are unknown: only chains without server_names
// match, and every connection is raw_buffer, so a chain naming
// transport_protocol "tls" on a listener without the inspector is NACKed
// (it could never match); other transport_protocol values are NACKed
// too (the inspector detects only these two). Plain HTTP and HTTPS share
// one port this way: a raw_buffer chain with the HTTP connection manager
// beside "tls" chains terminating TLS; TLS for a server name no tls chain
// takes is closed rather than read as HTTP.
//
// TLS passthrough: a chain without transport_socket that tcp_proxy ends
// gets the connection with the ClientHello unread, so the backend
// performs the handshake with the client (the client sees the backend's
// certificate). Chains terminating TLS and passing it through share a
// port, picked by SNI; plain text on a TLS-terminating chain is closed.
//
// tcp_proxy{stat_prefix, cluster | weighted_clusters{clusters{name,
// weight}} (picked per connection in proportion to weight),
// max_connect_attempts (default 1: each attempt picks a host anew through
// the cluster's load balancer; an overflow is not retried), idle_timeout
// (default 1 h, 0: none; no byte either way for that long closes both
// sides), access_log (tcp_grpc, one entry per connection)}: one upstream
// connection per downstream connection, bytes copied both ways, reads
// bounded by the listener's per_connection_buffer_limit_bytes, half-closes
// propagated each way (the other direction keeps flowing until it ends
// too). The cluster's circuit_breakers max_connections bounds connections
// (beyond it the client connection is closed, details
// upstream_overflow); no cluster or no healthy host closes it too. NACKed:
// metadata_match, on_demand, downstream_idle_timeout,
// upstream_idle_timeout, hash_policy, tunneling_config,
// max_downstream_connection_duration, access_log_flush_interval and the
// other access log options, backoff_options, proxy_protocol_tlvs.
//
// Network RBAC: tcp_proxy may be preceded by any number of
// envoy.filters.network.rbac filters (static typed_config
// envoy.extensions.filters.network.rbac.v3.RBAC{stat_prefix (required,
// as in Envoy), rules, enforcement_type ONE_TIME_ON_FIRST_BYTE}), then
// at most one Kafka policy filter. Each filter's rules decide with the
// HTTP filter's semantics (ALLOW: a matching policy admits, DENY: a
// matching policy refuses, no rules: everything passes; policies in name
// order) on what a connection has: permissions any, and_rules, or_rules,
// not_rule, destination_ip, destination_port, destination_port_range
// (the (original) destination) and requested_server_name (the SNI as the
// client sent it, read by the TLS inspector or by the terminating
// handshake; "" without one); principals any, and_ids, or_ids, not_id,
// direct_remote_ip, remote_ip and source_ip (all three the client's
// address: the proxy has no PROXY protocol filter that could make them
// differ) and authenticated (a client certificate on a chain
// terminating TLS). The filters run in order once per connection, when
// it is handed to the chain, before a cluster is picked or anything is
// dialled: a denied connection is closed without a byte and no upstream
// connection, its tcp_grpc access-log entry carries Envoy's termination
// details rbac_access_denied_matched_policy[<policy>] ("none" when an
// ALLOW filter matched nothing). Envoy takes the same verdict at the
// first byte the client sends (ONE_TIME_ON_FIRST_BYTE); every rule
// accepted here is known at accept, so only the moment differs: a
// denied client that never sends is closed at once, and a backend that
// speaks first never hears from one. NACKed: shadow_rules,
// shadow_rules_stat_prefix, matcher and shadow_matcher, delay_deny,
// enforcement_type CONTINUOUS, config_discovery, header and url_path
// permissions (no request on a connection), every other rule, and a
// network RBAC filter before http_connection_manager (use the HTTP RBAC
// filter there). remote_ip and requested_server_name are NACKed in the
// HTTP RBAC filter, whose requests carry neither the x-forwarded-for
// client nor the SNI; source_ip is the peer address there too. The
// filter's allowed/denied counters are not exported.
//
// UDP listeners (address.socket_address.protocol UDP): no filter chains,
// exactly one listener filter, envoy.filters.udp_listener.udp_proxy
// (UdpProxyConfig{stat_prefix, matcher | cluster (deprecated),
// idle_timeout (default 60 s), upstream_socket_config.max_rx_datagram_size
// (default 1500)}); udp_listener_config.downstream_socket_config
// .max_rx_datagram_size (default 1500). The route is the cluster of
// matcher.on_no_match.action, a Route{cluster} (matcher lists and trees
// are NACKed), or of the deprecated cluster field. Each client address
// gets a session: its first datagram picks an endpoint with the cluster's
// load balancer and opens a connected upstream socket; datagrams go both
// ways (replies from the listener's socket) until none passes either way
// for idle_timeout. Sessions count against the cluster's max_connections
// (default 1024; beyond it a new client's datagrams are dropped); a
// datagram over max_rx_datagram_size is dropped, as Envoy drops truncated
// ones. Endpoint changes apply to new sessions. A TCP and a UDP listener
// may share an address and port. per_connection_buffer_limit_bytes and
// listener_filters_timeout have no effect on UDP listeners. NACKed:
// use_original_src_ip, use_per_packet_load_balancing, hash_policies,
// session_filters, tunneling_config, access logs, prefer_gro, QUIC.
//
// Gateway API on these fields (for the translator): TLSRoute on a
// Passthrough listener → a listener with the TLS inspector and one chain
// per route hostname set, filter_chain_match.server_names = the route's
// hostnames intersected with the listener's, no transport_socket,
// tcp_proxy to the backend cluster (several backendRefs:
// weighted_clusters with their weights); TLSRoute on a Terminate listener
// → the same chain with the listener's DownstreamTlsContext as
// transport_socket (the proxy then forwards the decrypted bytes); both
// kinds, and HTTPS chains, may share a port. TCPRoute → a listener whose
// single chain (no filter_chain_match) is tcp_proxy, cluster or
// weighted_clusters. UDPRoute → a UDP listener with the udp_proxy whose
// matcher.on_no_match.action is Route{cluster}; several backendRefs
// become one cluster whose lb_endpoints carry load_balancing_weight in
// proportion to each backendRef's weight (divided among its endpoints:
// locality weights are not accepted).
//
// # CORS
//
// http_filters envoy.extensions.filters.http.cors.v3.Cors (no fields), before
// the router; its policies are CorsPolicy{allow_origin_string_match
// (StringMatchers), allow_methods, allow_headers, expose_headers, max_age,
// allow_credentials, allow_private_network_access,
// forward_not_matching_preflights} in the typed_per_filter_config of the
// matched route and of its virtual host, under the filter's name. Each
// field comes from the route's policy when set there, else from the
// virtual host's; RouteAction.cors and VirtualHost.cors (deprecated) are
// NACKed, and so are filter_enabled and shadow_enabled (a policy is always
// enforced). A request with a non-empty Origin is a CORS request; its
// origin is allowed when a matcher matches it or matches "*" (an exact
// "*" allows any origin), and responses then carry
// access-control-allow-origin: the request's origin (never "*"),
// access-control-allow-credentials: true when allow_credentials, and
// access-control-expose-headers. A preflight (OPTIONS with an Origin and an
// access-control-request-method) from an allowed origin is answered by the
// proxy: 200 with allow-methods (allow_methods; "*" echoes the requested
// method), allow-headers (allow_headers; "*" echoes
// access-control-request-headers), max-age, allow-credentials,
// expose-headers, and access-control-allow-private-network: true when
// allow_private_network_access and the request asked for it. A preflight
// from another origin is forwarded (forward_not_matching_preflights,
// default true) or answered 200 with those headers but no allow-origin.
// Filters after it do not re-route the request.
//
// Gateway API HTTPRouteCORS (v1.6.3 conformance) on these fields: the
// filter in every connection manager with an HTTPRoute using CORS, and
// per route rule a CorsPolicy: allowOrigins → allow_origin_string_match,
// "*" → exact "*", an origin with a "*" host label (https://*.bar.com) →
// safe_regex with the scheme and port literal and "*" as ".*" (matching
// any number of labels, as the suite requires), others → exact;
// allowMethods and allowHeaders joined with ", " (a "*" entry → "*",
// which the filter echoes, as the suite expects with credentials);
// exposeHeaders joined with ", "; maxAge → max_age in seconds; allowCredentials →
// allow_credentials; forward_not_matching_preflights false (the suite
// expects a preflight from another origin to be answered, not forwarded).
//
// # Worker processes
//
// By default the proxy is one process using GOMAXPROCS cores, with one
// SO_REUSEPORT socket per core on every listener address. WithWorkers(n)
// (nodemesh-proxy --workers n) instead serves with n single-threaded
// processes (GOMAXPROCS=1 each), as nginx runs one worker per core: on
// two shared cores a GOMAXPROCS=2 proxy spent about a fifth of its CPU in
// the Go scheduler (work stealing, wake-ups of the other P, netpoller
// hand-offs between Ps), which n independent schedulers of one P each
// do not do. Decisions:
//   - The parent is worker 0: it serves like every worker, and it is the
//     only xDS client, the admin endpoint and the process the /metrics
//     endpoint runs in. Workers 1..n-1 are the same binary started by the
//     parent (RunWorker), connected to it by a Unix socket pair; they open
//     no xDS stream and no admin or metrics endpoint.
//   - Every process opens its own sockets in each address's SO_REUSEPORT
//     group (the transparent ones too: the datapath assigns redirected
//     connections to the group, and the kernel spreads them over every
//     process's socket by flow hash). So the kernel spreads connections;
//     a process never hands one to another. A listener on port 0 would get
//     a different port in every process: give ports.
//   - Envoy's ACK semantics hold for the node: an update is applied by the
//     parent first and then by all workers at once, and ACKed only when
//     every process applied it. The parent refusing it (invalid resources,
//     which every process refuses alike) NACKs it before any worker sees
//     it. A worker refusing it (an environment difference, e.g. a bind
//     failure) NACKs it with the worker's error, prefixed "worker <i>: ",
//     and the processes that had applied it are put back to the previous
//     state of that type (config.Store.Restore: unchanged resources keep
//     their handlers), so all of them keep the last good configuration.
//     Until then the update served in those processes for the time the
//     fan-out took (milliseconds); connections they accepted on it drain
//     like those of any removed listener. Making that window zero would
//     take a prepare/commit split of every update, binding sockets that
//     may never serve; a refusal by one process only is rare enough not to
//     pay for it on every update.
//   - A worker that exits is started again with the configuration in
//     force (the parent's accepted resources, replayed type by type,
//     dependencies first) after 100 ms, doubling to 5 s; updates wait while
//     it is configured, so it joins with exactly the configuration the
//     others serve. A worker that exits within 10 s of its start fails its
//     restart; after 5 failed restarts in a row the parent stops (Run
//     returns an error) rather than serve on fewer cores unnoticed. A
//     worker that does not answer an update within 60 s is killed and
//     restarted. A worker whose parent dies gets SIGTERM (and sees its
//     connection close) and drains. With net.ipv4.tcp_migrate_req (the
//     datapath turns it on) a dying worker's accept queue moves to the
//     group's other sockets.
//   - Shutdown and drain: the parent stops its xDS stream, sends every
//     worker SIGTERM and drains its own listeners; every process stops
//     accepting at once and drains its connections for up to the drain
//     timeout (workers are killed 5 s after it). Run returns when all
//     exited.
//   - /ready is LIVE when the parent is ready and every worker is running
//     and ready. /config_dump and /listeners show the parent's state,
//     which is every worker's (WorkerListeners returns the workers'
//     listeners). /stats (circuit breakers) shows the parent's.
//     nodemesh-proxy's /metrics carries every process's series labelled
//     worker="<i>" (package main explains why not sums).
//   - What is per process, not per node: upstream connection pools,
//     circuit breaker thresholds (max_connections and the others apply in
//     each process, so the node admits up to n times each; Envoy counts
//     them over all its workers), outlier detection, round-robin position,
//     and the access-log stream to the agent (one per process). Memory
//     grows about n-fold (every process decodes the configuration). These
//     are why one process stays the default.
//
// # Data-path behaviour
//
// See package hcm for the connection manager and router defaults users see
// (server header, x-forwarded-for/-proto, x-request-id, Envoy's x-envoy-*
// headers, hop-by-hop removal, local replies, gRPC local replies, HTTP/1.0
// rejection, 100-continue, trailers) and package listener for sockets,
// TLS and draining. Package http1 documents the HTTP/1.1 parser's limits
// and smuggling defences.
//
// # Allowlist
//
// Every populated field of every received message, including messages
// inside Any typed configs, must appear below, or the resource is NACKed
// naming the field. This list is generated from the decoder's table
// (go test ./proxylib -run TestDocMatchesAllowlist -update rewrites it).
//
// BEGIN ALLOWLIST
//   - `envoy.config.accesslog.v3.AccessLogFilter`: response_flag_filter, status_code_filter
//   - `envoy.config.accesslog.v3.AccessLog`: name, typed_config; typed_config holds envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig | envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig
//   - `envoy.config.accesslog.v3.ComparisonFilter`: op, value
//   - `envoy.config.accesslog.v3.ResponseFlagFilter`: flags
//   - `envoy.config.accesslog.v3.StatusCodeFilter`: comparison
//   - `envoy.config.cluster.v3.CircuitBreakers.Thresholds`: priority, max_connections, max_pending_requests, max_requests, max_retries
//   - `envoy.config.cluster.v3.CircuitBreakers`: thresholds
//   - `envoy.config.cluster.v3.Cluster.EdsClusterConfig`: eds_config, service_name
//   - `envoy.config.cluster.v3.Cluster`: name, type, eds_cluster_config, connect_timeout, lb_policy, typed_extension_protocol_options, per_connection_buffer_limit_bytes, load_assignment, upstream_bind_config, circuit_breakers, transport_socket, outlier_detection; typed_extension_protocol_options holds envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//   - `envoy.config.cluster.v3.OutlierDetection`: consecutive_5xx, interval, base_ejection_time, max_ejection_percent, enforcing_consecutive_5xx, enforcing_success_rate, success_rate_minimum_hosts, success_rate_request_volume, success_rate_stdev_factor, split_external_local_origin_errors, consecutive_local_origin_failure, enforcing_consecutive_local_origin_failure, enforcing_local_origin_success_rate, max_ejection_time
//   - `envoy.config.core.v3.Address`: socket_address, pipe
//   - `envoy.config.core.v3.AggregatedConfigSource`: (no fields)
//   - `envoy.config.core.v3.BindConfig`: source_address, socket_options
//   - `envoy.config.core.v3.CidrRange`: address_prefix, prefix_len
//   - `envoy.config.core.v3.ConfigSource`: ads, resource_api_version
//   - `envoy.config.core.v3.DataSource`: inline_bytes, inline_string
//   - `envoy.config.core.v3.ExtensionConfigSource`: config_source, type_urls
//   - `envoy.config.core.v3.GrpcService.EnvoyGrpc`: cluster_name
//   - `envoy.config.core.v3.GrpcService`: envoy_grpc
//   - `envoy.config.core.v3.HeaderValueOption`: header, append_action
//   - `envoy.config.core.v3.HeaderValue`: key, value
//   - `envoy.config.core.v3.Http1ProtocolOptions`: (no fields)
//   - `envoy.config.core.v3.Http2ProtocolOptions`: max_concurrent_streams, initial_stream_window_size, initial_connection_window_size, override_stream_error_on_invalid_http_message
//   - `envoy.config.core.v3.HttpProtocolOptions`: idle_timeout, max_headers_count
//   - `envoy.config.core.v3.Pipe`: path
//   - `envoy.config.core.v3.RuntimeFractionalPercent`: default_value, runtime_key
//   - `envoy.config.core.v3.RuntimeUInt32`: default_value, runtime_key
//   - `envoy.config.core.v3.SocketAddress`: protocol, address, port_value, ipv4_compat
//   - `envoy.config.core.v3.SocketOption`: description, level, name, int_value, buf_value, state
//   - `envoy.config.core.v3.TransportSocket`: name, typed_config; typed_config holds envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext | envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
//   - `envoy.config.core.v3.TypedExtensionConfig`: name, typed_config; typed_config holds envoy.extensions.filters.http.rbac.v3.RBAC | nodemesh.filters.network.kafka.v1.KafkaPolicy | nodemesh.filters.http.header_match.v1.HeaderMatchPolicy
//   - `envoy.config.core.v3.UdpSocketConfig`: max_rx_datagram_size
//   - `envoy.config.endpoint.v3.ClusterLoadAssignment`: cluster_name, endpoints
//   - `envoy.config.endpoint.v3.Endpoint`: address
//   - `envoy.config.endpoint.v3.LbEndpoint`: endpoint, health_status, load_balancing_weight
//   - `envoy.config.endpoint.v3.LocalityLbEndpoints`: lb_endpoints
//   - `envoy.config.listener.v3.FilterChainMatch`: destination_port, server_names, source_prefix_ranges, transport_protocol
//   - `envoy.config.listener.v3.FilterChain`: name, filter_chain_match, transport_socket, filters
//   - `envoy.config.listener.v3.Filter`: name, typed_config, config_discovery; typed_config holds envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager | envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy | envoy.extensions.filters.network.rbac.v3.RBAC
//   - `envoy.config.listener.v3.ListenerFilter`: name, typed_config; typed_config holds envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector | envoy.extensions.filters.listener.original_dst.v3.OriginalDst | envoy.extensions.filters.listener.original_src.v3.OriginalSrc | envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig | nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity
//   - `envoy.config.listener.v3.Listener`: name, address, listener_filters, filter_chains, per_connection_buffer_limit_bytes, transparent, listener_filters_timeout, continue_on_listener_filters_timeout, udp_listener_config
//   - `envoy.config.listener.v3.UdpListenerConfig`: downstream_socket_config
//   - `envoy.config.rbac.v3.Permission.Set`: rules
//   - `envoy.config.rbac.v3.Permission`: and_rules, or_rules, any, header, url_path, destination_ip, destination_port, destination_port_range, not_rule, requested_server_name
//   - `envoy.config.rbac.v3.Policy`: permissions, principals
//   - `envoy.config.rbac.v3.Principal.Authenticated`: principal_name
//   - `envoy.config.rbac.v3.Principal.Set`: ids
//   - `envoy.config.rbac.v3.Principal`: and_ids, or_ids, any, authenticated, source_ip, direct_remote_ip, remote_ip, not_id, filter_state
//   - `envoy.config.rbac.v3.RBAC`: action, policies
//   - `envoy.config.route.v3.DirectResponseAction`: status, body
//   - `envoy.config.route.v3.HeaderMatcher`: name, string_match, present_match, invert_match
//   - `envoy.config.route.v3.QueryParameterMatcher`: name, string_match, present_match
//   - `envoy.config.route.v3.RedirectAction`: scheme_redirect, host_redirect, port_redirect, path_redirect, prefix_rewrite, regex_rewrite, response_code, strip_query
//   - `envoy.config.route.v3.RetryPolicy.RetryBackOff`: base_interval, max_interval
//   - `envoy.config.route.v3.RetryPolicy.RetryHostPredicate`: name, typed_config; typed_config holds envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
//   - `envoy.config.route.v3.RetryPolicy`: retry_on, num_retries, per_try_timeout, retry_host_predicate, host_selection_retry_max_attempts, retriable_status_codes, retry_back_off
//   - `envoy.config.route.v3.RouteAction.RequestMirrorPolicy`: cluster, runtime_fraction, disable_shadow_host_suffix_append, host_rewrite_literal
//   - `envoy.config.route.v3.RouteAction`: cluster, weighted_clusters, cluster_not_found_response_code, prefix_rewrite, regex_rewrite, host_rewrite_literal, timeout, retry_policy, request_mirror_policies
//   - `envoy.config.route.v3.RouteConfiguration`: name, virtual_hosts, ignore_port_in_host_matching
//   - `envoy.config.route.v3.RouteMatch`: prefix, path, safe_regex, path_separated_prefix, headers, query_parameters
//   - `envoy.config.route.v3.Route`: name, match, route, redirect, direct_response, request_headers_to_add, request_headers_to_remove, response_headers_to_add, response_headers_to_remove, typed_per_filter_config; typed_per_filter_config holds envoy.extensions.filters.http.cors.v3.CorsPolicy
//   - `envoy.config.route.v3.VirtualHost`: name, domains, routes, typed_per_filter_config; typed_per_filter_config holds envoy.extensions.filters.http.cors.v3.CorsPolicy
//   - `envoy.config.route.v3.WeightedCluster.ClusterWeight`: name, weight, request_headers_to_add, request_headers_to_remove, response_headers_to_add, response_headers_to_remove
//   - `envoy.config.route.v3.WeightedCluster`: clusters
//   - `envoy.extensions.access_loggers.grpc.v3.CommonGrpcAccessLogConfig`: log_name, grpc_service, transport_api_version, buffer_flush_interval, buffer_size_bytes
//   - `envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig`: common_config
//   - `envoy.extensions.access_loggers.grpc.v3.TcpGrpcAccessLogConfig`: common_config
//   - `envoy.extensions.filters.http.cors.v3.CorsPolicy`: allow_origin_string_match, allow_methods, allow_headers, expose_headers, max_age, allow_credentials, allow_private_network_access, forward_not_matching_preflights
//   - `envoy.extensions.filters.http.cors.v3.Cors`: (no fields)
//   - `envoy.extensions.filters.http.rbac.v3.RBAC`: rules
//   - `envoy.extensions.filters.http.router.v3.Router`: (no fields)
//   - `envoy.extensions.filters.listener.original_dst.v3.OriginalDst`: (no fields)
//   - `envoy.extensions.filters.listener.original_src.v3.OriginalSrc`: bind_port, mark
//   - `envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`: initial_read_buffer_size, close_connection_on_client_hello_parsing_errors, max_client_hello_size
//   - `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails`: subject, cert, chain, dns, uri
//   - `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig`: upgrade_type, enabled
//   - `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`: stat_prefix, codec_type, rds, http_filters, use_remote_address, xff_num_trusted_hops, skip_xff_append, strip_any_host_port, normalize_path, merge_slashes, path_with_escaped_slashes_action, server_name, common_http_protocol_options, stream_idle_timeout, request_timeout, request_headers_timeout, max_request_headers_kb, generate_request_id, preserve_external_request_id, upgrade_configs, local_reply_config, access_log, http2_protocol_options, forward_client_cert_details, set_current_client_cert_details
//   - `envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter`: name, typed_config, config_discovery; typed_config holds envoy.extensions.filters.http.router.v3.Router | envoy.extensions.filters.http.rbac.v3.RBAC | envoy.extensions.filters.http.cors.v3.Cors
//   - `envoy.extensions.filters.network.http_connection_manager.v3.LocalReplyConfig`: mappers
//   - `envoy.extensions.filters.network.http_connection_manager.v3.Rds`: route_config_name, config_source
//   - `envoy.extensions.filters.network.http_connection_manager.v3.ResponseMapper`: filter, status_code, body
//   - `envoy.extensions.filters.network.rbac.v3.RBAC`: stat_prefix, rules, enforcement_type
//   - `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight`: name, weight
//   - `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster`: clusters
//   - `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`: stat_prefix, cluster, weighted_clusters, access_log, idle_timeout, max_connect_attempts
//   - `envoy.extensions.filters.udp.udp_proxy.v3.Route`: cluster
//   - `envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig`: stat_prefix, cluster, matcher, idle_timeout, upstream_socket_config
//   - `envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate`: (no fields)
//   - `envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext`: trusted_ca, match_typed_subject_alt_names, trust_chain_verification
//   - `envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext`: default_validation_context, validation_context_sds_secret_config
//   - `envoy.extensions.transport_sockets.tls.v3.CommonTlsContext`: tls_certificate_sds_secret_configs, alpn_protocols, validation_context, validation_context_sds_secret_config, combined_validation_context
//   - `envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`: common_tls_context, require_client_certificate
//   - `envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig`: name, sds_config
//   - `envoy.extensions.transport_sockets.tls.v3.Secret`: name, tls_certificate, validation_context
//   - `envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher`: san_type, matcher
//   - `envoy.extensions.transport_sockets.tls.v3.TlsCertificate`: certificate_chain, private_key
//   - `envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`: common_tls_context, sni, auto_sni_san_validation
//   - `envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig`: http_protocol_options, http2_protocol_options
//   - `envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig`: http_protocol_options, http2_protocol_options
//   - `envoy.extensions.upstreams.http.v3.HttpProtocolOptions`: explicit_http_config, use_downstream_protocol_config, common_http_protocol_options
//   - `envoy.type.matcher.v3.FilterStateMatcher`: key, string_match
//   - `envoy.type.matcher.v3.PathMatcher`: path
//   - `envoy.type.matcher.v3.RegexMatchAndSubstitute`: pattern, substitution
//   - `envoy.type.matcher.v3.RegexMatcher.GoogleRE2`: (no fields)
//   - `envoy.type.matcher.v3.RegexMatcher`: regex, google_re2
//   - `envoy.type.matcher.v3.StringMatcher`: exact, prefix, suffix, contains, safe_regex, ignore_case
//   - `envoy.type.v3.FractionalPercent`: numerator, denominator
//   - `envoy.type.v3.Int32Range`: start, end
//   - `nodemesh.filters.http.header_match.v1.AddressTerm`: prefix, except
//   - `nodemesh.filters.http.header_match.v1.HeaderMatchPolicy`: rules
//   - `nodemesh.filters.http.header_match.v1.HeaderMatchRule`: name, destinations, destination_port, sources, method, path, authority, headers, header_matches
//   - `nodemesh.filters.http.header_match.v1.HeaderMatch`: name, value, mismatch_action, redact
//   - `nodemesh.filters.http.header_match.v1.HeaderRequirement`: name, value, present
//   - `nodemesh.filters.listener.datapath_identity.v1.DatapathIdentity`: conntrack_map
//   - `nodemesh.filters.network.kafka.v1.KafkaDestination`: name, addresses, port, end_port, rules
//   - `nodemesh.filters.network.kafka.v1.KafkaPolicy`: destinations, max_request_bytes
//   - `nodemesh.filters.network.kafka.v1.KafkaRule`: name, principals, role, api_keys, api_version, client_id, topic
//   - `xds.core.v3.TypedExtensionConfig`: name, typed_config; typed_config holds envoy.extensions.filters.udp.udp_proxy.v3.Route
//   - `xds.type.matcher.v3.Matcher.OnMatch`: action
//   - `xds.type.matcher.v3.Matcher`: on_no_match
//
// END ALLOWLIST
package proxylib
