// Package resource decodes the Envoy v3 resources the proxy receives over
// xDS into small, validated, immutable internal types, the way grpc-go's
// xDS client does. It owns the field-level allowlist: every populated field
// of every received message, including messages inside typed Any configs, is
// walked with protoreflect and must be in the supported set, or the resource
// is rejected with an error naming the resource and the exact field path, for
// example
//
//	listener "x": filter_chains[0].filters[0].typed_config(HttpConnectionManager).tracing: field not supported by nodemesh-proxy
//
// Unknown fields (from newer API versions) are rejected the same way; no
// field is ever silently ignored. After the allowlist, Envoy's own
// protoc-gen-validate rules run, then semantic checks (IP literal addresses,
// ADS config sources, unique domains and filter chain matches, RE2
// compilation of every regex, parsable key pairs).
//
// Data enters as *anypb.Any from the xDS client and leaves as *Listener
// (TCP, or UDP with its udp_proxy),
// *RouteConfig, *Cluster, *Endpoints, *Secret or *Extension (ECDS: RBAC or
// Kafka policy); those values are never
// mutated after decoding, so the data path may share them freely.
//
// Decisions where Envoy leaves room: retry_on conditions the proxy does
// not implement are NACKed (Envoy ignores unknown ones); a trusted_ca must
// be inline PEM certificates, all parsable; require_client_certificate
// needs a validation context; an UpstreamTlsContext takes one client
// certificate; empty header values are dropped
// (keep_empty_value is not supported and defaults to false); header values
// are literal except "%%", and any other "%COMMAND%" substitution is
// rejected; prefix_rewrite together with a safe_regex path match is
// rejected; a filter chain ends in one terminal network filter, the HTTP
// connection manager (whose route configuration comes from RDS over ADS)
// alone, or tcp_proxy, optionally after network RBAC filters (static
// typed_config, stat_prefix required, ONE_TIME_ON_FIRST_BYTE only; request
// rules — header, url_path — refused, source_ip and remote_ip read as
// the peer address) and then the Kafka policy filter; the HTTP RBAC
// filter refuses remote_ip (the x-forwarded-for client it is never
// given) and requested_server_name; RBAC and/or nesting is bounded at 32
// levels; an ORIGINAL_DST cluster needs
// CLUSTER_PROVIDED; original_src's bind_port is refused (the client's own
// port would collide with its connection); upstream socket options must be
// STATE_PREBIND; a UDP listener has exactly one listener filter, the
// udp_proxy, and no filter chains, and its route is a cluster (the
// matcher's on_no_match action, or the deprecated cluster field);
// typed_per_filter_config holds CorsPolicy only, under any filter name
// (as in Envoy, a name no filter has is simply unused); CORS header values
// with line breaks or NUL are refused; UDP protocol is accepted on
// listener addresses only.
package resource
