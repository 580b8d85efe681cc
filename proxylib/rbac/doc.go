// Package rbac evaluates Envoy's RBAC HTTP filter configuration
// (envoy.extensions.filters.http.rbac.v3.RBAC, decoded by package
// resource) against a request, with Envoy's semantics:
//
//   - ALLOW: a request is allowed when at least one policy matches; DENY: it
//     is denied when one matches. Without rules the filter allows all.
//   - A policy matches when any of its permissions and any of its
//     principals match. Policies are tried in name order (Envoy keeps them
//     in an ordered map), so the reported policy is the first matching name.
//   - Permissions: any, and_rules, or_rules, not_rule, header (the route
//     HeaderMatcher semantics: repeated values joined with ",", ":path"
//     includes the query), url_path (the path without query and fragment),
//     destination_ip and destination_port(_range) on the connection's local
//     address — the original destination on policy listeners.
//   - Principals: any, and_ids, or_ids, not_id, direct_remote_ip (the
//     downstream peer address, never x-forwarded-for), authenticated (the
//     peer certificate's URI SANs, then DNS SANs, then subject; a
//     connection without a client certificate never matches), and
//     filter_state on the key "nodemesh.source_identity" with an exact
//     decimal match: Input.Identity, the source identity the datapath
//     judged the connection with. When Input.IdentityOnly is set (the
//     datapath took that identity from a routing listener's mark, not
//     from the peer address) direct_remote_ip never matches: the address
//     is the node's, and would borrow the host's allowance.
//   - The network filter (envoy.extensions.filters.network.rbac.v3.RBAC,
//     evaluated by package tcpproxy once per connection) uses the same
//     engine with no request: Input.Req is nil, and
//     requested_server_name matches Input.ServerName, the connection's
//     SNI. The decoder refuses request rules there, and maps source_ip
//     and remote_ip to the peer address (direct_remote_ip).
//
// Scale: New indexes policies by destination address when every
// permission of a policy pins the destination to single addresses (what the
// translator emits per selected endpoint), so a request evaluates only the
// policies of its destination plus the unpinned ones, in name order. The
// index never changes a verdict: Evaluate and EvaluateLinear agree on every
// input, which FuzzEvaluate checks.
//
// Engines are immutable and safe for concurrent use; evaluation does not
// allocate.
package rbac
